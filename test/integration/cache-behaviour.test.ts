/*
 * cache-behaviour - the engine's rules once over every store (issues 3, 7 and 14): TlsScache
 * over each kind of test/helpers/stores.ts ALL_STORE_KINDS (memory, SQLite, and Redis: a real
 * redis-server reached on its UNIX socket), all driven through the SessionCache interface
 * with a fake clock: store and find the same bytes, miss, replace, delete, valid at
 * exactly stamp + timeout and gone one second later (removed from the store), cache types
 * apart, byte-distinct ids apart, non-UTF-8 ids neither stored nor found, oversize refused,
 * a tampered record is a miss that is removed with a warning, large sessions, counters.
 * Redis-only: the TTL of a stored entry is timeout + 1 seconds.
 */

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { CacheLimits } from '../../src/cache/limits.js';
import { TlsScache } from '../../src/cache/scache.js';
import type { SessionCache } from '../../src/cache/session-cache.js';
import type { RedisStore } from '../../src/cache/stores/redis.js';
import { Sealer } from '../../src/util/seal.js';
import { FakeClock } from '../../src/util/clock.js';
import type { CacheType } from '../../src/config/types.js';
import { T0 } from '../helpers/harness.js';
import { ALL_STORE_KINDS, type AnyStoreKind } from '../helpers/stores.js';

const TIMEOUT = 120;

interface CacheUnderTest {
  readonly clock: FakeClock;
  readonly warnings: string[];
  cache(type: CacheType, opts?: { limits?: CacheLimits; smtputf8?: boolean }): SessionCache;
  /** Flip a byte of the stored record of (type, id). */
  tamper(type: CacheType, cacheId: Buffer): Promise<void>;
  /** Whether the store holds a record for (type, id). */
  stored(type: CacheType, cacheId: Buffer): Promise<boolean>;
  close(): Promise<void>;
}

/* cachesOver - the one engine (TlsScache) over the stores of a kind, with a fake clock */
async function cachesOver(kind: AnyStoreKind): Promise<CacheUnderTest> {
  const set = await kind.open();
  const clock = new FakeClock(T0);
  const warnings: string[] = [];
  const sealer = Sealer.fresh();
  return {
    clock,
    warnings,
    cache: (type, opts = {}) =>
      new TlsScache({
        cacheType: type,
        dictName: `${kind.name}:/test/${type}_scache`,
        timeout: TIMEOUT,
        store: set.store(type, opts.limits),
        sealer,
        clock,
        smtputf8: opts.smtputf8 ?? true,
        warn: (m) => warnings.push(m),
        limits: opts.limits,
      }),
    // Through the store itself: for Redis, under the keyed hash of the id.
    async tamper(type, cacheId) {
      const s = set.store(type);
      const key = cacheId.toString('latin1');
      const rec = Buffer.from((await s.get(key)) as Buffer);
      rec[rec.length - 1] ^= 1;
      await s.put(key, rec, clock.now(), TIMEOUT + 1);
    },
    async stored(type, cacheId) {
      return (await set.store(type).get(cacheId.toString('latin1'))) !== undefined;
    },
    close: () => set.close(),
  };
}

const id = (s: string): Buffer => Buffer.from(s, 'latin1');
const session = (n: number, seed = 1): Buffer => Buffer.from(Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff));

