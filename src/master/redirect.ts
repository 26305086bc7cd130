/*
 * NAME
 *   master/redirect - keep $mail_owner's files in $mail_owner's directories
 * SYNOPSIS
 *   dataRedirectFile(path, opts): string        the PRNG exchange file
 *   dataRedirectMap(map, opts): string          a "type:name" cache table
 * DESCRIPTION
 *   Postfix's data_redirect_file() and data_redirect_map() (global/data_redirect.c): a
 *   file that would be opened in a directory that exists and is not owned by $mail_owner
 *   is opened in $data_directory instead, under its base name, with two warnings:
 *     request to update file|table <name> in non-<mail_owner> directory <dir>
 *     redirecting the request to <mail_owner>-owned data_directory <data_directory>
 *   A directory that cannot be stat()ed leaves the path as it is (the open then fails, or
 *   creates it, as the caller's identity allows). With opts.ownerUid null (not running as
 *   root: the daemon's own identity decides) nothing is redirected.
 *   dataRedirectMap() redirects only the map types that name a local file (hash, btree,
 *   dbm, lmdb, cdb, sdbm, dbz, as Postfix does); a map without a type takes
 *   opts.defaultType. Its result is always "type:name".
 * LIMITS
 *   The directory's owner is checked, not its mode or its parents: a root-owned directory
 *   that $mail_owner can write is the operator's choice, as in Postfix. The check and the
 *   later open are two steps; the caller opens as $mail_owner (master/eugid.ts), so a
 *   directory swapped in between gains an attacker nothing root could be tricked into.
 * DIAGNOSTICS
 *   The two warnings above, through opts.warn. Nothing is thrown.
 * SEE ALSO
 *   global/data_redirect.c, tlsmgr/tlsmgr.c tlsmgr_pre_init()
 */

import { statSync } from 'node:fs';
import { basename, dirname } from 'node:path';

export interface RedirectOptions {
  /** $mail_owner's uid, or null when not running as root (no redirect). */
  readonly ownerUid: number | null;
  readonly mailOwner: string;
  readonly dataDirectory: string;
  readonly warn: (msg: string) => void;
}

/** Map types that name a local file (data_redirect_map_types[]). */
const REDIRECTED_TYPES: ReadonlySet<string> = new Set(['hash', 'btree', 'dbm', 'lmdb', 'cdb', 'sdbm', 'dbz']);

function redirectPath(path: string, logType: 'file' | 'table', logName: string, o: RedirectOptions): string {
  if (o.ownerUid === null) return path;
  const dir = dirname(path);
  let uid: number;
  try {
    uid = statSync(dir).uid;
  } catch {
    return path;
  }
  if (uid === o.ownerUid) return path;
  o.warn(`request to update ${logType} ${logName} in non-${o.mailOwner} directory ${dir}`);
  o.warn(`redirecting the request to ${o.mailOwner}-owned data_directory ${o.dataDirectory}`);
  return `${o.dataDirectory}/${basename(path)}`;
}

/** data_redirect_file(). */
export function dataRedirectFile(path: string, o: RedirectOptions): string {
  return redirectPath(path, 'file', path, o);
}

/** data_redirect_map(): `map` is "type:name", or a name of `defaultType`. */
export function dataRedirectMap(map: string, o: RedirectOptions & { readonly defaultType?: string }): string {
  const colon = map.indexOf(':');
  const type = colon < 0 ? (o.defaultType ?? '') : map.slice(0, colon);
  const name = colon < 0 ? map : map.slice(colon + 1);
  const path = REDIRECTED_TYPES.has(type) ? redirectPath(name, 'table', map, o) : name;
  return `${type}:${path}`;
}
