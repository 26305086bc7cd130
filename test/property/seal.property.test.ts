/*
 * seal-property - fast-check properties of the sealed-record parser (util/seal.ts, Sealer.open;
 * hardening issue, findings 4 and 5a): records come from the store or from Redis, so open()
 * takes any bytes. For versions 1 and 2 under a two-key ring:
 *   - arbitrary bytes, and arbitrary bytes behind a plausible header (a known version and
 *     key id): open() never throws and never returns ok;
 *   - a valid record (any session, cache type, cache_id, stamp; either key) opens, on either
 *     member of the ring, with exactly its stamp and session;
 *   - a valid record with one mutation -- a single flipped bit anywhere, a truncation, an
 *     extension, another version byte, another key id, another stamp -- never throws and never
 *     opens.
 * LIMITS
 *   500 runs per property (about half a second for the file); FUZZ_RUNS, FUZZ_SEED and
 *   FUZZ_PATH as in test/helpers/fuzz.ts, which prints the seed and the replay command of a
 *   failure.
 */

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import fc from 'fast-check';
import { Sealer } from '../../src/util/seal.js';
import { checkProperty } from '../helpers/fuzz.js';
import { sealV1 } from '../helpers/seal-v1.js';

/** Runs per property inside `npm test`; `npm run fuzz` raises it (test/helpers/fuzz.ts). */
const RUNS = 500;

const KEYS = [
  { id: 1, key: randomBytes(32) },
  { id: 0xfffffffe, key: randomBytes(32) },
];
/** One member per current key: each seals with its own and opens the other's. */
const MEMBERS = KEYS.map((k) => new Sealer(KEYS, k.id));

interface Valid {
  readonly version: 1 | 2;
  readonly key: number;
  readonly cacheType: string;
  readonly cacheId: Buffer;
  readonly stamp: number;
  readonly session: Buffer;
  readonly record: Buffer;
}

const cacheTypeArb = fc.oneof(
  fc.constantFrom('smtpd', 'smtp', 'lmtp', 'tktkey'),
  fc.string({ unit: fc.integer({ min: 0, max: 255 }).map((c) => String.fromCharCode(c)), maxLength: 40 }),
);
const bytesArb = (maxLength: number): fc.Arbitrary<Buffer> => fc.uint8Array({ maxLength }).map((u) => Buffer.from(u));

const validArb: fc.Arbitrary<Valid> = fc
  .record({
    version: fc.constantFrom(1 as const, 2 as const),
    key: fc.integer({ min: 0, max: KEYS.length - 1 }),
    cacheType: cacheTypeArb,
    cacheId: bytesArb(100),
    stamp: fc.maxSafeInteger(),
    session: bytesArb(300),
  })
  .map((v) => ({
    ...v,
    record: v.version === 2
      ? MEMBERS[v.key].seal(v.cacheType, v.cacheId, v.stamp, v.session)
      : sealV1(KEYS[v.key].key, KEYS[v.key].id, v.cacheType, v.cacheId, v.stamp, v.session),
  }));

/* openNever - open() on every member neither throws nor succeeds */
function openNever(cacheType: string, cacheId: Buffer, record: Buffer): void {
  for (const m of MEMBERS) {
    const r = m.open(cacheType, cacheId, record);
    assert.equal(r.ok, false);
  }
}

test('arbitrary bytes never open and never throw', (t) => {
  checkProperty(
    t,
    fc.property(cacheTypeArb, bytesArb(64), bytesArb(400), (type, cacheId, record) => openNever(type, cacheId, record)),
    RUNS,
  );
});

test('arbitrary bytes behind a plausible header (known version and key id) never open', (t) => {
  checkProperty(
    t,
    fc.property(
      fc.constantFrom(1, 2),
      fc.integer({ min: 0, max: KEYS.length - 1 }),
      bytesArb(400),
      bytesArb(64),
      (version, key, body, cacheId) => {
        const rec = Buffer.concat([Buffer.of(version), Buffer.alloc(4), body]);
        rec.writeUInt32BE(KEYS[key].id, 1);
        openNever('smtpd', cacheId, rec);
      },
    ),
    RUNS,
  );
});

test('valid records (versions 1 and 2, either key) open on every member with their stamp and session', (t) => {
  checkProperty(
    t,
    fc.property(validArb, (v) => {
      assert.equal(v.record[0], v.version);
      for (const m of MEMBERS) {
        const r = m.open(v.cacheType, v.cacheId, v.record);
        assert.ok(r.ok, `version ${v.version}: ${r.ok ? '' : r.reason}`);
        assert.equal(r.stamp, v.stamp);
        assert.deepEqual(r.session, v.session);
      }
    }),
    RUNS,
  );
});

type Mutation =
  | { readonly kind: 'flip'; readonly at: number; readonly bit: number }
  | { readonly kind: 'truncate'; readonly at: number }
  | { readonly kind: 'extend'; readonly extra: Buffer }
  | { readonly kind: 'version'; readonly to: number }
  | { readonly kind: 'key id'; readonly to: number }
  | { readonly kind: 'stamp'; readonly to: bigint };

const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('extend' as const), extra: fc.uint8Array({ minLength: 1, maxLength: 32 }).map((u) => Buffer.from(u)) }),
  fc.record({ kind: fc.constant('version' as const), to: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant('key id' as const), to: fc.oneof(fc.constantFrom(...KEYS.map((k) => k.id)), fc.integer({ min: 0, max: 0xffffffff })) }),
  fc.record({ kind: fc.constant('stamp' as const), to: fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }) }),
);

/* mutate - the record with one change; null when the change would leave it as it was */
function mutate(rec: Buffer, m: Mutation): Buffer | null {
  const out = Buffer.from(rec);
  switch (m.kind) {
    case 'flip':
      out[m.at % out.length] ^= 1 << m.bit;
      return out;
    case 'truncate':
      return out.subarray(0, m.at % out.length);
    case 'extend':
      return Buffer.concat([out, m.extra]);
    case 'version':
      if (m.to === rec[0]) return null;
      out[0] = m.to;
      return out;
    case 'key id':
      if (m.to === rec.readUInt32BE(1)) return null;
      out.writeUInt32BE(m.to, 1);
      return out;
    case 'stamp':
      if (m.to === rec.readBigInt64BE(5)) return null;
      out.writeBigInt64BE(m.to, 5);
      return out;
  }
}

test('a valid record with one mutation (bit flip, truncation, extension, version, key id, stamp) never opens', (t) => {
  checkProperty(
    t,
    fc.property(validArb, mutationArb, (v, m) => {
      const bad = mutate(v.record, m);
      fc.pre(bad !== null);
      openNever(v.cacheType, v.cacheId, bad as Buffer);
    }),
    RUNS,
  );
});
