/*
 * NAME
 *   cache/scache - one TLS session cache (smtpd, smtp or lmtp): lookup, update, delete,
 *   expiry, limits, counters
 * SYNOPSIS
 *   new TlsScache(opts).lookup(cacheId) / update(cacheId, session) / delete(cacheId)
 *   sweep(max): number    stats(): CacheStats    size    close()
 * DESCRIPTION
 *   The rules of tls/tls_scache.c (spec 3.3-3.5) over any SessionStore:
 *   - update always stores a fresh timestamp (now) and replaces any old entry;
 *   - an entry is expired iff stamp + timeout < now (at exactly stamp + timeout it is valid);
 *   - lookup of an expired or corrupt entry deletes it and misses;
 *   - with smtputf8_enable, a cache_id that is not valid UTF-8 is neither stored nor found
 *     (update and delete claim success, lookup misses), with Postfix's warning.
 *   Every record is sealed (util/seal.ts) with the cache type and cache_id as associated
 *   data; the stamp that decides expiry on lookup is the authenticated one in the record.
 *
 *   Limits (extensions; 0 = no limit): an entry is the cache_id plus its sealed record
 *   (session + SEAL_OVERHEAD bytes). An entry over max_entry_size, or over max_size on its
 *   own, is refused: nothing is stored or changed, the update still answers OK (Postfix's
 *   tls_scache_update() result is never reported to the client), with a rate-limited
 *   warning. When storing would pass max_entries or max_size, expired entries go first (a
 *   bounded batch through the stamp index), then the oldest live ones, one at a time, until
 *   the new entry fits.
 *
 *   sweep() removes up to `max` expired entries through the store's stamp index; the caller
 *   (cache/caches.ts) runs it in small batches between requests. Unlike Postfix's cursor
 *   walk there is no entry "under the cursor" between batches, so an explicit delete always
 *   deletes (Postfix 3.7 silently keeps the cursor entry, spec 3.5).
 * DIAGNOSTICS
 *   Warnings through opts.warn; corrupt records, oversize updates and store failures are
 *   rate-limited (util/ratelimit.ts). Nothing is thrown for bad stored data or a failing
 *   store (StoreError): a lookup misses, an update or delete claims success, like Postfix's
 *   surrogate table. Session bytes are never logged.
 * SEE ALSO
 *   tls/tls_scache.c, util/dict_utf8.c
 */

import { isUtf8 } from 'node:buffer';
import type { Clock } from '../util/clock.js';
import type { CacheType } from '../config/types.js';
import { printable } from '../util/printable.js';
import { WarnLimiter } from '../util/ratelimit.js';
import { SEAL_OVERHEAD, type Sealer } from '../util/seal.js';
import { newCounters, type CacheStats } from './stats.js';
import type { SessionCache } from './session-cache.js';
import { EVICT_ANY, StoreError, type SessionStore } from './store.js';

/** Limits of one cache, in entries and bytes; 0 means no limit. */
export interface CacheLimits {
  readonly maxEntries: number;
  readonly maxSize: number;
  readonly maxEntrySize: number;
}

export const NO_LIMITS: CacheLimits = Object.freeze({ maxEntries: 0, maxSize: 0, maxEntrySize: 0 });

/** Expired entries removed at most per update that finds the cache full. */
export const ROOM_BATCH = 64;

export interface TlsScacheOptions {
  readonly cacheType: CacheType;
  /** The database as a dict name "type:path", for warnings. */
  readonly dictName: string;
  /** Sanitised timeout in seconds (> 0). */
  readonly timeout: number;
  readonly store: SessionStore;
  readonly sealer: Sealer;
  readonly clock: Clock;
  readonly smtputf8: boolean;
  readonly warn: (msg: string) => void;
  readonly limits?: CacheLimits;
}

export class TlsScache implements SessionCache {
  readonly cacheType: CacheType;
  readonly timeout: number;
  readonly limits: CacheLimits;
  private readonly store: SessionStore;
  private readonly sealer: Sealer;
  private readonly clock: Clock;
  private readonly limited: WarnLimiter;
  private readonly counters = newCounters();

  constructor(private readonly opts: TlsScacheOptions) {
    this.cacheType = opts.cacheType;
    this.timeout = opts.timeout;
    this.limits = opts.limits ?? NO_LIMITS;
    this.store = opts.store;
    this.sealer = opts.sealer;
    this.clock = opts.clock;
    this.limited = new WarnLimiter(opts.warn, opts.clock);
  }

  /** The live session for cacheId (a buffer the caller owns), or null (miss, expired, corrupt). */
  lookup(cacheId: Buffer): Buffer | null {
    const c = this.counters;
    if (!this.keyOk(cacheId)) {
      c.misses++;
      return null;
    }
    const key = cacheId.toString('latin1');
    const record = this.guard('lookup', () => this.store.get(key), undefined);
    if (record === undefined) {
      c.misses++;
      return null;
    }
    const r = this.sealer.open(this.cacheType, cacheId, record);
    if (!r.ok) {
      c.corrupt++;
      c.misses++;
      this.limited.warn('corrupt', corruptText(this.cacheType, key, r.reason));
      this.guard('delete', () => this.store.delete(key), false);
      return null;
    }
    if (r.stamp + this.timeout < this.clock.now()) {
      r.session.fill(0);
      c.expired++;
      c.misses++;
      this.guard('delete', () => this.store.delete(key), false);
      return null;
    }
    c.hits++;
    return r.session;
  }

