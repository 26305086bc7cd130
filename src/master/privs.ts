/*
 * NAME
 *   master/privs - give up root for $mail_owner
 * SYNOPSIS
 *   setGroups(user: string, gid: number): void
 *   setUser(user: string, uid: number): void
 *   dropPrivileges(user: string, uid: number, gid: number): void
 * DESCRIPTION
 *   setgid, initgroups, setuid, in that order (util/set_ugid.c), then a check that root cannot
 *   be regained. Called once every privileged file and socket is open.
 *   With a chroot, util/chroot_uid.c splits the sequence around chroot(2): setGroups() before
 *   it (initgroups() reads /etc/group, which the jail does not have), setUser() after it.
 *   dropPrivileges() is both at once, for a daemon without a chroot.
 * DIAGNOSTICS
 *   Throws FatalError when a step fails or root is still reachable.
 * SEE ALSO
 *   util/set_ugid.c, util/chroot_uid.c
 */

import { FatalError } from '../util/errors.js';

/** setgid(gid) and initgroups(user, gid). */
export function setGroups(user: string, gid: number): void {
  try {
    process.setgid?.(gid);
    // process.initgroups exists on POSIX but @types/node does not declare it.
    (process as NodeJS.Process & { initgroups?: (user: string, group: number) => void }).initgroups?.(user, gid);
  } catch (err) {
    throw new FatalError(`set_ugid: cannot switch to user ${user}: ${(err as Error).message}`, { cause: err });
  }
}

/** setuid(uid), then make sure root cannot be regained. */
export function setUser(user: string, uid: number): void {
  if (uid === 0) throw new FatalError(`mail_owner ${user} has uid 0 -- refusing to run with root privileges`);
  try {
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

export function dropPrivileges(user: string, uid: number, gid: number): void {
  if (uid === 0) throw new FatalError(`mail_owner ${user} has uid 0 -- refusing to run with root privileges`);
  setGroups(user, gid);
  setUser(user, uid);
}
