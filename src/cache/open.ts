/*
 * NAME
 *   cache/open - map a *_tls_session_cache_database value to a session store
 * SYNOPSIS
 *   storeKind(dict, param): StoreKind          parse only (the embedded stores)
 *   sharedByTypes(dict): boolean                CacheDeps.sharedByTypes
 *   storeOpener(opts): OpenStore                CacheDeps.openStore
 *   FILE_TYPES, SQLITE_SUFFIX
 * DESCRIPTION
 *   `dict` is "type:name" (cache/caches.ts has already put $default_database_type in front
 *   of a name without a type). The Postfix map types that name a local file, btree:, hash:,
 *   lmdb:, sdbm: and dbm:, are all served by one embedded engine, SQLite
 *   (cache/stores/sqlite.ts), in the file <name>.sqlite: the suffix keeps it apart from the
 *   .db/.lmdb files Postfix's own tlsmgr writes, which are never opened. `memory:` (any
 *   name) is a purely in-memory cache. `redis:<file>` is the store of a Redis group
 *   (cache/stores/redis.ts) over the connection and cluster keys of that configuration file
 *   (cluster/members.ts, opts.members): one per file, however many caches name it. Every
 *   other type is a fatal error at start: rather than silently keeping a cache the operator
 *   did not ask for.
 *   Traits of the kinds: a redis: database may be named by several cache types (its keys
 *   carry the cache type: sharedByTypes); a file may not.
 *
 *   The opener creates each file as described in sqlite.ts. When the daemon runs as root
 *   it does that as tlsmgr_pre_init() does: the table first goes through data_redirect_map()
 *   (master/redirect.ts: a file whose directory is not $mail_owner's goes to
 *   $data_directory, with two warnings), then the file, its lock and SQLite's own -wal and
 *   -shm files are created and opened with $mail_owner's effective uid and gid
 *   (master/eugid.ts; $mail_owner looked up only then, through opts.lookupUser), so a
 *   $mail_owner who can write the directory cannot make root open or chown a file planted
 *   there. It refuses two caches that name the same file under different map types.
 * LIMITS
 *   Directory permissions are the operator's, as for any Postfix file: a directory
 *   $mail_owner cannot write makes the start fail with the engine's "Permission denied".
 * DIAGNOSTICS
 *   FatalError: "unsupported dictionary type: <type> (<param> = <dict>): ...",
 *   "<param>: missing file name in <dict>", "unknown mail_owner user: <name>",
 *   "do not use the same TLS cache file <file> for <type1> and <type2>",
 *   "<param> = <dict>: redis: tables are not available here" (an opener without members),
 *   and those of SqliteStore.create() and ClusterMembers.member().
 * SEE ALSO
 *   util/dict_open.c (dict_open3), global/data_redirect.c, tlsmgr/tlsmgr.c tlsmgr_pre_init()
 */

import { resolve } from 'node:path';
import type { CacheType } from '../config/types.js';
import { redisFile, type ClusterMembers } from '../cluster/members.js';
import { asEffectiveUser } from '../master/eugid.js';
import { dataRedirectMap } from '../master/redirect.js';
import { FatalError } from '../util/errors.js';
import type { OpenStore } from './caches.js';
import { MemoryStore } from './stores/memory.js';
import { RedisStore } from './stores/redis.js';
import { SqliteStore } from './stores/sqlite.js';

/** Postfix map types that name a local, updatable file: served by the embedded engine. */
export const FILE_TYPES: readonly string[] = ['btree', 'hash', 'lmdb', 'sdbm', 'dbm'];

/** Appended to the configured path, as Berkeley DB appends .db. */
export const SQLITE_SUFFIX = '.sqlite';

export type StoreKind = { readonly kind: 'sqlite'; readonly file: string } | { readonly kind: 'memory' };

/**
 * How the embedded store for `dict` ("type:name") is made; `param` names the setting in
 * messages. redis: is not an embedded store: the opener maps it first (redisFile()).
 */
export function storeKind(dict: string, param: string): StoreKind {
  const colon = dict.indexOf(':');
  const type = colon < 0 ? '' : dict.slice(0, colon);
  const name = colon < 0 ? dict : dict.slice(colon + 1);
  if (type === 'memory') return { kind: 'memory' };
  if (FILE_TYPES.includes(type)) {
    if (name === '') throw new FatalError(`${param}: missing file name in "${dict}"`);
    return { kind: 'sqlite', file: name + SQLITE_SUFFIX };
  }
  throw new FatalError(
    `unsupported dictionary type: ${type} (${param} = ${dict}): ` +
      `use ${FILE_TYPES.map((t) => `${t}:`).join(', ')} (an embedded database file), memory: or redis:<file>`,
  );
}

/** Whether several cache types may name `dict`: its store keys entries by cache type (redis:). */
export function sharedByTypes(dict: string): boolean {
  return redisFile(dict) !== undefined;
}

export interface StoreOpenerOptions {
  /** $mail_owner: owns the files when the daemon runs as root. */
  readonly mailOwner: string;
  readonly lookupUser: (name: string) => { uid: number; gid: number } | null;
  /** Effective uid (default process.geteuid()); tests pass 0 to exercise the chown. */
  readonly euid?: number;
  /** The daemon's Redis groups, for redis: tables (without it, redis: is refused). */
  readonly members?: ClusterMembers;
  /** $data_directory and the warning sink of data_redirect_map() (root only); without them nothing is redirected. */
  readonly redirect?: { readonly dataDirectory: string; readonly warn: (msg: string) => void };
}

export function storeOpener(opts: StoreOpenerOptions): OpenStore {
  const files = new Map<string, CacheType>();
  return (cacheType, dict, use) => {
    const param = `${cacheType}_tls_session_cache_database`;
    const redis = redisFile(dict);
    if (redis !== undefined) {
      if (opts.members === undefined) throw new FatalError(`${param} = ${dict}: redis: tables are not available here`);
      const m = opts.members.member(redis, param);
      return new RedisStore({ cacheType, link: m.link, keys: m.keys, limits: use?.limits });
    }
    const k = storeKind(dict, param);
    if (k.kind === 'memory') return new MemoryStore();
    let owner = null;
    if ((opts.euid ?? process.geteuid?.()) === 0) {
      owner = opts.lookupUser(opts.mailOwner);
      if (owner === null) throw new FatalError(`unknown mail_owner user: ${opts.mailOwner}`);
    }
    let file = k.file;
    const r = opts.redirect;
    if (owner !== null && r !== undefined) {
      // The suffix does not change the directory: redirect the table as Postfix names it.
      const table = dataRedirectMap(dict, { ownerUid: owner.uid, mailOwner: opts.mailOwner, ...r });
      file = table.slice(table.indexOf(':') + 1) + SQLITE_SUFFIX;
    }
    const abs = resolve(file);
    const other = files.get(abs);
    if (other !== undefined) throw new FatalError(`do not use the same TLS cache file ${file} for ${other} and ${cacheType}`);
    files.set(abs, cacheType);
    return asEffectiveUser(owner, () => SqliteStore.create(file, { owner }));
  };
}
