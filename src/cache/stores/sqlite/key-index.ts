/*
 * NAME
 *   cache/stores/sqlite/key-index - where the SQLite store's keys are: key hash -> row id(s)
 * SYNOPSIS
 *   new KeyIndex()
 *   index.hash(k): number          index.ids(h): number | number[] | undefined
 *   index.add(h, id)               index.remove(h, id)               index.clear()
 * DESCRIPTION
 *   The SQLite store (cache/stores/sqlite.ts) keeps no index on its keys in the database:
 *   it finds a key's row here, in memory, and probes that row by its id. hash() is a 32-bit
 *   hash of the key bytes, FNV-1a from a random basis with a murmur3 finaliser: keyed per
 *   index, so nobody outside can pick keys that collide on purpose. Each hash maps to the
 *   id of its row, or to the ids (in the order added) of the few rows whose keys share the
 *   hash; a single id is kept as a number, not a one-element array.
 *   The index knows hashes, not keys: two keys with one hash are told apart by whoever
 *   probes the rows (the store's statements check the key: WHERE id = ? AND k = ?), so a
 *   collision costs an extra probe, never a wrong answer.
 * LIMITS
 *   About 30-60 bytes per entry (a Map slot; an array only where hashes collide). remove()
 *   of a long collision list copies it (collisions are rare and their lists short).
 *   The caller keeps the index in step with the table; nothing here reads the database.
 * DIAGNOSTICS
 *   None: remove() of an id that is not there does nothing.
 * SEE ALSO
 *   cache/stores/sqlite.ts, test/unit/sqlite-parts.test.ts
 */

import { randomBytes } from 'node:crypto';

export class KeyIndex {
  private readonly map = new Map<number, number | number[]>();
  private readonly basis = randomBytes(4).readInt32LE(0);

  hash(k: Buffer): number {
    let h = this.basis;
    for (let i = 0; i < k.length; i++) h = Math.imul(h ^ k[i], 0x01000193);
    h ^= h >>> 16;
    h = Math.imul(h, 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    return h ^ (h >>> 16);
  }

  /** The ids of the rows whose key has hash h (usually none or one). */
  ids(h: number): number | number[] | undefined {
    return this.map.get(h);
  }

  add(h: number, id: number): void {
    const old = this.map.get(h);
    if (old === undefined) this.map.set(h, id);
    else if (typeof old === 'number') this.map.set(h, [old, id]);
    else old.push(id);
  }

  remove(h: number, id: number): void {
    const old = this.map.get(h);
    if (old === id) {
      this.map.delete(h);
    } else if (typeof old === 'object') {
      const rest = old.filter((x) => x !== id);
      this.map.set(h, rest.length === 1 ? rest[0] : rest);
    }
  }

  clear(): void {
    this.map.clear();
  }
}
