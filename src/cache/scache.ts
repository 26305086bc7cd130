/*
 * NAME
 *   cache/scache - one TLS session cache (smtpd, smtp or lmtp) over any store: lookup,
 *   update, delete, expiry, limits, counters
 * SYNOPSIS
 *   new TlsScache(opts).lookup(cacheId) / update(cacheId, session) / delete(cacheId)
 *   sweep(max)    clear()    stats(): CacheStats    size    shared    close()
 * DESCRIPTION
 *   The rules of tls/tls_scache.c (spec 3.3-3.5), once, over every SessionStore
 *   (cache/store.ts), local or shared:
 *   - update always stores a fresh timestamp (now) and replaces any old entry;
 *   - an entry is expired iff stamp + timeout < now (at exactly stamp + timeout it is valid);
 *   - lookup of an expired or corrupt entry deletes it and misses;
 *   - with smtputf8_enable, a cache_id that is not valid UTF-8 is neither stored nor found
 *     (update and delete claim success, lookup misses), with Postfix's warning.
 *   Every record is sealed (util/seal.ts) with the cache type and cache_id as associated
 *   data; the stamp that decides expiry on lookup is the authenticated one in the record, so
 *   a store's own idea of time (an index column, a TTL) can at worst drop an entry early. The
 *   ring is the store's own when it has one (a group's key), else opts.sealer. The record is
 *   sealed before the first store call, so the caller may wipe the session when update()
 *   returns, even if the store answers later.
 *
 *   Limits (extensions; 0 = no limit; cache/limits.ts): an entry is the cache_id plus its
 *   sealed record (session + SEAL_OVERHEAD bytes). An entry over max_entry_size, or over
 *   max_size on its own, is refused: nothing is stored or changed, the update still answers
 *   OK (Postfix's tls_scache_update() result is never reported to the client), with a
 *   rate-limited warning. When storing would pass max_entries or max_size, expired entries
 *   go first (a bounded batch through the stamp index), then the oldest live ones, one at a
 *   time, until the new entry fits.
 *
 *   sweep() removes up to `max` expired entries through the store's stamp index; the caller
 *   (cache/caches.ts) runs it in small batches between requests. Unlike Postfix's cursor
 *   walk there is no entry "under the cursor" between batches, so an explicit delete always
 *   deletes (Postfix 3.7 silently keeps the cursor entry, spec 3.5).
 *
 *   Store traits change what the rules ask of the store, never the rules: over a store that
 *   expires its own entries (expiresEntries) an update puts the record with a TTL of
 *   timeout + 1 seconds (valid up to and including stamp + timeout) and nothing is swept,
 *   evicted or counted as replaced (max_entries and max_size of the whole cache are the
 *   store's business, e.g. Redis maxmemory; max_entry_size still refuses); a record longer
 *   than the store's maxRecord is corrupt by its length alone and never decrypted.
 *   Over a store that answers now, every call answers now, with no promise and no closure
 *   allocated; over one that answers later, lookup/update/delete/sweep return promises.
 * DIAGNOSTICS
 *   Warnings through opts.warn; corrupt records, oversize updates and store failures are
 *   rate-limited (util/ratelimit.ts). Nothing is thrown or rejected for bad stored data or a
 *   failing store (StoreError, or anything from a store that reports its own failures): a
 *   lookup misses, an update or delete claims success, like Postfix's surrogate table.
 *   Session bytes are never logged; a cache_id is shown as the store names it (showKey).
 * SEE ALSO
 *   tls/tls_scache.c, util/dict_utf8.c
 */

import { isUtf8 } from 'node:buffer';
import type { Clock } from '../util/clock.js';
import type { CacheType } from '../config/types.js';
import type { Maybe } from '../util/maybe.js';
import { printable } from '../util/printable.js';
import { WarnLimiter } from '../util/ratelimit.js';
import { SEAL_OVERHEAD, Sealer } from '../util/seal.js';
import { NO_LIMITS, type CacheLimits } from './limits.js';
import { newCounters, type CacheStats } from './stats.js';
import type { SessionCache } from './session-cache.js';
import { EVICT_ANY, StoreError, type SessionStore } from './store.js';

