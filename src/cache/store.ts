/*
 * NAME
 *   cache/store - the interface every session-cache store implements
 * SYNOPSIS
 *   interface SessionStore { get put delete sweep size bytes close }    answer now or later
 *     optional traits: expiresEntries reportsFailures maxRecord sealer discard showKey clear
 *   class StoreError          a failure of the storage engine (disk full, I/O error)
 *   EVICT_ANY                 a sweep cutoff above every stamp: sweep(EVICT_ANY, n) evicts
 * DESCRIPTION
 *   A store maps a cache_id (a byte string held as a latin1 JS string, so that distinct byte
 *   sequences never collide) to an opaque record (a sealed record, util/seal.ts), and keeps
 *   an index on the record's stamp (its update time) so that expiry and eviction find the
 *   oldest records without walking the table. Stores know nothing of timeouts, limits,
 *   encryption or protocol: cache/scache.ts owns those rules, so every store behaves alike
 *   (test/unit/store-conformance.test.ts runs one suite against each).
 *   get, put, delete and sweep answer now (an embedded store: a plain value, no promise) or
 *   later (a network store: a promise, util/maybe.ts); the cache serves both with one set of
 *   rules and allocates nothing extra for a store that answers now.
 *   `bytes` counts, per record, the key length plus the record length: the payload the
 *   limits of scache.ts bound, not the engine's own overhead (pages, indexes).
 *   A store never keeps a reference to a Buffer passed to put() beyond the call unless it
 *   owns it (the caller hands the record over), and wipes records it drops where it holds
 *   the bytes. Records are sealed, so never empty; a store may read an empty one as missing.
 *
 *   Traits. Every member below the core is optional; a store without them is this host's own
 *   embedded database (memory:, the SQLite file). A store shared by a group of daemons
 *   (cache/stores/redis.ts) declares:
 *     expiresEntries   the store drops each entry itself once put()'s `ttl` has passed: the
 *                      cache never sweeps or evicts it and counts no replacements; size and
 *                      bytes are the group's, unknown here (-1); close() leaves the entries
 *                      to the group (they expire);
 *     reportsFailures  the store logs and counts its own failures (rate-limited): the cache
 *                      then falls back without a warning of its own, whatever is thrown;
 *     maxRecord        get() reads at most maxRecord + 1 bytes of a value (others can write
 *                      the store): a longer record is corrupt by its length, never opened;
 *     sealer           records are sealed with this ring (the group's key) instead of the
 *                      cache table's per-process key;
 *     discard()        remove, without waiting, the entry a record that turned out corrupt or
 *                      expired was read from (default: delete(key));
 *     clear()          remove every entry of this cache from a shared store (the group's):
 *                      what `tlsmgr-ctl flush --cluster` asks for; an embedded store needs
 *                      none (the cache sweeps it empty with sweep(EVICT_ANY, n));
 *     showKey()        how the entry of `key` (read as `record`, when there is one) is named
 *                      in a warning (default: the cache_id, made printable).
 * DIAGNOSTICS
 *   Engine failures are thrown (or rejected) as StoreError; the cache turns them into a
 *   warning and a miss (or a claimed success for update/delete), as Postfix's surrogate table
 *   does. A store with reportsFailures may fail with any error: it has said why already.
 */

import type { Maybe } from '../util/maybe.js';
import { TlsmgrError } from '../util/errors.js';
import { errorReason, printable } from '../util/printable.js';
import type { Sealer } from '../util/seal.js';

/** A sweep cutoff above every possible stamp: sweep(EVICT_ANY, n) removes the n oldest. */
export const EVICT_ANY = Number.MAX_SAFE_INTEGER;

export interface SessionStore {
  /** The record for `key`, or undefined. */
  get(key: string): Maybe<Buffer | undefined>;
  /**
   * Insert or replace; `stamp` is the record's update time (seconds). The store owns
   * `record`. `ttl`: seconds from now for which the record must be kept (a store that
   * expires entries drops it after that; the others keep it until swept or deleted).
   */
  put(key: string, record: Buffer, stamp: number, ttl?: number): Maybe<void>;
  /** Remove; true if the key existed. */
  delete(key: string): Maybe<boolean>;
  /**
   * Remove up to `max` records whose stamp is below `cutoff`, oldest first (equal stamps in
   * write order). Returns how many were removed; fewer than `max` means none are left.
   */
  sweep(cutoff: number, max: number): Maybe<number>;
  /** Number of records; -1 when not known here (expiresEntries). */
  readonly size: number;
  /** Sum of key length + record length over all records; -1 when not known here. */
  readonly bytes: number;
  /** Release resources; drop every record this host owns. */
  close(): void;

  /** Trait: entries expire by put()'s ttl in the store itself (see DESCRIPTION). */
  readonly expiresEntries?: boolean;
  /** Trait: the store reports its own failures; the cache falls back silently. */
  readonly reportsFailures?: boolean;
  /** Trait: get() reads at most maxRecord + 1 bytes; a longer record is corrupt. */
  readonly maxRecord?: number;
  /** Trait: the ring that seals this store's records (a group's shared key). */
  readonly sealer?: Sealer;
  /** Remove the entry `record` (corrupt or expired) was read from, without waiting. */
  discard?(key: string, record: Buffer): void;
  /** Remove every entry of this cache from the store; resolves to how many were removed. */
  clear?(): Maybe<number>;
  /** The entry of `key` (read as `record`) as a warning names it; printable. */
  showKey?(key: string, record?: Buffer): string;
}

/*
 * A storage engine failure. Its message is built here and only here: the file, then
 * errorReason() of the engine's error (its code and message, printable, cut; never a value
 * bound to the statement or the error's other fields). The cache logs the message as it is
 * (cache/scache.ts), so no caller can put session, key or seed bytes into a log line by way
 * of a StoreError.
 */
export class StoreError extends TlsmgrError {
  constructor(file: string, cause: unknown) {
    super('TLSMGR_STORE', `${printable(file, PATH_MAX)}: ${errorReason(cause)}`, { cause });
    this.name = 'StoreError';
  }
}

/** Longest file name shown in a StoreError (Linux PATH_MAX). */
const PATH_MAX = 4096;
