/*
 * store-conformance - one behaviour suite for every SessionStore (cache/store.ts; style.md
 * habit 7), run against each kind of test/helpers/stores.ts ALL_STORE_KINDS: the memory
 * store, the SQLite store and the Redis store (a real redis-server on a free port and a UNIX
 * socket, started before and stopped after its suite): get/put/delete, replace, size and
 * bytes accounting, byte-exact keys (latin1, no collisions), sweep by stamp (oldest first, at
 * most max, stops at the cutoff, equal stamps in write order, a replaced key moves to the
 * newest end), EVICT_ANY, large records, 10,000 records, and close().
 * Where a store's declared traits differ, the suite checks the trait's behaviour instead:
 * a store that expires its own entries (expiresEntries) drops a record once put()'s ttl has
 * passed and keeps it before, sweeps nothing (0, whatever the cutoff), knows no size or bytes
 * (-1), and leaves its entries to the group on close(); a store with a bounded read
 * (maxRecord) returns at most maxRecord + 1 bytes of a record and reads an empty one as
 * missing. Every call is awaited, so a store may answer now or later.
 * Stamps are written in non-decreasing order, as a clock that does not step back writes them.
 * A new store kind is one entry in ALL_STORE_KINDS.
 */

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { EVICT_ANY, type SessionStore } from '../../src/cache/store.js';
import { sleep } from '../helpers/postfix.js';
import { ALL_STORE_KINDS, type AnyStoreKind, type StoreSet } from '../helpers/stores.js';

const rec = (s: string): Buffer => Buffer.from(s, 'latin1');
/** A ttl long enough that no entry expires during a test. */
const LONG = 3600;

/** The keys left in the store, by probing the candidates. */
async function present(store: SessionStore, keys: readonly string[]): Promise<string[]> {
  const found = await Promise.all(keys.map(async (k) => (await store.get(k)) !== undefined));
  return keys.filter((_, i) => found[i]);
}

/** size and bytes: exact for a store that counts, -1 (unknown here) for one that expires its own. */
async function gauges(s: SessionStore, size: number, bytes: number, what = ''): Promise<void> {
  const known = s.expiresEntries !== true;
  assert.deepEqual({ size: s.size, bytes: s.bytes }, known ? { size, bytes } : { size: -1, bytes: -1 }, what);
}

/** Poll (at most 100 times, 20 ms apart) until get(key) finds nothing; false if it never did. */
async function goneSoon(s: SessionStore, key: string): Promise<boolean> {
  for (let i = 0; i < 100; i++) {
    if ((await s.get(key)) === undefined) return true;
    await sleep(20);
  }
  return false;
}

