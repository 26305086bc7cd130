/*
 * NAME
 *   cache/stores/redis - a session store shared by a group of daemons through Redis, keyed
 *   by keyed hashes of the cache_id
 * SYNOPSIS
 *   new RedisStore({ cacheType, link, keys, limits? }): SessionStore
 *   store.keysFor(cacheId): string[]      the Redis keys of an id, the current id key first
 *   maxRemoteRecord(limits): number       the longest value a lookup opens
 *   store.clear(): Promise<number>        remove the group's entries of this cache type
 * DESCRIPTION
 *   The group's store for a redis:<file> cache; cache/scache.ts applies the cache rules over
 *   it as over any store. Its traits (cache/store.ts):
 *   - keys are keyed hashes: the store never sees a cache_id. An entry's key is
 *       <key_prefix>scache:<cache type>:<hex HMAC-SHA256(id key, cache type NUL cache_id)>
 *     with an id key of the cluster key file (cluster/keyfile.ts). During a key roll the
 *     file lists two keys: get() tries the id under each (one round trip) and takes the first
 *     found, put() writes under the first and removes the others, delete() removes all; no
 *     command names keys of two id keys at once in Redis Cluster, where they are in
 *     different hash slots. A warning names an entry "(hashed id <16 hex digits>)" by the key
 *     it was read from, or "(<n>-byte id)" before it is read (showKey);
 *   - sealer: records are sealed with the cluster ring, whose AAD binds the cache type and
 *     the clear cache_id, so a record copied to another key fails;
 *   - expiresEntries: put() sets a TTL (the cache asks for timeout + 1 seconds, as an entry
 *     is valid up to and including stamp + timeout); Redis expires the entry, there is
 *     nothing to sweep, and the group's entries and bytes are not known here (-1). The cache
 *     still checks the authenticated stamp, so a clock-skewed or tampered TTL cannot extend
 *     a session; close() leaves the entries to the group (the link is its owner's to close);
 *   - maxRecord: Redis is a peer, not a friend: anyone who can write to it can plant a value
 *     of up to 512 MB under an entry's key. Values are read with GETRANGE up to one byte past
 *     maxRemoteRecord() (the smaller of max_entry_size and max_size, plus SEAL_OVERHEAD), so
 *     a planted value costs the daemon maxRecord + 1 bytes, and the cache refuses anything
 *     longer as corrupt by its length alone; GETRANGE answers a missing key with an empty
 *     value, which is read as missing; a corrupt or expired entry is removed by the key it
 *     was read from only (discard), without waiting;
 *   - reportsFailures: every call is bounded by the link's timeout, and a failure (down,
 *     slow, error) is counted and logged by the link (cluster/link.ts); the cache then
 *     misses, drops the update or reports nothing deleted: mail never waits for Redis.
 *   clear() (tlsmgr-ctl flush --cluster) removes every key <key_prefix>scache:<cache type>:*
 *   of the group: SCAN MATCH in batches of CLEAR_BATCH keys, each batch removed with one
 *   UNLINK (Redis frees the values in the background), every call under the link's
 *   timeout; it resolves to the number of keys removed. Entries written during the scan
 *   may survive it (SCAN's guarantee covers the keys present all along).
 * LIMITS
 *   clear() is refused with Redis Cluster (cluster = yes): SCAN walks one node there. It
 *   removes only keys under this cache's prefix, at most 10 x CLEAR_BATCH per SCAN reply,
 *   and gives up after CLEAR_MAX_ROUNDS rounds (a server whose cursor never ends).
 *   With neither max_entry_size nor max_size set, values over REMOTE_RECORD_CEILING (64 MiB)
 *   plus SEAL_OVERHEAD are refused. max_entries and max_size of the whole cache are Redis's
 *   business (maxmemory with a volatile-ttl policy), as entries come from the whole group.
 * DIAGNOSTICS
 *   None of its own: failures reject with the link's RemoteError, already logged.
 */

import { createHmac } from 'node:crypto';
import type { CacheType } from '../../config/types.js';
import type { ClusterKeys, IdKey } from '../../cluster/keyfile.js';
import type { RedisClient, RedisLink } from '../../cluster/link.js';
import { SEAL_OVERHEAD, type Sealer } from '../../util/seal.js';
import { NO_LIMITS, type CacheLimits } from '../limits.js';
import type { SessionStore } from '../store.js';

/** Keys asked for per SCAN call, and removed per UNLINK, by clear(). */
const CLEAR_BATCH = 500;
/** SCAN rounds a flush makes at most: 2^20 rounds of up to 500 keys is far past any real cache. */
const CLEAR_MAX_ROUNDS = 1 << 20;

/** The bound on a value read from Redis when neither max_entry_size nor max_size is set (64 MiB). */
export const REMOTE_RECORD_CEILING = 64 << 20;

/**
 * The longest record a lookup opens: the smaller of max_entry_size and max_size (those set;
 * else the ceiling) plus the record overhead. No member with these limits stores more (its
 * entry, cache_id plus record, must fit under both), and the overhead's slack spares members
 * whose limits differ a little; anything longer is not a record of the group.
 */
export function maxRemoteRecord(limits: CacheLimits): number {
  const set = [limits.maxEntrySize, limits.maxSize].filter((n) => n > 0);
  return (set.length > 0 ? Math.min(...set) : REMOTE_RECORD_CEILING) + SEAL_OVERHEAD;
}

export interface RedisStoreOptions {
  readonly cacheType: CacheType;
  /** The connection, shared by every store and the ticket keys of one configuration file. */
  readonly link: RedisLink;
  /** The cluster key file's ring and id keys. */
  readonly keys: ClusterKeys;
  /** The cache's limits: they bound what a read takes (maxRemoteRecord). */
  readonly limits?: CacheLimits;
}

