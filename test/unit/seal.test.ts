/*
 * seal - encryption at rest (util/seal.ts; issue 3, and the nonce bound of the hardening
 * issue, finding 4): XAES-256-GCM against the C2SP vectors (both K1 branches, the derived key,
 * and the 10,000-iteration accumulated test); the version 2 record layout (version, key id,
 * big-endian stamp, 24-byte random nonce, ciphertext, tag; 53 bytes over the session), no
 * clear text, a fresh nonce per record, the XAES input key derived from the ring key; version
 * 1 records (a golden one written by the version 1 code, and others built from its layout)
 * still open; the cache type, cache_id, version, key id and stamp are all authenticated (any
 * flipped bit anywhere fails, in both versions); an unknown key id or version and a
 * truncated record are Corrupt; a shared key ring opens records of every key it holds (the
 * cluster case). Then through TlsScache over every store: a tampered record or one moved to
 * another id is a miss, is removed, is counted and warned about; expiry on lookup uses the
 * authenticated stamp, not the store's.
 */

import assert from 'node:assert/strict';
import { createHash, hkdfSync, randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import { recordOverhead, recordStamp, Sealer, SEAL_OVERHEAD, SEAL_OVERHEAD_V1, SEAL_VERSION, XaesKey, XAES_NONCE_LEN } from '../../src/util/seal.js';
import { EVICT_ANY } from '../../src/cache/store.js';
import { T0 } from '../helpers/harness.js';
import { GOLDEN_V1, sealV1 } from '../helpers/seal-v1.js';
import { scacheOver, STORE_KINDS, withStoreOf, type StoreNow } from '../helpers/stores.js';

const id = (s: string): Buffer => Buffer.from(s, 'latin1');
const SESSION = Buffer.from('0123456789abcdef-MASTER-SECRET', 'latin1');
const hex = (h: string): Buffer => Buffer.from(h, 'hex');

/* The two vectors of c2sp.org/XAES-256-GCM ("Test vectors"): MSB(L) = 0, then MSB(L) = 1. */
const XAES_VECTORS = [
  {
    key: hex('01'.repeat(32)),
    kx: 'c8612c9ed53fe43e8e005b828a1631a0bbcb6ab2f46514ec4f439fcfd0fa969b',
    aad: '',
    sealed: 'ce546ef63c9cc60765923609b33a9a1974e96e52daf2fcf7075e2271',
  },
  {
    key: hex('03'.repeat(32)),
    kx: 'e9c621d4cdd9b11b00a6427ad7e559aeedd66b3857646677748f8ca796cb3fd8',
    aad: 'c2sp.org/XAES-256-GCM',
    sealed: '986ec1832593df5443a179437fd083bf3fdb41abd740a21f71eb769d',
  },
] as const;
const XAES_NONCE = Buffer.from('ABCDEFGHIJKLMNOPQRSTUVWX', 'latin1');

test('XAES-256-GCM: the C2SP test vectors (derived key, ciphertext and tag, open)', () => {
  for (const v of XAES_VECTORS) {
    const x = new XaesKey(v.key);
    assert.equal(x.subkey(XAES_NONCE).toString('hex'), v.kx);
    const aad = Buffer.from(v.aad, 'latin1');
    const sealed = x.seal(XAES_NONCE, Buffer.from('XAES-256-GCM', 'latin1'), aad);
    assert.equal(sealed.toString('hex'), v.sealed);
    assert.equal(x.open(XAES_NONCE, sealed, aad)?.toString('latin1'), 'XAES-256-GCM');
    const bad = Buffer.from(sealed);
    bad[0] ^= 1;
    assert.equal(x.open(XAES_NONCE, bad, aad), null);
    // The key is derived from the first 12 nonce bytes only; the last 12 are the GCM nonce.
    const other = Buffer.from(XAES_NONCE);
    other[23] ^= 1;
    assert.equal(x.subkey(other).toString('hex'), v.kx);
    other[0] ^= 1;
    assert.notEqual(x.subkey(other).toString('hex'), v.kx);
  }
  assert.throws(() => new XaesKey(Buffer.alloc(16)), RangeError);
  assert.throws(() => new XaesKey(Buffer.alloc(32)).subkey(Buffer.alloc(12)), RangeError);
});

test('XAES-256-GCM: the C2SP accumulated randomized test, 10,000 iterations', () => {
  // The deterministic RNG is SHAKE-128 of the empty string; each iteration reads key[32],
  // nonce[24], then plaintext and aad each with a one-byte length (RFC 8446 <0..255>); the
  // ciphertexts (with tags) go into a second SHAKE-128, read for 32 bytes.
  const rng = createHash('shake128', { outputLength: 6_000_000 }).digest();
  assert.equal(rng.subarray(0, 16).toString('hex'), '7f9c2ba4e88f827d616045507605853e');
  let at = 0;
  const read = (n: number): Buffer => {
    const b = rng.subarray(at, at + n);
    at += n;
    assert.equal(b.length, n, 'the RNG stream is long enough');
    return b;
  };
  const h = createHash('shake128', { outputLength: 32 });
  for (let i = 0; i < 10_000; i++) {
    const x = new XaesKey(read(32));
    const nonce = read(24);
    const plaintext = read(read(1)[0]);
    const aad = read(read(1)[0]);
    const sealed = x.seal(nonce, plaintext, aad);
    h.update(sealed);
    if (i % 100 === 0) assert.deepEqual(x.open(nonce, sealed, aad), plaintext);
  }
  assert.equal(h.digest('hex'), 'e6b9edf2df6cec60c8cbd864e2211b597fb69a529160cd040d56c0c210081939');
});

test('layout: version 2, key id, stamp (BE), 24-byte nonce, ciphertext, tag; overhead 53', () => {
  const s = Sealer.fresh();
  const rec = s.seal('smtpd', id('host:25'), T0, SESSION);
  assert.equal(SEAL_VERSION, 2);
  assert.equal(SEAL_OVERHEAD, 53);
  assert.equal(SEAL_OVERHEAD_V1, 41);
  assert.equal(XAES_NONCE_LEN, 24);
  assert.equal(rec.length, SESSION.length + 53);
  assert.equal(rec[0], 2);
  assert.equal(rec.readUInt32BE(1), s.currentId);
  assert.equal(rec.readBigInt64BE(5), BigInt(T0));
  assert.equal(recordStamp(rec), T0);
  assert.equal(recordOverhead(rec), 53);
  assert.equal(recordStamp(rec.subarray(0, 52)), undefined);
  assert.equal(rec.indexOf('MASTER'), -1, 'no clear text');
  const again = s.seal('smtpd', id('host:25'), T0, SESSION);
  assert.notDeepEqual(again.subarray(13, 37), rec.subarray(13, 37), 'a fresh nonce per record');
  assert.notDeepEqual(again, rec);
  const o = s.open('smtpd', id('host:25'), rec);
  assert.ok(o.ok);
  assert.deepEqual(o.session, SESSION);
  assert.equal(o.stamp, T0);
});

test('version 2 is XAES-256-GCM under HKDF-SHA256(ring key, "tlsmgr scache v2 xaes"), not the ring key', () => {
  const ringKey = randomBytes(32);
  const nonce = randomBytes(24);
  const s = new Sealer([{ id: 9, key: ringKey }], 9, () => Buffer.from(nonce));
  const rec = s.seal('smtp', id('mx.example'), T0, SESSION);
  assert.deepEqual(rec.subarray(13, 37), nonce);
  const aad = Buffer.concat([Buffer.from('tlsmgr scache\0', 'latin1'), rec.subarray(0, 13), Buffer.of(4), id('smtp'), id('mx.example')]);
  const xaesKey = Buffer.from(hkdfSync('sha256', ringKey, Buffer.alloc(0), 'tlsmgr scache v2 xaes', 32));
  assert.deepEqual(new XaesKey(xaesKey).open(nonce, rec.subarray(37), aad), SESSION);
  assert.equal(new XaesKey(ringKey).open(nonce, rec.subarray(37), aad), null, 'the ring key itself is not the XAES key');
});

test('version 1 records still open: a golden record of the version 1 code, and fresh ones', () => {
  const g = GOLDEN_V1;
  assert.deepEqual(sealV1(g.key, g.keyId, g.cacheType, g.cacheId, g.stamp, g.session, g.nonce), g.record, 'the helper is the v1 format');
  const s = new Sealer([{ id: g.keyId, key: g.key }], g.keyId);
  const o = s.open(g.cacheType, g.cacheId, g.record);
  assert.ok(o.ok);
  assert.deepEqual(o.session, g.session);
  assert.equal(o.stamp, g.stamp);
  assert.equal(recordOverhead(g.record), 41);
  assert.equal(recordStamp(g.record), g.stamp);
  assert.equal(s.open(g.cacheType, id('other.example:25'), g.record).ok, false);
  for (const len of [0, 1, 300]) {
    const session = randomBytes(len);
    const rec = sealV1(g.key, g.keyId, 'lmtp', id('x'), T0 + len, session);
    assert.equal(rec.length, len + SEAL_OVERHEAD_V1);
    const r = s.open('lmtp', id('x'), rec);
    assert.ok(r.ok && r.session.equals(session) && r.stamp === T0 + len, `v1 of ${len} bytes`);
  }
  // The sealer writes version 2 with the same ring; both versions open side by side.
  assert.equal(s.seal(g.cacheType, g.cacheId, g.stamp, g.session)[0], 2);
});

test('every bit of the record is authenticated (versions 1 and 2)', () => {
  const key = randomBytes(32);
  const s = new Sealer([{ id: 5, key }], 5);
  const v2 = s.seal('smtp', id('dest'), T0, Buffer.from('short'));
  const v1 = sealV1(key, 5, 'smtp', id('dest'), T0, Buffer.from('short'));
  for (const rec of [v1, v2]) {
    assert.ok(s.open('smtp', id('dest'), rec).ok);
    for (let i = 0; i < rec.length; i++) {
      for (const bit of [0x01, 0x80]) {
        const bad = Buffer.from(rec);
        bad[i] ^= bit;
        const o = s.open('smtp', id('dest'), bad);
        assert.equal(o.ok, false, `v${rec[0]} byte ${i} bit ${bit}`);
      }
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
  assert.deepEqual(s.open('smtpd', id('a'), rec.subarray(0, 52)), { ok: false, reason: 'truncated record (52 bytes)' });
  assert.deepEqual(s.open('smtpd', id('a'), Buffer.alloc(0)), { ok: false, reason: 'truncated record (0 bytes)' });
  const v1short = Buffer.from(rec.subarray(0, 40));
  v1short[0] = 1;
  assert.deepEqual(s.open('smtpd', id('a'), v1short), { ok: false, reason: 'truncated record (40 bytes)' });
  for (const v of [0, 3, 255]) {
    const bad = Buffer.from(rec);
    bad[0] = v;
    assert.deepEqual(s.open('smtpd', id('a'), bad), { ok: false, reason: `unknown record version ${v}` });
    assert.equal(recordStamp(bad), undefined);
    assert.equal(recordOverhead(bad), undefined);
  }
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
  const v1ofKey2 = sealV1(k2, 2, 'smtpd', id('x'), T0, SESSION);
  k1.fill(0); // the sealers keep their own copies
  const fromB = b.seal('smtpd', id('x'), T0, SESSION);
  const fromA = a.seal('smtpd', id('x'), T0, SESSION);
  assert.equal(fromA.readUInt32BE(1), 2);
  for (const [who, rec] of [['a', fromB], ['b', fromA], ['a', fromA], ['b', v1ofKey2]] as const) {
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
    const withStore = (fn: (s: StoreNow) => void) => withStoreOf(kind, fn);

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
