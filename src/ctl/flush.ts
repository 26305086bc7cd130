/*
 * NAME
 *   ctl/flush - tlsmgr-ctl flush: empty TLS session caches of the running daemon
 * SYNOPSIS
 *   tlsmgr-ctl [-c config_dir] flush [--cluster] [smtpd|smtp|lmtp|all]
 * DESCRIPTION
 *   Asks the daemon to remove every entry of the named cache, or of every enabled cache
 *   (all, the default); counters are kept. Prints one line per cache emptied with the number
 *   of entries removed. A redis: cache is shared by a group of daemons: it is emptied, for
 *   the whole group, only with --cluster (the daemon deletes the group's keys of that cache
 *   type); without --cluster the request is refused and nothing is emptied.
 * DIAGNOSTICS
 *   "tlsmgr-ctl: fatal: tlsmgr: flush: ..." and exit status 1: a cache that is not enabled,
 *   a shared cache without --cluster (daemon/control-answers.ts), a Redis failure; or the
 *   daemon cannot be reached (ctl/control.ts).
 * SEE ALSO
 *   daemon/control-answers.ts, cache/scache.ts clear()
 */

import type { FlushTarget } from '../daemon/control-answers.js';
import type { CtlCommand } from './command.js';
import { askDaemon, controlPathFor } from './control.js';

const TARGETS: readonly FlushTarget[] = ['smtpd', 'smtp', 'lmtp', 'all'];

export const flushCommand: CtlCommand = {
  name: 'flush',
  synopsis: 'flush [--cluster] [smtpd|smtp|lmtp|all]',
  summary: 'empty session caches (a redis: cache, the group\'s, only with --cluster)',
  args: { flags: ['--cluster'], minOperands: 0, maxOperands: 1, operandValues: TARGETS, operandNames: '[smtpd|smtp|lmtp|all]' },
  async run(args, ctx) {
    const cache = TARGETS.find((t) => t === args.operands[0]) ?? 'all';
    // A long flush (a big SQLite cache, a Redis group) may take a while.
    const reply = await askDaemon(controlPathFor(ctx.configDir), { cmd: 'flush', cache, cluster: args.flags.has('--cluster') }, 60_000);
    const flushed = Array.isArray(reply.flushed) ? (reply.flushed as { cache?: unknown; removed?: unknown }[]) : [];
    if (flushed.length === 0) ctx.io.out('no session cache is enabled: nothing to flush');
    for (const f of flushed) ctx.io.out(`flushed ${String(f.cache)} TLS session cache: ${Number(f.removed)} entries removed`);
    return 0;
  },
};