for (const kind of ALL_STORE_KINDS) {
  describe(`session cache behaviour over ${kind.name}`, { skip: kind.skip }, () => {
    before(() => kind.start());
    after(() => kind.stop());
    const withCache = (fn: (u: CacheUnderTest) => Promise<void>) => async () => {
      const u = await cachesOver(kind);
      try {
        await fn(u);
      } finally {
        await u.close();
      }
    };

    test('update then lookup gives the same bytes; an unknown id misses', withCache(async (u) => {
      const c = u.cache('smtpd');
      const s = session(200);
      await c.update(id('a'.repeat(94)), s);
      assert.deepEqual(await c.lookup(id('a'.repeat(94))), s);
      assert.equal(await c.lookup(id('b'.repeat(94))), null);
      const st = c.stats();
      assert.equal(st.hits, 1);
      assert.equal(st.misses, 1);
      assert.equal(st.stores, 1);
    }));

    test('the caller may wipe the session as soon as update() returns, even before the store answers', withCache(async (u) => {
      const c = u.cache('smtpd');
      const s = session(120, 5);
      const pending = c.update(id('wiped'), s);
      s.fill(0);
      await pending;
      assert.deepEqual(await c.lookup(id('wiped')), session(120, 5));
    }));

    test('a second update replaces the first; delete removes, then finds nothing', withCache(async (u) => {
      const c = u.cache('smtpd');
      await c.update(id('k'), session(50, 1));
      await c.update(id('k'), session(60, 2));
      assert.deepEqual(await c.lookup(id('k')), session(60, 2));
      assert.equal(await c.delete(id('k')), true);
      assert.equal(await c.delete(id('k')), false);
      assert.equal(await c.lookup(id('k')), null);
      assert.equal(await u.stored('smtpd', id('k')), false);
    }));

    test('valid at exactly stamp + timeout; one second later a miss, and the record is removed', withCache(async (u) => {
      const c = u.cache('smtpd');
      await c.update(id('exp'), session(80));
      u.clock.set(T0 + TIMEOUT);
      assert.deepEqual(await c.lookup(id('exp')), session(80));
      u.clock.set(T0 + TIMEOUT + 1);
      assert.equal(await c.lookup(id('exp')), null);
      // The removal of an expired record may be a call still under way: bounded wait.
      for (let i = 0; i < 50 && (await u.stored('smtpd', id('exp'))); i++) await new Promise((r) => setTimeout(r, 20));
      assert.equal(await u.stored('smtpd', id('exp')), false);
      assert.equal(c.stats().expired, 1);
    }));

    test('cache types are apart: the same id in smtpd and smtp are two entries', withCache(async (u) => {
      const d = u.cache('smtpd');
      const s = u.cache('smtp');
      await d.update(id('same'), session(40, 1));
      assert.equal(await s.lookup(id('same')), null);
      await s.update(id('same'), session(40, 2));
      assert.deepEqual(await d.lookup(id('same')), session(40, 1));
      assert.deepEqual(await s.lookup(id('same')), session(40, 2));
    }));

    test('ids that differ only in bytes over 0x7f stay apart (smtputf8 off)', withCache(async (u) => {
      const c = u.cache('smtp', { smtputf8: false });
      const a = Buffer.from([0x61, 0xe9]);
      const b = Buffer.from([0x61, 0xc3, 0xa9]);
      await c.update(a, session(30, 1));
      await c.update(b, session(30, 2));
      assert.deepEqual(await c.lookup(a), session(30, 1));
      assert.deepEqual(await c.lookup(b), session(30, 2));
    }));

    test('with smtputf8 a non-UTF-8 id is neither stored nor found, with a warning', withCache(async (u) => {
      const c = u.cache('smtpd');
      const bad = Buffer.from([0x68, 0xff, 0x6f]);
      await c.update(bad, session(30));
      assert.equal(await u.stored('smtpd', bad), false);
      assert.equal(await c.lookup(bad), null);
      assert.equal(await c.delete(bad), true);
      assert.ok(u.warnings.some((w) => /non-UTF-8 key/.test(w)), u.warnings.join('\n'));
    }));

    test('an entry over max_entry_size is refused: nothing stored, update still fine, one warning', withCache(async (u) => {
      const c = u.cache('smtpd', { limits: { maxEntries: 0, maxSize: 0, maxEntrySize: 500 } });
      await c.update(id('big'), session(1000));
      assert.equal(await c.lookup(id('big')), null);
      assert.equal(await u.stored('smtpd', id('big')), false);
      assert.equal(c.stats().refused, 1);
      assert.ok(u.warnings.some((w) => /max_entry_size 500: not stored/.test(w)), u.warnings.join('\n'));
      await c.update(id('small'), session(100));
      assert.deepEqual(await c.lookup(id('small')), session(100));
    }));

    test('a tampered record is a miss, is removed, and gets a warning without session bytes', withCache(async (u) => {
      const c = u.cache('smtpd');
      await c.update(id('t'), session(64));
      await u.tamper('smtpd', id('t'));
      assert.equal(await c.lookup(id('t')), null);
      for (let i = 0; i < 50 && (await u.stored('smtpd', id('t'))); i++) await new Promise((r) => setTimeout(r, 20));
      assert.equal(await u.stored('smtpd', id('t')), false);
      assert.equal(c.stats().corrupt, 1);
      const w = u.warnings.find((x) => /malformed entry/.test(x));
      assert.ok(w !== undefined, u.warnings.join('\n'));
      assert.match(w, /authentication failed/);
    }));

    test('a 60,000-byte session and a 4,000-byte id round-trip', withCache(async (u) => {
      const c = u.cache('lmtp');
      const big = session(60_000, 9);
      const longId = Buffer.alloc(4000, 0x41);
      await c.update(longId, big);
      assert.deepEqual(await c.lookup(longId), big);
    }));
  });
}

const redisKind = ALL_STORE_KINDS.find((k) => k.name === 'redis') as AnyStoreKind;

describe('redis-only behaviour', { skip: redisKind.skip }, () => {
  before(() => redisKind.start());
  after(() => redisKind.stop());

  test('an entry carries a TTL of timeout + 1 seconds', async () => {
    const set = await redisKind.open();
    try {
      const store = set.store('smtpd') as RedisStore;
      const c = new TlsScache({
        cacheType: 'smtpd', dictName: 'redis:/test.cf', timeout: TIMEOUT, store, clock: new FakeClock(T0), smtputf8: true, warn: () => undefined,
      });
      await c.update(id('ttl'), session(10));
      const pttl = (await set.raw?.('PTTL', store.keysFor(id('ttl'))[0])) as number;
      assert.ok(pttl > (TIMEOUT + 1) * 1000 - 5000 && pttl <= (TIMEOUT + 1) * 1000, `PTTL ${pttl}`);
    } finally {
      await set.close();
    }
  });
});
