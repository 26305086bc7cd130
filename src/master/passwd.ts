/*
 * NAME
 *   master/passwd - look up $mail_owner's uid and gid, and check it as Postfix does
 * SYNOPSIS
 *   lookupUser(name, path?): { uid: number; gid: number } | null
 *   lookupUid(uid, path?): string | null
 *   checkMailOwner(config, path?): { uid: number; gid: number }
 * DESCRIPTION
 *   Node has no getpwnam(); lookupUser() reads the passwd-format file `path` (default
 *   /etc/passwd, where Debian's postfix package creates its user). For the default file it
 *   falls back to `id -u`/`id -g`, which also see NSS sources, when the name is not there;
 *   a path given by a caller (the tests) is the only source.
 *   The user and group ID fields are read strictly: one to ten decimal digits, at most
 *   4294967294 ((uid_t)-1 means "no change" to setuid()). `Number()` would read an empty
 *   field as 0, which is root; glibc's parser refuses such an entry, and so does this.
 *   lookupUid() is getpwuid(): the name of the first well-formed entry with that uid.
 *
 *   checkMailOwner() is check_mail_owner() of mail_params_init(), which every Postfix daemon
 *   (tlsmgr -S too) runs at start, as root or not: $mail_owner must exist, must not have
 *   user ID 0 or group ID 0, and must not share its user ID with an earlier passwd entry.
 *   A daemon that went on would run as root and leave root-owned files that the next proper
 *   start, as $mail_owner, cannot open.
 *   The daemon calls it once (cli/main.ts) and passes the ids it returns down to everything
 *   that needs $mail_owner: the privilege drop, the watchdog, the standalone socket, the
 *   PRNG exchange file and the cache files (daemon/).
 * LIMITS
 *   The shared-uid check sees the passwd file only (Postfix: "detects only some forms of
 *   sharing"). default_privs and setgid_group, which mail_params_init() checks as well, are
 *   not tlsmgr's to use and are not checked.
 * DIAGNOSTICS
 *   lookupUser() throws FatalError "<path>, line <n>: user <name>: <field> ID field is
 *   empty|not a decimal number|out of range" for an entry of that name with a bad ID field.
 *   checkMailOwner() throws FatalError in Postfix's words: "file <config_directory>/main.cf:
 *   parameter mail_owner: unknown user name value: <name>", "... user <name> has privileged
 *   user ID", "... has privileged group ID", "... has the same user ID <uid> as user <other>".
 * SEE ALSO
 *   global/mail_params.c (check_mail_owner), passwd(5)
 */

import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { TlsmgrConfig } from '../config/types.js';
import { FatalError } from '../util/errors.js';

export const PASSWD_FILE = '/etc/passwd';

/** The largest uid or gid accepted: (uid_t)-1 is setuid()'s "no change". */
const MAX_ID = 4294967294;

export interface UserIds {
  readonly uid: number;
  readonly gid: number;
}

/* parseId - a passwd ID field: decimal digits only, never an empty field read as 0 */
function parseId(field: string): number | string {
  if (field === '') return 'is empty';
  if (!/^\d{1,10}$/.test(field)) return 'is not a decimal number';
  const n = Number(field);
  return n <= MAX_ID ? n : 'is out of range';
}

/* passwdLines - the lines of a passwd-format file, or null when it cannot be read */
function passwdLines(path: string): string[] | null {
  try {
    return readFileSync(path, 'latin1').split('\n');
  } catch {
    return null;
  }
}

/* idOf - `id -u NAME` or `id -g NAME`: NSS sources beyond the file (LDAP, NIS, ...) */
function idOf(flag: '-u' | '-g', name: string): number | null {
  try {
    const out = execFileSync('id', [flag, '--', name], { encoding: 'latin1', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const n = parseId(out);
    return typeof n === 'number' ? n : null;
  } catch {
    return null;
  }
}

/** getpwnam(): the uid and gid of `name`, or null when there is no such user. */
export function lookupUser(name: string, path: string = PASSWD_FILE): UserIds | null {
  const lines = passwdLines(path);
  if (lines !== null && name !== '') {
    for (let i = 0; i < lines.length; i++) {
      const f = lines[i].split(':');
      if (f[0] !== name) continue;
      const uid = parseId(f[2] ?? '');
      const gid = parseId(f[3] ?? '');
      if (typeof uid === 'string') throw new FatalError(`${path}, line ${i + 1}: user ${name}: user ID field ${uid}`);
      if (typeof gid === 'string') throw new FatalError(`${path}, line ${i + 1}: user ${name}: group ID field ${gid}`);
      return { uid, gid };
    }
  }
  if (path !== PASSWD_FILE || name === '') return null;
  const uid = idOf('-u', name);
  const gid = idOf('-g', name);
  return uid !== null && gid !== null ? { uid, gid } : null;
}

/** getpwuid() over the passwd-format file: the first well-formed entry with `uid`, or null. */
export function lookupUid(uid: number, path: string = PASSWD_FILE): string | null {
  for (const line of passwdLines(path) ?? []) {
    const f = line.split(':');
    if (f.length >= 4 && f[0] !== '' && parseId(f[2]) === uid && typeof parseId(f[3]) === 'number') return f[0];
  }
  return null;
}

/** check_mail_owner(): $mail_owner's ids, or a FatalError in Postfix's words. */
export function checkMailOwner(config: Pick<TlsmgrConfig, 'mailOwner' | 'configDirectory'>, path: string = PASSWD_FILE): UserIds {
  const name = config.mailOwner;
  const where = `file ${config.configDirectory}/main.cf: parameter mail_owner`;
  const ids = lookupUser(name, path);
  if (ids === null) throw new FatalError(`${where}: unknown user name value: ${name}`);
  if (ids.uid === 0) throw new FatalError(`${where}: user ${name} has privileged user ID`);
  if (ids.gid === 0) throw new FatalError(`${where}: user ${name} has privileged group ID`);
  const first = lookupUid(ids.uid, path);
  if (first !== null && first !== name) throw new FatalError(`${where}: user ${name} has the same user ID ${ids.uid} as user ${first}`);
  return ids;
}
