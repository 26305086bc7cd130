/*
 * NAME
 *   ctl/ping - tlsmgr-ctl ping: does the daemon answer (for monitoring)?
 * SYNOPSIS
 *   tlsmgr-ctl [-c config_dir] ping
 * DESCRIPTION
 *   Sends {"cmd":"ping"} on the control socket of the instance in config_dir (ctl/control.ts)
 *   and prints "tlsmgr answers on <path>" when the reply comes within PING_TIMEOUT_MS (1 s).
 *   Exit status 0 then, 1 otherwise.
 * DIAGNOSTICS
 *   On standard error, exit status 1: "tlsmgr-ctl: ping: <reason>" (not listening, no
 *   permission, no answer within 1000 ms; ctl/control.ts). A configuration that cannot be
 *   read is the dispatcher's "tlsmgr-ctl: fatal: ...".
 * SEE ALSO
 *   ctl/control.ts, daemon/control.ts
 */

import type { CtlCommand } from './command.js';
import { askDaemon, controlPathFor } from './control.js';

export const PING_TIMEOUT_MS = 1000;

export const pingCommand: CtlCommand = {
  name: 'ping',
  synopsis: 'ping',
  summary: 'exit 0 when the running tlsmgr answers within a second, else 1',
  args: {},
  async run(_args, ctx) {
    const path = controlPathFor(ctx.configDir);
    try {
      await askDaemon(path, { cmd: 'ping' }, PING_TIMEOUT_MS);
    } catch (err) {
      ctx.io.err(`tlsmgr-ctl: ping: ${(err as Error).message}`);
      return 1;
    }
    ctx.io.out(`tlsmgr answers on ${path}`);
    return 0;
  },
};