export class RedisStore implements SessionStore {
  readonly expiresEntries = true;
  readonly reportsFailures = true;
  /** The longest value a lookup will try to open (see maxRemoteRecord). */
  readonly maxRecord: number;
  readonly sealer: Sealer;
  private readonly link: RedisLink;
  private readonly idKeys: readonly IdKey[];
  private readonly base: string;
  /** "cache type NUL": the HMAC input before the cache_id. */
  private readonly typePrefix: Buffer;
  /** The Redis key each record returned by get() was read from (for discard and showKey). */
  private readonly readFrom = new WeakMap<Buffer, string>();

  constructor(opts: RedisStoreOptions) {
    this.link = opts.link;
    this.idKeys = opts.keys.idKeys;
    this.sealer = opts.keys.sealer;
    this.base = `${opts.link.prefix}scache:${opts.cacheType}:`;
    this.typePrefix = Buffer.from(`${opts.cacheType}\0`, 'latin1');
    this.maxRecord = maxRemoteRecord(opts.limits ?? NO_LIMITS);
  }

  /** The store keys of cacheId, one per id key, the current one first. */
  keysFor(cacheId: Buffer): string[] {
    return this.idKeys.map((k) => this.base + createHmac('sha256', k.key).update(this.typePrefix).update(cacheId).digest('hex'));
  }

  async get(key: string): Promise<Buffer | undefined> {
    const keys = this.keysFor(Buffer.from(key, 'latin1'));
    // At most one byte past the longest record of ours is read (see maxRecord).
    const records = await this.link.run('lookup', (r) => Promise.all(keys.map((k) => r.getrangeBuffer(k, 0, this.maxRecord))));
    const i = records.findIndex((r) => r.length > 0);
    if (i < 0) return undefined;
    this.readFrom.set(records[i], keys[i]);
    return records[i];
  }

  async put(key: string, record: Buffer, _stamp: number, ttl?: number): Promise<void> {
    const [current, ...old] = this.keysFor(Buffer.from(key, 'latin1'));
    const set = (r: RedisClient): Promise<unknown> =>
      ttl === undefined ? r.set(current, record) : r.set(current, record, 'PX', Math.max(1, Math.round(ttl * 1000)));
    await this.link.run('update', (r) => Promise.all([set(r), ...(old.length > 0 ? [this.del(r, old)] : [])]));
  }

  async delete(key: string): Promise<boolean> {
    const keys = this.keysFor(Buffer.from(key, 'latin1'));
    return (await this.link.run('delete', (r) => this.del(r, keys))) > 0;
  }

  /** Redis expires records by their TTL: nothing to sweep. */
  sweep(): number {
    return 0;
  }

  async clear(): Promise<number> {
    if (this.link.cluster) throw new Error(`${this.link.config.source}: flush --cluster is not supported with Redis Cluster (cluster = yes)`);
    const pattern = `${this.base.replace(/[*?[\]\\]/g, '\\$&')}*`;
    let cursor = '0';
    let removed = 0;
    // Redis is a peer, not a friend: a server that never ends its cursor, or answers a SCAN
    // with keys outside our prefix or with more keys than asked for, must not turn a flush
    // into endless work or into removing keys that are not this cache's entries.
    for (let round = 0; ; round++) {
      if (round >= CLEAR_MAX_ROUNDS) throw new Error(`${this.link.config.source}: flush gave up after ${CLEAR_MAX_ROUNDS} SCAN rounds`);
      const [next, found] = await this.link.run('flush', (r) => r.scan(cursor, 'MATCH', pattern, 'COUNT', CLEAR_BATCH));
      const keys = found.slice(0, CLEAR_BATCH * 10).filter((k) => k.startsWith(this.base));
      if (keys.length > 0) removed += await this.link.run('flush', (r) => r.unlink(...keys));
      cursor = next;
      if (cursor === '0') return removed;
    }
  }

  /** The group's entries are not counted here. */
  get size(): number {
    return -1;
  }

  get bytes(): number {
    return -1;
  }

  /** The entries are the group's, and the link is shared and closed by its owner. */
  close(): void {}

  discard(key: string, record: Buffer): void {
    const from = this.readFrom.get(record) ?? this.keysFor(Buffer.from(key, 'latin1'))[0];
    this.link.run('delete', (r) => r.del(from)).catch(() => undefined);
  }

  showKey(key: string, record?: Buffer): string {
    const from = record === undefined ? undefined : this.readFrom.get(record);
    if (from === undefined) return `(${key.length}-byte id)`;
    return `(hashed id ${from.slice(this.base.length, this.base.length + 16)})`;
  }

  /*
   * del - remove keys, how many there were. One DEL for them all, except with Redis Cluster:
   * during a cluster key roll an entry has a key per id key, unrelated HMACs in (almost
   * always) different hash slots, and a DEL naming keys of several slots fails there with
   * CROSSSLOT -- deletes found nothing and updates left the old entries behind. So one DEL
   * per key, sent together (ioredis routes each to its node, in parallel). Hash tags
   * ({...} in the key) cannot put them in one slot: the tag would have to be the same under
   * every id key, so computed without one -- from the clear cache_id, which the store must
   * never see (and an unkeyed hash of a guessable id is as good as the id). The keys and the
   * single-server commands stay as they were.
   */
  private del(r: RedisClient, keys: readonly string[]): Promise<number> {
    if (keys.length === 1 || !this.link.cluster) return r.del(...keys);
    return Promise.all(keys.map((k) => r.del(k))).then((ns) => ns.reduce((a, b) => a + b, 0));
  }
}