/** Expired entries removed at most per update that finds the cache full. */
export const ROOM_BATCH = 64;

/** Entries removed per store call while emptying the cache (tlsmgr-ctl flush). */
const CLEAR_BATCH = 1024;

export interface TlsScacheOptions {
  readonly cacheType: CacheType;
  /** The database as a dict name "type:path", for warnings. */
  readonly dictName: string;
  /** Sanitised timeout in seconds (> 0). */
  readonly timeout: number;
  readonly store: SessionStore;
  /** Seals records unless the store has its own ring (default: Sealer.fresh()). */
  readonly sealer?: Sealer;
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
  /** The store expires entries itself (a TTL on put; no sweep, eviction or replace count). */
  private readonly selfExpiring: boolean;
  /** Seconds an entry must live in the store: valid up to and including stamp + timeout. */
  private readonly ttl: number;
  /** The longest record opened (Infinity: a store of our own, no bound). */
  private readonly maxRecord: number;

  constructor(private readonly opts: TlsScacheOptions) {
    this.cacheType = opts.cacheType;
    this.timeout = opts.timeout;
    this.limits = opts.limits ?? NO_LIMITS;
    this.store = opts.store;
    this.sealer = opts.store.sealer ?? opts.sealer ?? Sealer.fresh();
    this.clock = opts.clock;
    this.limited = new WarnLimiter(opts.warn, opts.clock);
    this.selfExpiring = opts.store.expiresEntries === true;
    this.ttl = opts.timeout + 1;
    this.maxRecord = opts.store.maxRecord ?? Infinity;
  }

  /** The live session for cacheId (a buffer the caller owns), or null (miss, expired, corrupt). */
  lookup(cacheId: Buffer): Maybe<Buffer | null> {
    if (!this.keyOk(cacheId)) {
      this.counters.misses++;
      return null;
    }
    const key = cacheId.toString('latin1');
    let got: Maybe<Buffer | undefined>;
    try {
      got = this.store.get(key);
    } catch (err) {
      return this.lookupFailed(err);
    }
    if (got instanceof Promise) {
      return got.then(
        (record) => this.opened(cacheId, key, record),
        (err: unknown) => this.lookupFailed(err),
      );
    }
    return this.opened(cacheId, key, got);
  }

  /** Store (replace) a session with the current time. Always "succeeds", as Postfix. */
  update(cacheId: Buffer, session: Uint8Array): Maybe<void> {
    if (!this.keyOk(cacheId)) return;
    const key = cacheId.toString('latin1');
    const bytes = key.length + SEAL_OVERHEAD + session.length;
    if (this.oversize(bytes, key)) {
      this.counters.refused++;
      return;
    }
    const now = this.clock.now();
    const record = this.sealer.seal(this.cacheType, cacheId, now, session);
    let done: Maybe<void>;
    try {
      done = this.selfExpiring ? this.putRecord(key, record, now) : this.replace(key, record, bytes, now);
    } catch (err) {
      return this.failed('update', err, undefined);
    }
    if (done instanceof Promise) return done.then(undefined, (err: unknown) => this.failed('update', err, undefined));
    return done;
  }

  /** Remove; true if an entry existed (or the id was skipped as non-UTF-8, as Postfix). */
  delete(cacheId: Buffer): Maybe<boolean> {
    if (!this.keyOk(cacheId)) return true;
    const key = cacheId.toString('latin1');
    let gone: Maybe<boolean>;
    try {
      gone = this.store.delete(key);
    } catch (err) {
      return this.failed('delete', err, false);
    }
    if (gone instanceof Promise) return gone.then(this.countDelete, (err: unknown) => this.failed('delete', err, false));
    return this.countDelete(gone);
  }

