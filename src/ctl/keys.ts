/*
 * NAME
 *   ctl/keys - tlsmgr-ctl keys rotate|revoke: steer the session-ticket keys
 * SYNOPSIS
 *   tlsmgr-ctl [-c config_dir] keys rotate
 *   tlsmgr-ctl [-c config_dir] keys revoke
 * DESCRIPTION
 *   rotate: the daemon makes a new current ticket key now; the previous one still decrypts
 *   until it expires (tickets/keys.ts), so tickets issued under it still resume. smtpd
 *   processes keep the key they hold until its encryption time ends and then get the new
 *   one.
 *   revoke: the daemon drops every ticket key, so that no ticket issued before resumes: the
 *   emergency button after a suspected key leak. smtpd processes that still hold a key
 *   keep using it until they exit (Postfix's smtpd caches it); `postfix reload` after a
 *   revoke makes every smtpd start afresh.
 *   Both print the ticket keys' state afterwards (count, current key's times).
 *   Ticket keys shared through Redis (tlsmgr_tktkey_database) are rotated or revoked for
 *   the whole group, whichever member is asked: the group's generation goes up by one, and
 *   every member drops the keys it no longer may use (and its local fallback keys on a
 *   revoke) within a second (tickets/shared.ts); "... for the Redis group (generation N;
 *   every member follows within a second)". `postfix reload` is then needed on every host.
 * DIAGNOSTICS
 *   "tlsmgr-ctl: fatal: tlsmgr: <reason>" and exit status 1 when the daemon refuses (ticket
 *   keys disabled with smtpd_tls_session_cache_timeout = 0 for rotate), Redis does not take
 *   the group's new generation ("keys revoke: redis <file>: <reason>: the Redis group's
 *   ticket keys are unchanged ..."), or the daemon cannot be reached (ctl/control.ts).
 * SEE ALSO
 *   tickets/keys.ts, daemon/control-answers.ts, ctl/status.ts
 */

import type { CtlCommand } from './command.js';
import { askDaemon, controlPathFor } from './control.js';
import { ticketKeysLine } from './status.js';

export const keysCommand: CtlCommand = {
  name: 'keys',
  synopsis: 'keys rotate|revoke',
  summary: 'a new current ticket key now (rotate), or drop every ticket key (revoke)',
  args: { minOperands: 1, maxOperands: 1, operandValues: ['rotate', 'revoke'], operandNames: 'rotate|revoke' },
  async run(args, ctx) {
    const action = args.operands[0] === 'revoke' ? 'revoke' : 'rotate';
    const reply = await askDaemon(controlPathFor(ctx.configDir), { cmd: 'keys', action });
    const t = reply.ticketKeys;
    const gen = typeof t === 'object' && t !== null && 'generation' in t && typeof t.generation === 'number' ? t.generation : null;
    const group = gen === null ? '' : ` for the Redis group (generation ${gen}; every member follows within a second)`;
    ctx.io.out(`${action === 'rotate' ? 'ticket keys rotated' : 'ticket keys revoked'}${group}`);
    ctx.io.out(ticketKeysLine(reply.ticketKeys));
    return 0;
  },
};
