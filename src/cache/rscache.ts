/*
 * NAME
 *   cache/rscache - a TLS session cache shared through a remote store (Redis), keyed by
 *   keyed hashes and sealed with the cluster key
 * SYNOPSIS
 *   new RemoteScache(opts).lookup(cacheId) / update(cacheId, session) / delete(cacheId)
 *   maxRemoteRecord(limits): number     the longest value a lookup opens
 * DESCRIPTION
 *   The rules of cache/scache.ts (spec 3.3-3.5) for a store shared by several daemons:
 *   - the store never sees a cache_id: an entry's key is
 *       <key_prefix>scache:<cache type>:<hex HMAC-SHA256(id key, cache type NUL cache_id)>
 *     with an id key of the cluster key file (cluster/keyfile.ts). During a key roll the
 *     file lists two keys: lookup tries the id under each (one round trip), update writes
 *     under the first and removes the others, delete removes all; no command names keys of
 *     two id keys at once in Redis Cluster, where they are in different hash slots;
 *   - the value is the sealed record of util/seal.ts under the cluster sealer, whose AAD
 *     binds the cache type and the clear cache_id: a record copied to another key fails;
 *   - the record carries its expiry as a TTL of timeout + 1 seconds (an entry is valid up
 *     to and including stamp + timeout), so the store expires it; lookup still checks the
 *     authenticated stamp, so a clock-skewed or tampered TTL cannot extend a session;
 *   - max_entry_size (and max_size for one entry) refuse an update as in the embedded cache;
 *     max_entries and max_size for the whole cache are the store's business (Redis
 *     maxmemory with a volatile-ttl policy), as entries come from the whole group;
 *   - Redis is a peer, not a friend: anyone who can write to it can plant a value of up to
 *     512 MB under an entry's key. A value longer than maxRemoteRecord() (the smaller of
 *     max_entry_size and max_size, plus SEAL_OVERHEAD) is a corrupt entry by its length
 *     alone: counted, warned about and removed without being decrypted.
 *   Every call is bounded by the link's timeout; a failure (down, slow, error) is a miss, a
 *   dropped update or a delete that found nothing: mail never waits for Redis.
 * LIMITS
 *   With neither max_entry_size nor max_size set, values over REMOTE_RECORD_CEILING (64 MiB)
 *   plus SEAL_OVERHEAD are refused.
 * DIAGNOSTICS
 *   Warnings as in scache.ts (UTF-8, oversize, corrupt; an overlong value is a corrupt entry
 *   with the reason "record longer than the M-byte limit"); Redis failures are logged by
 *   the link (cluster/link.ts), rate-limited. Nothing is ever thrown or rejected.
 */

import { createHmac } from 'node:crypto';
import type { Clock } from '../util/clock.js';
import type { CacheType } from '../config/types.js';
import type { IdKey } from '../cluster/keyfile.js';
import type { RedisClient, RedisLink } from '../cluster/link.js';
import { WarnLimiter } from '../util/ratelimit.js';
import { NO_LIMITS, corruptText, refuseOversize, utf8KeyOk, type CacheLimits } from './scache.js';
import { SEAL_OVERHEAD, type Sealer } from '../util/seal.js';
import type { SessionCache } from './session-cache.js';
import { newCounters, type CacheStats } from './stats.js';

export interface RemoteScacheOptions {
  readonly cacheType: CacheType;
  readonly dictName: string;
  /** Sanitised timeout in seconds (> 0). */
  readonly timeout: number;
  readonly link: RedisLink;
  readonly sealer: Sealer;
  readonly idKeys: readonly IdKey[];
  readonly clock: Clock;
  readonly smtputf8: boolean;
  readonly warn: (msg: string) => void;
  readonly limits?: CacheLimits;
}

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

export class RemoteScache implements SessionCache {
  readonly cacheType: CacheType;
  readonly timeout: number;
  readonly limits: CacheLimits;
  private readonly counters = newCounters();
  private readonly limited: WarnLimiter;
  private readonly base: string;
  /** "cache type NUL": the HMAC input before the cache_id. */
  private readonly typePrefix: Buffer;
  /** The longest value a lookup will try to open (see maxRemoteRecord). */
  readonly maxRecord: number;

  constructor(private readonly opts: RemoteScacheOptions) {
    this.cacheType = opts.cacheType;
    this.timeout = opts.timeout;
    this.limits = opts.limits ?? NO_LIMITS;
    this.limited = new WarnLimiter(opts.warn, opts.clock);
    this.base = `${opts.link.prefix}scache:${opts.cacheType}:`;
    this.typePrefix = Buffer.from(`${opts.cacheType}\0`, 'latin1');
    this.maxRecord = maxRemoteRecord(this.limits);
  }

