/*
 * NAME
 *   master/privs - give up root for $mail_owner
 * SYNOPSIS
 *   dropPrivileges(user: string, uid: number, gid: number): void
 * DESCRIPTION
 *   setgid, initgroups, setuid, in that order (util/set_ugid.c), then a check that root cannot
 *   be regained. Called once every privileged file and socket is open.
 * DIAGNOSTICS
 *   Throws FatalError when a step fails or root is still reachable.
 * SEE ALSO
 *   util/set_ugid.c
 */

import { FatalError } from '../errors.js';

export function dropPrivileges(user: string, uid: number, gid: number): void {
  if (uid === 0) throw new FatalError(`mail_owner ${user} has uid 0 -- refusing to run with root privileges`);
  try {
    process.setgid?.(gid);
    // process.initgroups exists on POSIX but @types/node does not declare it.
    (process as NodeJS.Process & { initgroups?: (user: string, group: number) => void }).initgroups?.(user, gid);
    process.setuid?.(uid);
  } catch (err) {
    throw new FatalError(`set_ugid: cannot switch to user ${user}: ${(err as Error).message}`, { cause: err });
  }
  let regained = false;
  try {
    process.setuid?.(0);
    regained = true;
  } catch {
    /* expected */
  }
  if (regained) throw new FatalError('set_ugid: privileges could not be dropped');
}
