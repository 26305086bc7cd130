/*
 * NAME
 *   cache/store - the interface every session-cache store implements
 * SYNOPSIS
 *   interface SessionStore { get put delete sweep size bytes close }
 *   class StoreError          a failure of the storage engine (disk full, I/O error)
 *   EVICT_ANY                 a sweep cutoff above every stamp: sweep(EVICT_ANY, n) evicts
 * DESCRIPTION
 *   A store maps a cache_id (a byte string held as a latin1 JS string, so that distinct byte
 *   sequences never collide) to an opaque record (a sealed record, util/seal.ts), and keeps
 *   an index on the record's stamp (its update time) so that expiry and eviction find the
 *   oldest records without walking the table. Stores know nothing of timeouts, limits,
 *   encryption or protocol: cache/scache.ts owns those rules, so every store behaves alike
 *   (test/unit/store-conformance.test.ts runs one suite against each).
 *   `bytes` counts, per record, the key length plus the record length: the payload the
 *   limits of scache.ts bound, not the engine's own overhead (pages, indexes).
 *   A store never keeps a reference to a Buffer passed to put() beyond the call unless it
 *   owns it (the caller hands the record over), and wipes records it drops where it holds
 *   the bytes.
 * DIAGNOSTICS
 *   Engine failures are thrown as StoreError; the cache turns them into a warning and a miss
 *   (or a claimed success for update/delete), as Postfix's surrogate table does.
 */

import { TlsmgrError } from '../util/errors.js';
import { errorReason, printable } from '../util/printable.js';

/** A sweep cutoff above every possible stamp: sweep(EVICT_ANY, n) removes the n oldest. */
export const EVICT_ANY = Number.MAX_SAFE_INTEGER;

export interface SessionStore {
  /** The record for `key`, or undefined. */
  get(key: string): Buffer | undefined;
  /** Insert or replace; `stamp` is the record's update time (seconds). The store owns `record`. */
  put(key: string, record: Buffer, stamp: number): void;
  /** Remove; true if the key existed. */
  delete(key: string): boolean;
  /**
   * Remove up to `max` records whose stamp is below `cutoff`, oldest first (equal stamps in
   * write order). Returns how many were removed; fewer than `max` means none are left.
   */
  sweep(cutoff: number, max: number): number;
  /** Number of records. */
  readonly size: number;
  /** Sum of key length + record length over all records. */
  readonly bytes: number;
  /** Drop everything and release resources. */
  close(): void;
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
