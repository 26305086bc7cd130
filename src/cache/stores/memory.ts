/*
 * NAME
 *   cache/stores/memory - in-process session store (`memory:` and the tests)
 * SYNOPSIS
 *   new MemoryStore(): SessionStore
 * DESCRIPTION
 *   A Map kept in write order: put() deletes and re-inserts, so iteration order is update
 *   order, and with a clock that does not step back that is stamp order. sweep() therefore
 *   reads old records from the front and stops at the first one at or above the cutoff: the
 *   cost of a sweep is the number of records it removes, not the table size. A record
 *   written under a clock that stepped back sits later than its stamp says; it is still
 *   found by the next sweeps once the records in front of it go, and lookups check expiry
 *   themselves.
 *   Dropped records are overwritten with zeros: the store owns them, and although they are
 *   sealed (util/seal.ts), nothing is gained by leaving them readable.
 * LIMITS
 *   Memory only; emptied at every start, like Postfix's truncated database. Limits are the
 *   cache's (cache/scache.ts): with no limit, memory grows with the cache.
 */

import type { SessionStore } from '../store.js';

interface Slot {
  record: Buffer;
  stamp: number;
}

export class MemoryStore implements SessionStore {
  private readonly map = new Map<string, Slot>();
  private total = 0;

  get(key: string): Buffer | undefined {
    return this.map.get(key)?.record;
  }

  put(key: string, record: Buffer, stamp: number): void {
    this.delete(key);
    this.map.set(key, { record, stamp });
    this.total += key.length + record.length;
  }

  delete(key: string): boolean {
    const old = this.map.get(key);
    if (old === undefined) return false;
    this.drop(key, old);
    return true;
  }

  sweep(cutoff: number, max: number): number {
    let n = 0;
    for (const [key, slot] of this.map) {
      if (n >= max || slot.stamp >= cutoff) break;
      this.drop(key, slot);
      n++;
    }
    return n;
  }

  get size(): number {
    return this.map.size;
  }

  get bytes(): number {
    return this.total;
  }

  close(): void {
    for (const slot of this.map.values()) slot.record.fill(0);
    this.map.clear();
    this.total = 0;
  }

  private drop(key: string, slot: Slot): void {
    this.map.delete(key);
    this.total -= key.length + slot.record.length;
    slot.record.fill(0);
  }
}