  /** Store (replace) a session with the current time. Always "succeeds", as Postfix. */
  update(cacheId: Buffer, session: Uint8Array): void {
    if (!this.keyOk(cacheId)) return;
    const key = cacheId.toString('latin1');
    const bytes = key.length + SEAL_OVERHEAD + session.length;
    if (refuseOversize(bytes, key, this.limits, this.opts.dictName, this.cacheType, this.limited)) {
      this.counters.refused++;
      return;
    }
    const now = this.clock.now();
    this.guard('update', () => {
      if (this.store.delete(key)) this.counters.replaced++;
      this.makeRoom(bytes, now);
      this.store.put(key, this.sealer.seal(this.cacheType, cacheId, now, session), now);
      this.counters.stores++;
    }, undefined);
  }

  /** Remove; true if an entry existed (or the id was skipped as non-UTF-8, as Postfix). */
  delete(cacheId: Buffer): boolean {
    if (!this.keyOk(cacheId)) return true;
    const key = cacheId.toString('latin1');
    const gone = this.guard('delete', () => this.store.delete(key), false);
    if (gone) this.counters.deletes++;
    return gone;
  }

  /** Remove up to max expired entries; returns the count (< max: nothing left to expire). */
  sweep(max: number): number {
    const n = this.guard('sweep', () => this.store.sweep(this.clock.now() - this.timeout, max), 0);
    this.counters.expired += n;
    return n;
  }

  get size(): number {
    return this.store.size;
  }

  /** A snapshot of the counters and the store's gauges. */
  stats(): CacheStats {
    return Object.freeze({ entries: this.store.size, bytes: this.store.bytes, ...this.counters });
  }

  close(): void {
    this.store.close();
  }

  /* makeRoom - expired entries first (bounded batches), then the oldest, until `bytes` fit */
  private makeRoom(bytes: number, now: number): void {
    const { maxEntries, maxSize } = this.limits;
    const full = (): boolean =>
      (maxEntries > 0 && this.store.size + 1 > maxEntries) || (maxSize > 0 && this.store.bytes + bytes > maxSize);
    let expiredLeft = true;
    while (full()) {
      if (expiredLeft) {
        const n = this.store.sweep(now - this.timeout, ROOM_BATCH);
        this.counters.expired += n;
        expiredLeft = n === ROOM_BATCH;
        continue;
      }
      if (this.store.sweep(EVICT_ANY, 1) === 0) break;
      this.counters.evicted++;
    }
  }

  /* guard - run a store operation; a StoreError becomes a rate-limited warning and `fallback` */
  private guard<T>(op: string, fn: () => T, fallback: T): T {
    try {
      return fn();
    } catch (err) {
      if (!(err instanceof StoreError)) throw err;
      // A StoreError's message is the file and errorReason() of the engine's error, built only by
      // its constructor (cache/store.ts): never a bound value or the error's other fields.
      this.limited.warn('store', `${this.opts.dictName}: cannot ${op} TLS session cache entry: ${err.message}`);
      return fallback;
    }
  }

  private keyOk(cacheId: Buffer): boolean {
    return utf8KeyOk(cacheId, this.opts.smtputf8, this.opts.dictName, this.opts.warn);
  }
}

/* Rules shared with the remote cache (cache/rscache.ts). */

/** The dict_utf8 check of spec 3.3: false (with Postfix's warning) for a non-UTF-8 id. */
export function utf8KeyOk(cacheId: Buffer, smtputf8: boolean, dictName: string, warn: (msg: string) => void): boolean {
  if (!smtputf8 || isUtf8(cacheId)) return true;
  warn(`${dictName}: non-UTF-8 key "${printable(cacheId.toString('latin1'))}": malformed UTF-8 or invalid codepoint`);
  return false;
}

/** True (with a rate-limited warning) when an entry of `bytes` can never fit under a limit. */
export function refuseOversize(
  bytes: number,
  key: string,
  limits: CacheLimits,
  dictName: string,
  cacheType: CacheType,
  limited: WarnLimiter,
): boolean {
  const { maxEntrySize, maxSize } = limits;
  const over =
    maxEntrySize > 0 && bytes > maxEntrySize
      ? { name: 'max_entry_size', limit: maxEntrySize }
      : maxSize > 0 && bytes > maxSize
        ? { name: 'max_size', limit: maxSize }
        : null;
  if (over === null) return false;
  limited.warn('oversize', `${dictName}: entry for ${printable(key)} is ${bytes} bytes, over ${cacheType}_tls_session_cache_${over.name} ${over.limit}: not stored`);
  return true;
}

/** The warning for a record that fails to open (no session bytes, only the reason). */
export function corruptText(cacheType: CacheType, key: string, reason: string): string {
  return `${cacheType} TLS cache: malformed entry for ${printable(key)}: ${reason}; entry removed`;
}
