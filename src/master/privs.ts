/*
 * NAME
 *   master/privs - give up root for $mail_owner, optionally inside a chroot
 * SYNOPSIS
 *   chrootUid(rootDir: string | null, user: { name, uid, gid } | null): void
 *   setGroups(user: string, gid: number): void
 *   setUser(user: string, uid: number): void
 * DESCRIPTION
 *   setgid, initgroups, setuid, in that order (util/set_ugid.c), then a check that root cannot
 *   be regained. Called once every privileged file and socket is open.
 *   chrootUid() is util/chroot_uid.c: the sequence split around chroot(2) into rootDir,
 *   setGroups() before it (initgroups() reads /etc/group, which the jail does not have),
 *   setUser() after it; a null rootDir or user skips that half.
 * DIAGNOSTICS
 *   Throws FatalError when a step fails or root is still reachable.
 * SEE ALSO
 *   util/set_ugid.c, util/chroot_uid.c
 */

import { FatalError } from '../util/errors.js';
import { chrootTo } from './chroot.js';

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

/** chroot_uid(): groups, chroot(rootDir), uid; each half only when given. */
export function chrootUid(rootDir: string | null, user: { readonly name: string; readonly uid: number; readonly gid: number } | null): void {
  if (user !== null) setGroups(user.name, user.gid);
  if (rootDir !== null) chrootTo(rootDir);
  if (user !== null) setUser(user.name, user.uid);
}
