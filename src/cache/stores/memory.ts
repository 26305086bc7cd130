/*
 * NAME
 *   cache/stores/memory - in-process session store
 * DESCRIPTION
 *   A Map kept in stamp order: put() deletes and re-inserts, so iteration order is update
 *   order, and with a clock that does not step back that is stamp order. sweep() therefore
 *   reads expired records from the front and stops at the first live one: the cost of a
 *   sweep is the number of records it removes, not the table size. A record written under a
 *   clock that stepped back sits later than its stamp says; it is still found by the next
 *   sweeps once the records in front of it expire, and lookups check expiry themselves.
 *   Dropped records are overwritten with zeros (they hold TLS master secrets).
 * LIMITS
 *   Memory only; emptied at every start, like Postfix's truncated database.
 */

import type { SessionStore } from '../store.js';

interface Slot {
  record: Buffer;
  stamp: number;
}

export class MemoryStore implements SessionStore {
  private readonly map = new Map<string, Slot>();

  get(key: string): Buffer | undefined {
    return this.map.get(key)?.record;
  }

  put(key: string, record: Buffer, stamp: number): void {
    const old = this.map.get(key);
    if (old !== undefined) {
      this.map.delete(key);
      old.record.fill(0);
    }
    this.map.set(key, { record, stamp });
  }

  delete(key: string): boolean {
    const old = this.map.get(key);
    if (old === undefined) return false;
    this.map.delete(key);
    old.record.fill(0);
    return true;
  }

  sweep(cutoff: number, max: number): number {
    let n = 0;
    for (const [key, slot] of this.map) {
      if (n >= max || slot.stamp >= cutoff) break;
      this.map.delete(key);
      slot.record.fill(0);
      n++;
    }
    return n;
  }

  get size(): number {
    return this.map.size;
  }

  close(): void {
    for (const slot of this.map.values()) slot.record.fill(0);
    this.map.clear();
  }
}