function suite(kind: AnyStoreKind): void {
  describe(`${kind.name} store`, { skip: kind.skip }, () => {
    before(() => kind.start());
    after(() => kind.stop());

    const withStore = (fn: (s: SessionStore, set: StoreSet) => Promise<void>) => async () => {
      const set = await kind.open();
      try {
        await fn(set.store('smtpd'), set);
      } finally {
        await set.close();
      }
    };

    test('an empty store: nothing found, nothing deleted, nothing swept', withStore(async (s) => {
      await gauges(s, 0, 0);
      assert.equal(await s.get('x'), undefined);
      assert.equal(await s.delete('x'), false);
      assert.equal(await s.sweep(EVICT_ANY, 10), 0);
    }));

    test('put then get returns the same bytes; size and bytes count key + record', withStore(async (s) => {
      await s.put('id-1', rec('record one'), 100, LONG);
      await s.put('id-22', rec('two'), 101, LONG);
      assert.deepEqual(await s.get('id-1'), rec('record one'));
      assert.deepEqual(await s.get('id-22'), rec('two'));
      await gauges(s, 2, 4 + 10 + 5 + 3);
    }));

    test('put replaces: one entry, the new record, bytes adjusted', withStore(async (s) => {
      await s.put('k', rec('old old old'), 100, LONG);
      await s.put('k', rec('new'), 101, LONG);
      assert.deepEqual(await s.get('k'), rec('new'));
      await gauges(s, 1, 1 + 3);
    }));

    test('delete: true once, then false; bytes back to 0', withStore(async (s) => {
      await s.put('k', rec('v'), 100, LONG);
      assert.equal(await s.delete('k'), true);
      assert.equal(await s.delete('k'), false);
      assert.equal(await s.get('k'), undefined);
      await gauges(s, 0, 0);
    }));

    test('keys are byte strings: every byte value, and no collision between encodings', withStore(async (s) => {
      const all = Array.from({ length: 255 }, (_, i) => String.fromCharCode(i + 1)).join('');
      const keys = [all, 'a\xff', 'a\xc3\xbf', 'a\u00ff'.normalize(), 'A\xff', 'a'];
      // 'a\xff' and 'a\u00ff' are the same latin1 string: five distinct keys.
      for (const [i, k] of keys.entries()) await s.put(k, rec(`r${i}`), 100, LONG);
      await gauges(s, 5, keys.reduce((n, k, i) => (i === 1 ? n : n + k.length + `r${i}`.length), 0));
      assert.deepEqual(await s.get(all), rec('r0'));
      assert.deepEqual(await s.get('a\xff'), rec('r3'));
      assert.deepEqual(await s.get('a\xc3\xbf'), rec('r2'));
      assert.deepEqual(await s.get('A\xff'), rec('r4'));
      assert.deepEqual(await s.get('a'), rec('r5'));
    }));

    test('sweep removes records below the cutoff, oldest first, at most max (expiresEntries: none)', withStore(async (s) => {
      const keys = ['a', 'b', 'c', 'd', 'e'];
      for (const [i, stamp] of [1, 2, 2, 3, 5].entries()) await s.put(keys[i], rec(keys[i]), stamp, LONG);
      if (s.expiresEntries === true) {
        // The store expires by ttl: a sweep removes nothing, whatever the cutoff.
        assert.equal(await s.sweep(3, 2), 0);
        assert.equal(await s.sweep(EVICT_ANY, 10), 0);
        assert.deepEqual(await present(s, keys), keys);
        return;
      }
      assert.equal(await s.sweep(3, 2), 2, 'max');
      assert.deepEqual(await present(s, keys), ['c', 'd', 'e'], 'equal stamps in write order');
      assert.equal(await s.sweep(3, 10), 1, 'fewer than max: none left below the cutoff');
      assert.equal(await s.sweep(3, 10), 0);
      assert.deepEqual(await present(s, keys), ['d', 'e'], 'stamp == cutoff is kept');
      await gauges(s, 2, 4);
      assert.equal(await s.sweep(3, 0), 0, 'max 0 removes nothing');
    }));

    test('EVICT_ANY evicts the oldest regardless of age; a replaced key is newest (expiresEntries: none)', withStore(async (s) => {
      await s.put('a', rec('a'), 10, LONG);
      await s.put('b', rec('b'), 11, LONG);
      await s.put('c', rec('c'), 12, LONG);
      await s.put('a', rec('A'), 13, LONG);
      if (s.expiresEntries === true) {
        assert.equal(await s.sweep(EVICT_ANY, 1), 0);
        assert.deepEqual(await present(s, ['a', 'b', 'c']), ['a', 'b', 'c']);
        return;
      }
      assert.equal(await s.sweep(EVICT_ANY, 1), 1);
      assert.deepEqual(await present(s, ['a', 'b', 'c']), ['a', 'c']);
      assert.equal(await s.sweep(EVICT_ANY, 1), 1);
      assert.deepEqual(await present(s, ['a', 'b', 'c']), ['a']);
      assert.equal(await s.sweep(EVICT_ANY, 5), 1);
      await gauges(s, 0, 0);
    }));

    test('ttl: a store that expires entries drops one after its ttl and keeps the others; other stores keep all', withStore(async (s) => {
      await s.put('short', rec('s'), 100, 0.05);
      await s.put('long', rec('l'), 100, LONG);
      if (s.expiresEntries === true) {
        assert.ok(await goneSoon(s, 'short'), 'the entry was still there 2 s after its 50 ms ttl');
      } else {
        assert.deepEqual(await s.get('short'), rec('s'), 'kept until swept or deleted');
      }
      assert.deepEqual(await s.get('long'), rec('l'));
    }));

    test('large records round-trip; an empty one too, unless reads are bounded (then it is missing)', withStore(async (s) => {
      const big = Buffer.alloc(200_000, 0xa5);
      await s.put('big', Buffer.from(big), 1, LONG);
      await s.put('empty', Buffer.alloc(0), 1, LONG);
      assert.deepEqual(await s.get('big'), big);
      assert.deepEqual(await s.get('empty'), s.maxRecord === undefined ? Buffer.alloc(0) : undefined);
      await gauges(s, 2, 3 + 200_000 + 5);
    }));

    test('a bounded read returns at most maxRecord + 1 bytes; an unbounded store the whole record', withStore(async (_, set) => {
      const s = set.store('smtp', { maxEntries: 0, maxSize: 0, maxEntrySize: 1000 });
      const long = Buffer.alloc(5000, 0x5c);
      await s.put('long', Buffer.from(long), 1, LONG);
      const got = await s.get('long');
      assert.deepEqual(got, s.maxRecord === undefined ? long : long.subarray(0, s.maxRecord + 1));
      if (s.maxRecord !== undefined) assert.ok(s.maxRecord + 1 < long.length, `maxRecord ${s.maxRecord}`);
    }));

    test('10,000 records: counts stay exact through replace, delete and sweep', withStore(async (s) => {
      // Calls in chunks of 1,000 at once (a network store bounds the calls in flight).
      const batch = async (from: number, step: number, fn: (i: number) => Promise<unknown> | unknown): Promise<void> => {
        for (let chunk = from; chunk < 10_000; chunk += 1000 * step) {
          const all: Array<Promise<unknown> | unknown> = [];
          for (let i = chunk; i < Math.min(10_000, chunk + 1000 * step); i += step) all.push(fn(i));
          await Promise.all(all);
        }
      };
      await batch(0, 1, (i) => s.put(`k${i}`, rec(`v${i % 7}`), 1000 + Math.floor(i / 100), LONG));
      await batch(0, 3, (i) => s.put(`k${i}`, rec('replaced'), 2000, LONG));
      await batch(1, 5, (i) => s.delete(`k${i}`));
      const got: Array<Buffer | undefined> = [];
      await batch(0, 1, async (i) => (got[i] = await s.get(`k${i}`)));
      let n = 0;
      let bytes = 0;
      got.forEach((r, i) => {
        if (r === undefined) return;
        n++;
        bytes += `k${i}`.length + r.length;
      });
      assert.equal(n, 10_000 - 2000, 'every fifth deleted, the others there');
      await gauges(s, n, bytes);
      let swept = 0;
      for (let k, i = 0; i < 1000 && (k = await s.sweep(2000, 128)) > 0; i++) swept += k;
      if (s.expiresEntries === true) assert.equal(swept, 0);
      await gauges(s, n - swept, s.bytes);
      for (let i = 0; i < 10_000; i += 3) {
        if (i % 5 !== 1) assert.deepEqual(await s.get(`k${i}`), rec('replaced'), 'the stamp-2000 records stay');
      }
    }));

    test('close() empties the store and may be called twice (expiresEntries: leaves the entries to the group)', withStore(async (s, set) => {
      await s.put('k', rec('v'), 1, LONG);
      s.close();
      s.close();
      await gauges(s, 0, 0);
      if (s.expiresEntries === true) {
        assert.deepEqual(await set.store('smtpd').get('k'), rec('v'), 'another store of the group still finds it');
      }
    }));
  });
}

for (const kind of ALL_STORE_KINDS) suite(kind);
