/*
 * seal - encryption at rest (cache/seal.ts; issue 3): the record layout (version, key id,
 * big-endian stamp, random nonce, ciphertext, tag), no clear text, a fresh nonce per record;
 * the cache type, cache_id, version, key id and stamp are all authenticated (any flipped bit
 * anywhere fails); an unknown key id or version and a truncated record are Corrupt; a shared
 * key ring opens records of every key it holds (the cluster case). Then through TlsScache
 * over every store: a tampered record or one moved to another id is a miss, is removed, is
 * counted and warned about; expiry on lookup uses the authenticated stamp, not the store's.
 */

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import { recordStamp, Sealer, SEAL_OVERHEAD } from '../../src/cache/seal.js';
import { EVICT_ANY, type SessionStore } from '../../src/cache/store.js';
import { T0 } from '../helpers/harness.js';
import { scacheOver, STORE_KINDS, withStoreOf } from '../helpers/stores.js';

const id = (s: string): Buffer => Buffer.from(s, 'latin1');
const SESSION = Buffer.from('0123456789abcdef-MASTER-SECRET', 'latin1');

test('layout: version 1, key id, stamp (BE), nonce, ciphertext, tag; overhead 41', () => {
  const s = Sealer.fresh();
  const rec = s.seal('smtpd', id('host:25'), T0, SESSION);
  assert.equal(SEAL_OVERHEAD, 41);
  assert.equal(rec.length, SESSION.length + 41);
  assert.equal(rec[0], 1);
  assert.equal(rec.readUInt32BE(1), s.currentId);
  assert.equal(rec.readBigInt64BE(5), BigInt(T0));
  assert.equal(recordStamp(rec), T0);
  assert.equal(recordStamp(rec.subarray(0, 40)), undefined);
  assert.equal(rec.indexOf('MASTER'), -1, 'no clear text');
  const again = s.seal('smtpd', id('host:25'), T0, SESSION);
  assert.notDeepEqual(again.subarray(13, 25), rec.subarray(13, 25), 'a fresh nonce per record');
  assert.notDeepEqual(again, rec);
  const o = s.open('smtpd', id('host:25'), rec);
  assert.ok(o.ok);
  assert.deepEqual(o.session, SESSION);
  assert.equal(o.stamp, T0);
});

test('every bit of the record is authenticated', () => {
  const s = Sealer.fresh();
  const rec = s.seal('smtp', id('dest'), T0, Buffer.from('short'));
  for (let i = 0; i < rec.length; i++) {
    for (const bit of [0x01, 0x80]) {
      const bad = Buffer.from(rec);
      bad[i] ^= bit;
      const o = s.open('smtp', id('dest'), bad);
      assert.equal(o.ok, false, `byte ${i} bit ${bit}`);
    }
  }
});

test('the cache type and cache_id are bound: another id, type or a prefix fails', () => {
  const s = Sealer.fresh();
  const rec = s.seal('smtpd', id('abc'), T0, SESSION);
  for (const [type, cid] of [['smtpd', 'abd'], ['smtpd', 'ab'], ['smtpd', 'abcd'], ['smtp', 'abc'], ['lmtp', 'abc'], ['smtpdabc', '']]) {
    const o = s.open(type, id(cid), rec);
    assert.deepEqual(o, { ok: false, reason: 'authentication failed' }, `${type}/${cid}`);
  }
});

test('corrupt records: truncated, unknown version, unknown key id; another start\'s key', () => {
  const s = Sealer.fresh();
  const rec = s.seal('smtpd', id('a'), T0, SESSION);
  assert.deepEqual(s.open('smtpd', id('a'), rec.subarray(0, 40)), { ok: false, reason: 'truncated record (40 bytes)' });
  const v2 = Buffer.from(rec);
  v2[0] = 2;
  assert.deepEqual(s.open('smtpd', id('a'), v2), { ok: false, reason: 'unknown record version 2' });
  const k = Buffer.from(rec);
  k.writeUInt32BE((s.currentId + 1) >>> 0, 1);
  assert.deepEqual(s.open('smtpd', id('a'), k), { ok: false, reason: `unknown key id ${(s.currentId + 1) >>> 0}` });
  assert.equal(Sealer.fresh().open('smtpd', id('a'), rec).ok, false, 'a new start cannot read an old record');
});