  /** Remove up to max expired entries; returns the count (< max: nothing left to expire). */
  sweep(max: number): Maybe<number> {
    if (this.selfExpiring) return 0;
    let n: Maybe<number>;
    try {
      n = this.store.sweep(this.clock.now() - this.timeout, max);
    } catch (err) {
      return this.failed('sweep', err, 0);
    }
    if (n instanceof Promise) return n.then(this.countExpired, (err: unknown) => this.failed('sweep', err, 0));
    return this.countExpired(n);
  }

  get shared(): boolean {
    return this.selfExpiring;
  }

  /*
   * clear - empty the cache, counters kept: an embedded store is swept empty in batches of
   * CLEAR_BATCH (the stamps are all below EVICT_ANY), yielding to the event loop between
   * batches as a cleanup pass does, so that emptying a million entries never holds up a
   * request for more than one batch; a shared store needs its clear() trait.
   */
  async clear(): Promise<number> {
    const store = this.store;
    if (store.clear !== undefined) return store.clear();
    if (this.selfExpiring) throw new Error(`${this.opts.dictName}: this store cannot be emptied`);
    let total = 0;
    for (;;) {
      const n = await store.sweep(EVICT_ANY, CLEAR_BATCH);
      total += n;
      if (n < CLEAR_BATCH) return total;
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }

  /** Entries held; -1 when the store does not know (a shared store). */
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

  /* opened - the lookup rules for what the store returned: missing, corrupt, expired or a hit */
  private opened(cacheId: Buffer, key: string, record: Buffer | undefined): Buffer | null {
    const c = this.counters;
    if (record === undefined) {
      c.misses++;
      return null;
    }
    // A record longer than any of ours (a shared store others can write) is refused by its
    // length alone, before any decryption work is spent on it.
    const r = record.length > this.maxRecord
      ? { ok: false as const, reason: `record longer than the ${this.maxRecord}-byte limit` }
      : this.sealer.open(this.cacheType, cacheId, record);
    if (!r.ok) {
      c.corrupt++;
      c.misses++;
      this.limited.warn('corrupt', corruptText(this.cacheType, this.shown(key, record), r.reason));
      this.drop(key, record);
      return null;
    }
    if (r.stamp + this.timeout < this.clock.now()) {
      r.session.fill(0);
      c.expired++;
      c.misses++;
      this.drop(key, record);
      return null;
    }
    c.hits++;
    return r.session;
  }

  /* replace - delete any old entry, make room under the limits, then put (local rules) */
  private replace(key: string, record: Buffer, bytes: number, now: number): Maybe<void> {
    const gone = this.store.delete(key);
    if (gone instanceof Promise) return gone.then((g) => this.replaced(g, key, record, bytes, now));
    return this.replaced(gone, key, record, bytes, now);
  }

  private replaced(gone: boolean, key: string, record: Buffer, bytes: number, now: number): Maybe<void> {
    if (gone) this.counters.replaced++;
    const room = this.makeRoom(bytes, now, true);
    if (room instanceof Promise) return room.then(() => this.putRecord(key, record, now));
    return this.putRecord(key, record, now);
  }

  private putRecord(key: string, record: Buffer, now: number): Maybe<void> {
    const put = this.store.put(key, record, now, this.ttl);
    if (put instanceof Promise) return put.then(this.countStore);
    this.counters.stores++;
  }

  /* makeRoom - expired entries first (bounded batches), then the oldest, until `bytes` fit */
  private makeRoom(bytes: number, now: number, expiredLeft: boolean): Maybe<void> {
    let left: boolean | null = expiredLeft;
    while (left !== null && this.full(bytes)) {
      const was: boolean = left;
      const n = was ? this.store.sweep(now - this.timeout, ROOM_BATCH) : this.store.sweep(EVICT_ANY, 1);
      if (n instanceof Promise) {
        return n.then((k) => {
          const next = this.roomSwept(k, was);
          return next === null ? undefined : this.makeRoom(bytes, now, next);
        });
      }
      left = this.roomSwept(n, was);
    }
  }

  /* roomSwept - count one makeRoom sweep: whether expired entries may be left, or null: stop */
  private roomSwept(n: number, expiredLeft: boolean): boolean | null {
    if (expiredLeft) {
      this.counters.expired += n;
      return n === ROOM_BATCH;
    }
    if (n === 0) return null;
    this.counters.evicted++;
    return false;
  }

  private full(bytes: number): boolean {
    const { maxEntries, maxSize } = this.limits;
    return (maxEntries > 0 && this.store.size + 1 > maxEntries) || (maxSize > 0 && this.store.bytes + bytes > maxSize);
  }

  /* drop - remove the entry of a corrupt or expired record, without waiting for it */
  private drop(key: string, record: Buffer): void {
    if (this.store.discard !== undefined) {
      this.store.discard(key, record);
      return;
    }
    let gone: Maybe<boolean>;
    try {
      gone = this.store.delete(key);
    } catch (err) {
      this.failed('delete', err, false);
      return;
    }
    if (gone instanceof Promise) gone.catch((err: unknown) => this.failed('delete', err, false));
  }

  private lookupFailed(err: unknown): null {
    this.failed('lookup', err, null);
    this.counters.misses++;
    return null;
  }

  /*
   * failed - a store failure becomes a rate-limited warning and `fallback`; a store that
   * reports its own failures has logged them already. Anything else is a bug: thrown on.
   */
  private failed<T>(op: string, err: unknown, fallback: T): T {
    if (this.store.reportsFailures === true) return fallback;
    if (!(err instanceof StoreError)) throw err;
    // A StoreError's message is the file and errorReason() of the engine's error, built only by
    // its constructor (cache/store.ts): never a bound value or the error's other fields.
    this.limited.warn('store', `${this.opts.dictName}: cannot ${op} TLS session cache entry: ${err.message}`);
    return fallback;
  }

  private readonly countStore = (): void => {
    this.counters.stores++;
  };

  private readonly countDelete = (gone: boolean): boolean => {
    if (gone) this.counters.deletes++;
    return gone;
  };

  private readonly countExpired = (n: number): number => {
    this.counters.expired += n;
    return n;
  };

  private shown(key: string, record?: Buffer): string {
    return this.store.showKey !== undefined ? this.store.showKey(key, record) : key;
  }

  /* oversize - true (with a rate-limited warning) when an entry of `bytes` can never fit */
  private oversize(bytes: number, key: string): boolean {
    const { maxEntrySize, maxSize } = this.limits;
    const over =
      maxEntrySize > 0 && bytes > maxEntrySize
        ? { name: 'max_entry_size', limit: maxEntrySize }
        : maxSize > 0 && bytes > maxSize
          ? { name: 'max_size', limit: maxSize }
          : null;
    if (over === null) return false;
    this.limited.warn(
      'oversize',
      `${this.opts.dictName}: entry for ${printable(this.shown(key))} is ${bytes} bytes, over ${this.cacheType}_tls_session_cache_${over.name} ${over.limit}: not stored`,
    );
    return true;
  }

  /* keyOk - the dict_utf8 check of spec 3.3: false (with Postfix's warning) for a non-UTF-8 id */
  private keyOk(cacheId: Buffer): boolean {
    if (!this.opts.smtputf8 || isUtf8(cacheId)) return true;
    this.opts.warn(`${this.opts.dictName}: non-UTF-8 key "${printable(cacheId.toString('latin1'))}": malformed UTF-8 or invalid codepoint`);
    return false;
  }
}

/** The warning for a record that fails to open (no session bytes, only the reason). */
export function corruptText(cacheType: CacheType, key: string, reason: string): string {
  return `${cacheType} TLS cache: malformed entry for ${printable(key)}: ${reason}; entry removed`;
}
