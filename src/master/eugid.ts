/*
 * NAME
 *   master/eugid - run a step with $mail_owner's effective uid, gid and group list
 * SYNOPSIS
 *   asEffectiveUser(ids: { uid, gid } | null, fn: () => T): T
 * DESCRIPTION
 *   Postfix's set_eugid()/SAVE_AND_SET_EUGID(): a root process that creates or opens a file
 *   in a directory $mail_owner can write does it with $mail_owner's identity, so that
 *   $mail_owner cannot make root follow a symbolic link it planted there (root would create,
 *   truncate or chown the link's target), and so that the file is created owned by
 *   $mail_owner with no chown() afterwards (no window between creation and chown()).
 *   Used for the standalone listener in $queue_directory/private (master_listen.c does the
 *   same around LOCAL_LISTEN) and for the PRNG exchange file (tlsmgr_pre_init()).
 *   fn runs synchronously between the switch and the restore: it must do its file-system
 *   work before it returns (a later asynchronous callback would run as root again).
 *   Without root privileges, or with ids null or root's, fn simply runs.
 * DIAGNOSTICS
 *   Errors of fn are rethrown after the identity is restored; a failing seteuid/setegid
 *   throws (the process cannot continue in an unknown identity).
 * SEE ALSO
 *   util/set_eugid.c, master/master_listen.c, tlsmgr/tlsmgr.c tlsmgr_pre_init()
 */

export interface UserIds {
  readonly uid: number;
  readonly gid: number;
}

type PosixProcess = NodeJS.Process & { setgroups?: (g: number[]) => void; getgroups?: () => number[] };

export function asEffectiveUser<T>(ids: UserIds | null, fn: () => T): T {
  const p = process as PosixProcess;
  if (ids === null || p.geteuid?.() !== 0 || ids.uid === 0 || !p.seteuid || !p.setegid) return fn();
  const groups = p.getgroups?.() ?? [];
  const egid = p.getegid?.() ?? 0;
  // The restore covers a switch that failed half way too: every step is undone.
  try {
    p.setegid(ids.gid);
    p.setgroups?.([ids.gid]);
    p.seteuid(ids.uid);
    return fn();
  } finally {
    p.seteuid(0);
    p.setgroups?.(groups);
    p.setegid(egid);
  }
}