  /** The store keys of cacheId, one per id key, the current one first. */
  keysFor(cacheId: Buffer): string[] {
    return this.opts.idKeys.map(
      (k) => this.base + createHmac('sha256', k.key).update(this.typePrefix).update(cacheId).digest('hex'),
    );
  }

  async lookup(cacheId: Buffer): Promise<Buffer | null> {
    const c = this.counters;
    if (!this.keyOk(cacheId)) {
      c.misses++;
      return null;
    }
    const keys = this.keysFor(cacheId);
    let records: Buffer[];
    try {
      // Redis is a peer, not a friend: at most one byte past the longest record of ours is
      // read, so a planted 512 MB value costs the daemon maxRecord + 1 bytes, not 512 MB.
      records = await this.opts.link.run('lookup', (r) => Promise.all(keys.map((k) => r.getrangeBuffer(k, 0, this.maxRecord))));
    } catch {
      c.misses++;
      return null;
    }
    const i = records.findIndex((r) => r.length > 0);
    if (i < 0) {
      c.misses++;
      return null;
    }
    const record = records[i];
    // A value longer than any record of ours is refused by its length alone, before any
    // decryption work is spent on it.
    const r = record.length > this.maxRecord
      ? { ok: false as const, reason: `record longer than the ${this.maxRecord}-byte limit` }
      : this.opts.sealer.open(this.cacheType, cacheId, record);
    if (!r.ok) {
      c.corrupt++;
      c.misses++;
      this.limited.warn('corrupt', corruptText(this.cacheType, `(hashed id ${keys[i].slice(this.base.length, this.base.length + 16)})`, r.reason));
      this.forget(keys[i]);
      return null;
    }
    if (r.stamp + this.timeout < this.opts.clock.now()) {
      r.session.fill(0);
      c.expired++;
      c.misses++;
      this.forget(keys[i]);
      return null;
    }
    c.hits++;
    return r.session;
  }

  update(cacheId: Buffer, session: Uint8Array): Promise<void> | undefined {
    if (!this.keyOk(cacheId)) return undefined;
    const bytes = cacheId.length + SEAL_OVERHEAD + session.length;
    if (refuseOversize(bytes, `(${cacheId.length}-byte id)`, this.limits, this.opts.dictName, this.cacheType, this.limited)) {
      this.counters.refused++;
      return undefined;
    }
    const now = this.opts.clock.now();
    // Sealed now, before the caller wipes its copy of the session.
    const record = this.opts.sealer.seal(this.cacheType, cacheId, now, session);
    const [key, ...old] = this.keysFor(cacheId);
    const ttlMs = (this.timeout + 1) * 1000;
    return this.opts.link
      .run('update', (r) => Promise.all([r.set(key, record, 'PX', ttlMs), ...(old.length > 0 ? [this.del(r, old)] : [])]))
      .then(
        () => {
          this.counters.stores++;
        },
        () => undefined,
      );
  }

  async delete(cacheId: Buffer): Promise<boolean> {
    if (!this.keyOk(cacheId)) return true;
    const keys = this.keysFor(cacheId);
    try {
      const n = await this.opts.link.run('delete', (r) => this.del(r, keys));
      if (n > 0) this.counters.deletes++;
      return n > 0;
    } catch {
      return false;
    }
  }

  /** The group's entries are not counted here. */
  get size(): number {
    return -1;
  }

  /** Redis expires records by their TTL: nothing to sweep. */
  sweep(): number {
    return 0;
  }

  /** Counters of this daemon; entries and bytes are the group's, not known here (-1). */
  stats(): CacheStats {
    return Object.freeze({ entries: -1, bytes: -1, ...this.counters });
  }

  /** The link is shared and closed by its owner. */
  close(): void {}

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
    if (keys.length === 1 || !this.opts.link.cluster) return r.del(...keys);
    return Promise.all(keys.map((k) => r.del(k))).then((ns) => ns.reduce((a, b) => a + b, 0));
  }

  private forget(key: string): void {
    this.opts.link.run('delete', (r) => r.del(key)).catch(() => undefined);
  }

  private keyOk(cacheId: Buffer): boolean {
    return utf8KeyOk(cacheId, this.opts.smtputf8, this.opts.dictName, this.opts.warn);
  }
}
