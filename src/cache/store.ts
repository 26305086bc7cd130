/*
 * NAME
 *   cache/store - the interface every session-cache store implements
 * DESCRIPTION
 *   A store maps a cache_id (a byte string held as a latin1 JS string, so that distinct byte
 *   sequences never collide) to an opaque record, and keeps an index on the record's stamp
 *   (its update time) so that expiry finds old records without walking the table.
 *   Stores know nothing of timeouts or protocol: cache/scache.ts owns those rules.
 *   A store never keeps a reference to a Buffer passed to put() beyond the call unless it
 *   owns it (cache/entry.ts copies), and wipes records it drops where it holds the bytes.
 */

export interface SessionStore {
  /** The record for `key`, or undefined. */
  get(key: string): Buffer | undefined;
  /** Insert or replace; `stamp` is the record's update time (seconds). The store owns `record`. */
  put(key: string, record: Buffer, stamp: number): void;
  /** Remove; true if the key existed. */
  delete(key: string): boolean;
  /**
   * Remove up to `max` records whose stamp is below `cutoff`, oldest first.
   * Returns how many were removed; fewer than `max` means none are left.
   */
  sweep(cutoff: number, max: number): number;
  /** Number of records. */
  readonly size: number;
  /** Drop everything and release resources. */
  close(): void;
}
