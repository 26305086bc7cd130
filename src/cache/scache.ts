/*
 * NAME
 *   cache/scache - one TLS session cache (smtpd, smtp or lmtp): lookup, update, delete, expiry
 * SYNOPSIS
 *   new TlsScache(opts).lookup(cacheId) / update(cacheId, session) / delete(cacheId)
 *   sweep(max): number
 * DESCRIPTION
 *   The rules of tls/tls_scache.c (spec 3.3-3.5) over any SessionStore:
 *   - update always stores a fresh timestamp (now) and replaces any old entry;
 *   - an entry is expired iff stamp + timeout < now (at exactly stamp + timeout it is valid);
 *   - lookup of an expired or malformed entry deletes it and misses;
 *   - with smtputf8_enable, a cache_id that is not valid UTF-8 is neither stored nor found
 *     (update and delete claim success, lookup misses), with Postfix's warning.
 *   sweep() removes up to `max` expired entries through the store's stamp index; the caller
 *   (cache/cleanup.ts) runs it in small batches between requests. Unlike Postfix's cursor
 *   walk there is no entry "under the cursor" between batches, so an explicit delete always
 *   deletes (Postfix 3.7 silently keeps the cursor entry, spec 3.5).
 * DIAGNOSTICS
 *   Warnings through opts.warn; nothing is thrown for bad stored data.
 * SEE ALSO
 *   tls/tls_scache.c, util/dict_utf8.c
 */

import { isUtf8 } from 'node:buffer';
import type { Clock } from '../clock.js';
import type { CacheType } from '../config/types.js';
import { printable } from '../log/printable.js';
import { decodeEntry, encodeEntry } from './entry.js';
import type { SessionStore } from './store.js';

export interface TlsScacheOptions {
  readonly cacheType: CacheType;
  /** The database as a dict name "type:path", for warnings. */
  readonly dictName: string;
  /** Sanitised timeout in seconds (> 0). */
  readonly timeout: number;
  readonly store: SessionStore;
  readonly clock: Clock;
  readonly smtputf8: boolean;
  readonly warn: (msg: string) => void;
}

export class TlsScache {
  readonly cacheType: CacheType;
  readonly timeout: number;
  private readonly store: SessionStore;
  private readonly clock: Clock;

  constructor(private readonly opts: TlsScacheOptions) {
    this.cacheType = opts.cacheType;
    this.timeout = opts.timeout;
    this.store = opts.store;
    this.clock = opts.clock;
  }

  /** The live session for cacheId, or null (miss, expired, malformed). */
  lookup(cacheId: Buffer): Buffer | null {
    if (!this.keyOk(cacheId)) return null;
    const key = cacheId.toString('latin1');
    const record = this.store.get(key);
    if (record === undefined) return null;
    const entry = decodeEntry(record);
    if (entry === null) {
      this.opts.warn(`${this.cacheType} TLS cache: truncated entry for ${printable(key)}: ${record.length} bytes`);
      this.store.delete(key);
      return null;
    }
    if (entry.stamp + this.timeout < this.clock.now()) {
      this.store.delete(key);
      return null;
    }
    return entry.session;
  }

  /** Store (replace) a session with the current time. Always "succeeds", as Postfix. */
  update(cacheId: Buffer, session: Uint8Array): void {
    if (!this.keyOk(cacheId)) return;
    const now = this.clock.now();
    this.store.put(cacheId.toString('latin1'), encodeEntry(now, session), now);
  }

  /** Remove; true if an entry existed (or the id was skipped as non-UTF-8, as Postfix). */
  delete(cacheId: Buffer): boolean {
    if (!this.keyOk(cacheId)) return true;
    return this.store.delete(cacheId.toString('latin1'));
  }

  /** Remove up to max expired entries; returns the count (< max: nothing left to expire). */
  sweep(max: number): number {
    return this.store.sweep(this.clock.now() - this.timeout, max);
  }

  get size(): number {
    return this.store.size;
  }

  close(): void {
    this.store.close();
  }

  /* keyOk - the dict_utf8 check of spec 3.3 */
  private keyOk(cacheId: Buffer): boolean {
    if (!this.opts.smtputf8 || isUtf8(cacheId)) return true;
    this.opts.warn(
      `${this.opts.dictName}: non-UTF-8 key "${printable(cacheId.toString('latin1'))}": malformed UTF-8 or invalid codepoint`,
    );
    return false;
  }
}
