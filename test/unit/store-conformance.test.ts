/*
 * store-conformance - one behaviour suite for every SessionStore (cache/store.ts; style.md
 * habit 7), run against the memory store and the SQLite store: get/put/delete, replace,
 * size and bytes accounting, byte-exact keys (latin1, no collisions), sweep by stamp (oldest
 * first, at most max, stops at the cutoff, equal stamps in write order, a replaced key moves
 * to the newest end), EVICT_ANY, large records, and close().
 * Stamps are written in non-decreasing order, as a clock that does not step back writes them.
 */

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { EVICT_ANY, type SessionStore } from '../../src/cache/store.js';
import { STORE_KINDS, withStoreOf } from '../helpers/stores.js';

const rec = (s: string): Buffer => Buffer.from(s, 'latin1');

/** The keys left in the store, by probing the candidates. */
function present(store: SessionStore, keys: readonly string[]): string[] {
  return keys.filter((k) => store.get(k) !== undefined);
}

for (const kind of STORE_KINDS) {
  describe(`${kind.name} store`, () => {
    const withStore = (fn: (s: SessionStore) => void) => withStoreOf(kind, fn);

    test('an empty store: nothing found, nothing deleted, nothing swept', withStore((s) => {
      assert.equal(s.size, 0);
      assert.equal(s.bytes, 0);
      assert.equal(s.get('x'), undefined);
      assert.equal(s.delete('x'), false);
      assert.equal(s.sweep(EVICT_ANY, 10), 0);
    }));

    test('put then get returns the same bytes; size and bytes count key + record', withStore((s) => {
      s.put('id-1', rec('record one'), 100);
      s.put('id-22', rec('two'), 101);
      assert.deepEqual(s.get('id-1'), rec('record one'));
      assert.deepEqual(s.get('id-22'), rec('two'));
      assert.equal(s.size, 2);
      assert.equal(s.bytes, 4 + 10 + 5 + 3);
    }));

    test('put replaces: one entry, the new record, bytes adjusted', withStore((s) => {
      s.put('k', rec('old old old'), 100);
      s.put('k', rec('new'), 101);
      assert.equal(s.size, 1);
      assert.deepEqual(s.get('k'), rec('new'));
      assert.equal(s.bytes, 1 + 3);
    }));

    test('delete: true once, then false; bytes back to 0', withStore((s) => {
      s.put('k', rec('v'), 100);
      assert.equal(s.delete('k'), true);
      assert.equal(s.delete('k'), false);
      assert.equal(s.get('k'), undefined);
      assert.equal(s.size, 0);
      assert.equal(s.bytes, 0);
    }));

    test('keys are byte strings: every byte value, and no collision between encodings', withStore((s) => {
      const all = Array.from({ length: 255 }, (_, i) => String.fromCharCode(i + 1)).join('');
      const keys = [all, 'a\xff', 'a\xc3\xbf', 'a\u00ff'.normalize(), 'A\xff', 'a'];
      // 'a\xff' and 'a\u00ff' are the same latin1 string: five distinct keys.
      keys.forEach((k, i) => s.put(k, rec(`r${i}`), 100));
      assert.equal(s.size, 5);
      assert.deepEqual(s.get(all), rec('r0'));
      assert.deepEqual(s.get('a\xff'), rec('r3'));
      assert.deepEqual(s.get('a\xc3\xbf'), rec('r2'));
      assert.deepEqual(s.get('A\xff'), rec('r4'));
    }));

    test('sweep removes records below the cutoff, oldest first, at most max', withStore((s) => {
      const keys = ['a', 'b', 'c', 'd', 'e'];
      [1, 2, 2, 3, 5].forEach((stamp, i) => s.put(keys[i], rec(keys[i]), stamp));
      assert.equal(s.sweep(3, 2), 2, 'max');
      assert.deepEqual(present(s, keys), ['c', 'd', 'e'], 'equal stamps in write order');
      assert.equal(s.sweep(3, 10), 1, 'fewer than max: none left below the cutoff');
      assert.equal(s.sweep(3, 10), 0);
      assert.deepEqual(present(s, keys), ['d', 'e'], 'stamp == cutoff is kept');
      assert.equal(s.size, 2);
      assert.equal(s.bytes, 4);
      assert.equal(s.sweep(3, 0), 0, 'max 0 removes nothing');
    }));

    test('EVICT_ANY evicts the oldest regardless of age; a replaced key is newest', withStore((s) => {
      s.put('a', rec('a'), 10);
      s.put('b', rec('b'), 11);
      s.put('c', rec('c'), 12);
      s.put('a', rec('A'), 13);
      assert.equal(s.sweep(EVICT_ANY, 1), 1);
      assert.deepEqual(present(s, ['a', 'b', 'c']), ['a', 'c']);
      assert.equal(s.sweep(EVICT_ANY, 1), 1);
      assert.deepEqual(present(s, ['a', 'b', 'c']), ['a']);
      assert.equal(s.sweep(EVICT_ANY, 5), 1);
      assert.equal(s.size, 0);
      assert.equal(s.bytes, 0);
    }));

    test('large records and an empty record round-trip', withStore((s) => {
      const big = Buffer.alloc(200_000, 0xa5);
      s.put('big', Buffer.from(big), 1);
      s.put('empty', Buffer.alloc(0), 1);
      assert.deepEqual(s.get('big'), big);
      assert.deepEqual(s.get('empty'), Buffer.alloc(0));
      assert.equal(s.bytes, 3 + 200_000 + 5);
    }));

    test('10,000 records: counts stay exact through replace, delete and sweep', withStore((s) => {
      for (let i = 0; i < 10_000; i++) s.put(`k${i}`, rec(`v${i % 7}`), 1000 + Math.floor(i / 100));
      for (let i = 0; i < 10_000; i += 3) s.put(`k${i}`, rec('replaced'), 2000);
      for (let i = 1; i < 10_000; i += 5) s.delete(`k${i}`);
      let n = 0;
      let bytes = 0;
      for (let i = 0; i < 10_000; i++) {
        const r = s.get(`k${i}`);
        if (r !== undefined) {
          n++;
          bytes += `k${i}`.length + r.length;
        }
      }
      assert.equal(s.size, n);
      assert.equal(s.bytes, bytes);
      let swept = 0;
      for (let k; (k = s.sweep(2000, 128)) > 0; ) swept += k;
      assert.equal(s.size, n - swept);
      for (let i = 0; i < 10_000; i += 3) {
        if (i % 5 !== 1) assert.deepEqual(s.get(`k${i}`), rec('replaced'), 'the stamp-2000 records stay');
      }
    }));

    test('close() empties the store and may be called twice', withStore((s) => {
      s.put('k', rec('v'), 1);
      s.close();
      s.close();
      assert.equal(s.size, 0);
      assert.equal(s.bytes, 0);
    }));
  });
}