test('a shared ring (cluster): any member opens records of every key it holds', () => {
  const k1 = randomBytes(32);
  const k2 = randomBytes(32);
  const a = new Sealer([{ id: 1, key: k1 }, { id: 2, key: k2 }], 2);
  const b = new Sealer([{ id: 1, key: k1 }, { id: 2, key: k2 }], 1);
  const old = new Sealer([{ id: 1, key: k1 }], 1);
  k1.fill(0); // the sealers keep their own copies
  const fromB = b.seal('smtpd', id('x'), T0, SESSION);
  const fromA = a.seal('smtpd', id('x'), T0, SESSION);
  assert.equal(fromA.readUInt32BE(1), 2);
  for (const [who, rec] of [['a', fromB], ['b', fromA], ['a', fromA]] as const) {
    const o = (who === 'a' ? a : b).open('smtpd', id('x'), rec);
    assert.ok(o.ok && o.session.equals(SESSION), who);
  }
  assert.deepEqual(old.open('smtpd', id('x'), fromA), { ok: false, reason: 'unknown key id 2' });
  assert.throws(() => new Sealer([{ id: 1, key: randomBytes(16) }], 1), RangeError);
  assert.throws(() => new Sealer([{ id: 1, key: randomBytes(32) }], 2), RangeError);
  assert.throws(() => new Sealer([{ id: -1, key: randomBytes(32) }], -1), RangeError);
});

for (const kind of STORE_KINDS) {
  describe(`sealed records in the ${kind.name} store`, () => {
    const withStore = (fn: (s: SessionStore) => void) => withStoreOf(kind, fn);

    test('the store holds no clear text', withStore((store) => {
      const { cache } = scacheOver(store);
      cache.update(id('k'), SESSION);
      assert.equal(store.get('k')?.indexOf('MASTER'), -1);
      assert.deepEqual(cache.lookup(id('k')), SESSION);
    }));

    test('a tampered record: miss, removed, counted, warned (never with its bytes)', withStore((store) => {
      const { cache, warnings } = scacheOver(store);
      cache.update(id('victim'), SESSION);
      const rec = store.get('victim');
      assert.ok(rec !== undefined);
      const bad = Buffer.from(rec);
      bad[bad.length - 20] ^= 0x04; // inside the ciphertext
      store.put('victim', bad, T0);
      assert.equal(cache.lookup(id('victim')), null);
      assert.equal(store.get('victim'), undefined, 'removed');
      assert.equal(cache.stats().corrupt, 1);
      assert.deepEqual(warnings, ['smtpd TLS cache: malformed entry for victim: authentication failed; entry removed']);
    }));

    test('a record copied to another cache_id is a miss and removed', withStore((store) => {
      const { cache, warnings } = scacheOver(store);
      cache.update(id('host-a'), SESSION);
      store.put('host-b', Buffer.from(store.get('host-a') as Buffer), T0);
      assert.equal(cache.lookup(id('host-b')), null);
      assert.equal(store.get('host-b'), undefined);
      assert.deepEqual(cache.lookup(id('host-a')), SESSION);
      assert.equal(warnings.length, 1);
    }));

    test('expiry on lookup trusts the sealed stamp, not the store\'s stamp', withStore((store) => {
      const { cache, clock, warnings } = scacheOver(store, { timeout: 120 });
      cache.update(id('k'), SESSION);
      // The store's index says "written far in the future"; the record says T0.
      store.put('k', Buffer.from(store.get('k') as Buffer), T0 + 1_000_000);
      clock.set(T0 + 121);
      assert.equal(cache.lookup(id('k')), null);
      assert.equal(store.get('k'), undefined);
      assert.equal(cache.stats().expired, 1);
      assert.deepEqual(warnings, []);
      // A forged newer stamp inside the record fails authentication instead.
      clock.set(T0);
      cache.update(id('j'), SESSION);
      const forged = Buffer.from(store.get('j') as Buffer);
      forged.writeBigInt64BE(BigInt(T0 + 1_000_000), 5);
      store.put('j', forged, T0 + 1_000_000);
      assert.equal(cache.lookup(id('j')), null);
      assert.equal(cache.stats().corrupt, 1);
      assert.equal(store.sweep(EVICT_ANY, 10), 0);
    }));
  });
}
