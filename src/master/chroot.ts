/*
 * NAME
 *   master/chroot - chroot(2) into $queue_directory (-c)
 * SYNOPSIS
 *   chrootTo(dir: string): void
 * DESCRIPTION
 *   Node has no chroot(); the `posix` binding supplies it. Every module must already be
 *   loaded (this daemon imports all of its modules statically at start), and every file,
 *   socket and log connection is open before this call. The working directory becomes the
 *   new root, so the relative paths Postfix clients use (private/tlsmgr) stay valid.
 *   The local time zone is loaded first so that log time stamps stay local inside the jail.
 * DIAGNOSTICS
 *   FatalError "chroot(<dir>): <reason>", as Postfix's "chroot(%s): %m".
 * SEE ALSO
 *   master/multi_server.c, util/chroot_uid.c
 */

import { createRequire } from 'node:module';
import { FatalError } from '../util/errors.js';

interface Posix {
  chroot(path: string): void;
}

const require = createRequire(import.meta.url);
const posix = require('posix') as Posix;

export function chrootTo(dir: string): void {
  void new Date().toString(); // load the time zone while /etc/localtime is reachable
  try {
    posix.chroot(dir);
    process.chdir('/');
  } catch (err) {
    throw new FatalError(`chroot(${dir}): ${(err as Error).message}`, { cause: err });
  }
}
