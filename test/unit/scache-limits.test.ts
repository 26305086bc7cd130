/*
 * scache-limits - cache limits, eviction order, oversize refusal and counters (issue 3),
 * through TlsScache over every store (memory and SQLite): max_entries and max_size evict
 * expired entries first and then the oldest live ones, only as many as needed; a replaced
 * entry makes room for itself; an entry over max_entry_size (or max_size) is refused with
 * nothing changed and a rate-limited warning; the counters (hits, misses, stores, replaced,
 * deletes, expired, evicted, refused, corrupt) and the entries/bytes gauges; 0 = no limit;
 * a failing store (StoreError) is a warning, not an exception; over a store that answers now
 * every call answers now (no promise); the statistics line, the caller's extra lines, and
 * CacheTable's injected timers (test/helpers/fake-timers.ts: the tlsmgr_stats_interval period,
 * a 100-day cleanup period past Node's 2^31 ms timer cap) and monotonic clock (a pass's time).
 */

import assert from 'node:assert/strict';
import { createHook } from 'node:async_hooks';
import { describe, test } from 'node:test';
import { CacheTable, logsCache } from '../../src/cache/caches.js';
import { SEAL_OVERHEAD } from '../../src/util/seal.js';
import { formatStats, type CacheStats } from '../../src/cache/stats.js';
import { StoreError } from '../../src/cache/store.js';
import { MemoryStore } from '../../src/cache/stores/memory.js';
import { FakeClock } from '../../src/util/clock.js';
import { b64, OK, req, testConfig } from '../helpers/attr.js';
import { FakeTimers } from '../helpers/fake-timers.js';
import { makeHarness, T0 } from '../helpers/harness.js';
import { now, scacheOver, STORE_KINDS, withStoreOf, type StoreNow } from '../helpers/stores.js';

const id = (s: string): Buffer => Buffer.from(s, 'latin1');

/** How many promises fn() makes (async_hooks sees every one, even one never returned). */
function promisesMadeBy(fn: () => void): number {
  let n = 0;
  const hook = createHook({
    init(_id, type) {
      if (type === 'PROMISE') n++;
    },
  }).enable();
  try {
    fn();
  } finally {
    hook.disable();
  }
  return n;
}
const sess = (n: number, fill = 0x5a): Buffer => Buffer.alloc(n, fill);
/** Bytes one entry counts: cache_id + sealed record. */
const entryBytes = (key: string, session: number): number => key.length + SEAL_OVERHEAD + session;

function found(lookup: (k: Buffer) => Buffer | null, keys: readonly string[]): string[] {
  return keys.filter((k) => lookup(id(k)) !== null);
}

const ZERO: Omit<CacheStats, 'entries' | 'bytes'> = {
  hits: 0, misses: 0, stores: 0, replaced: 0, deletes: 0, expired: 0, evicted: 0, refused: 0, corrupt: 0,
};

for (const kind of STORE_KINDS) {
  describe(`limits over the ${kind.name} store`, () => {
    const withStore = (fn: (s: StoreNow) => void) => withStoreOf(kind, fn);

    test('max_entries: the oldest live entry is evicted, one per new entry', withStore((store) => {
      const { cache, clock } = scacheOver(store, { limits: { maxEntries: 3, maxSize: 0, maxEntrySize: 0 } });
      for (const k of ['a', 'b', 'c']) {
        cache.update(id(k), sess(10));
        clock.advance(1);
      }
      cache.update(id('d'), sess(10));
      assert.equal(cache.size, 3);
      assert.deepEqual(found((k) => now(cache.lookup(k)), ['a', 'b', 'c', 'd']), ['b', 'c', 'd']);
      assert.equal(cache.stats().evicted, 1);
      assert.equal(cache.stats().expired, 0);
    }));

    test('at a limit, expired entries go first, then the oldest live one', withStore((store) => {
      const { cache, clock } = scacheOver(store, { timeout: 120, limits: { maxEntries: 3, maxSize: 0, maxEntrySize: 0 } });
      cache.update(id('x'), sess(10)); // T0: expired after T0 + 120
      clock.set(T0 + 100);
      cache.update(id('y'), sess(10));
      clock.set(T0 + 110);
      cache.update(id('z'), sess(10));
      clock.set(T0 + 121);
      cache.update(id('w'), sess(10)); // full: x is expired and goes
      assert.deepEqual({ expired: cache.stats().expired, evicted: cache.stats().evicted }, { expired: 1, evicted: 0 });
      cache.update(id('v'), sess(10)); // full, nothing expired: y (oldest live) goes
      assert.deepEqual({ expired: cache.stats().expired, evicted: cache.stats().evicted }, { expired: 1, evicted: 1 });
      assert.deepEqual(found((k) => now(cache.lookup(k)), ['x', 'y', 'z', 'w', 'v']), ['z', 'w', 'v']);
    }));

    test('max_size: as many of the oldest entries go as the new entry needs', withStore((store) => {
      const small = entryBytes('s0', 10);
      const big = entryBytes('big', 200);
      const maxSize = small + big + 10;
      const { cache, clock } = scacheOver(store, { limits: { maxEntries: 0, maxSize, maxEntrySize: 0 } });
      for (const k of ['s0', 's1', 's2']) {
        cache.update(id(k), sess(10));
        clock.advance(1);
      }
      assert.equal(cache.stats().bytes, 3 * small);
      cache.update(id('big'), sess(200));
      // 3 * small + big > maxSize; after two evictions small + big <= maxSize.
      assert.ok(small + big <= maxSize && 2 * small + big > maxSize);
      assert.equal(cache.stats().evicted, 2);
      assert.deepEqual(found((k) => now(cache.lookup(k)), ['s0', 's1', 's2', 'big']), ['s2', 'big']);
      assert.equal(cache.stats().bytes, small + big);
    }));

    test('replacing an entry at the limit evicts nothing', withStore((store) => {
      const { cache, clock } = scacheOver(store, { limits: { maxEntries: 2, maxSize: 0, maxEntrySize: 0 } });
      cache.update(id('a'), sess(10));
      clock.advance(1);
      cache.update(id('b'), sess(10));
      clock.advance(1);
      cache.update(id('a'), sess(10, 1));
      assert.deepEqual(cache.stats().evicted, 0);
      assert.deepEqual(cache.stats().replaced, 1);
      assert.deepEqual(cache.lookup(id('a')), sess(10, 1));
      assert.notEqual(cache.lookup(id('b')), null);
      // a is now the newest: the next new entry evicts b.
      cache.update(id('c'), sess(10));
      assert.deepEqual(found((k) => now(cache.lookup(k)), ['a', 'b', 'c']), ['a', 'c']);
    }));

    test('oversize: refused, nothing changed, one warning per minute with the suppressed count', withStore((store) => {
      const max = entryBytes('k', 100);
      const { cache, clock, warnings } = scacheOver(store, { limits: { maxEntries: 0, maxSize: 0, maxEntrySize: max } });
      cache.update(id('k'), sess(100)); // exactly at the limit: stored
      cache.update(id('k'), sess(101, 1)); // one byte over: refused, the old entry stays
      assert.deepEqual(cache.lookup(id('k')), sess(100));
      cache.update(id('other'), sess(5000));
      assert.equal(cache.lookup(id('other')), null);
      assert.deepEqual(
        { stores: cache.stats().stores, refused: cache.stats().refused, entries: cache.stats().entries },
        { stores: 1, refused: 2, entries: 1 },
      );
      assert.deepEqual(warnings, [
        `btree:/test/smtpd_scache: entry for k is ${max + 1} bytes, over smtpd_tls_session_cache_max_entry_size ${max}: not stored`,
      ]);
      clock.advance(60);
      cache.update(id('k'), sess(102));
      assert.equal(warnings.length, 2);
      assert.match(warnings[1], /is \d+ bytes, over smtpd_tls_session_cache_max_entry_size \d+: not stored \(1 similar warnings suppressed\)$/);
      for (const w of warnings) assert.doesNotMatch(w, /ZZZ/, 'never the session');
    }));

    test('an entry larger than max_size on its own is refused, naming max_size', withStore((store) => {
      const { cache, warnings } = scacheOver(store, { limits: { maxEntries: 0, maxSize: 100, maxEntrySize: 0 } });
      cache.update(id('a'), sess(10));
      cache.update(id('b'), sess(100));
      assert.equal(cache.stats().refused, 1);
      assert.equal(cache.stats().evicted, 0, 'nothing evicted for an entry that can never fit');
      assert.match(warnings[0], /over smtpd_tls_session_cache_max_size 100: not stored$/);
    }));

    test('0 means no limit', withStore((store) => {
      const { cache } = scacheOver(store, { limits: { maxEntries: 0, maxSize: 0, maxEntrySize: 0 } });
      for (let i = 0; i < 500; i++) cache.update(id(`k${i}`), sess(i * 10));
      assert.equal(cache.size, 500);
      assert.equal(cache.stats().evicted + cache.stats().refused, 0);
    }));

    test('every call answers now, with no promise: hit, miss, expired, corrupt, evict, refuse, delete, sweep', withStore((store) => {
      const { cache, clock } = scacheOver(store, { timeout: 120, limits: { maxEntries: 2, maxSize: 0, maxEntrySize: entryBytes('k0', 100) } });
      const calls: Array<[string, unknown]> = [];
      const call = (what: string, r: unknown): void => void calls.push([what, r]);
      const made = promisesMadeBy(() => {
        call('update', cache.update(id('k0'), sess(10)));
        call('update', cache.update(id('k1'), sess(10)));
        call('update, evicting', cache.update(id('k2'), sess(10)));
        call('update, refused', cache.update(id('k0'), sess(101)));
        call('update, non-UTF-8', cache.update(id('\xff'), sess(10)));
        call('lookup hit', cache.lookup(id('k2')));
        call('lookup miss', cache.lookup(id('none')));
        store.put('k1', Buffer.from('garbage'), T0);
        call('lookup corrupt', cache.lookup(id('k1')));
        clock.advance(121);
        call('lookup expired', cache.lookup(id('k2')));
        call('delete', cache.delete(id('k2')));
        call('sweep', cache.sweep(10));
      });
      for (const [what, r] of calls) assert.equal(r instanceof Promise, false, `${what} returned a promise`);
      assert.equal(made, 0, 'promises were made on the way');
      assert.deepEqual(
        { evicted: cache.stats().evicted, refused: cache.stats().refused, corrupt: cache.stats().corrupt, expired: cache.stats().expired, hits: cache.stats().hits },
        { evicted: 1, refused: 1, corrupt: 1, expired: 1, hits: 1 },
      );
    }));

    test('counters and gauges follow every outcome', withStore((store) => {
      const { cache, clock } = scacheOver(store, { timeout: 120 });
      cache.update(id('a'), sess(10));
      cache.update(id('b'), sess(20));
      cache.update(id('a'), sess(30));
      assert.notEqual(cache.lookup(id('a')), null);
      assert.equal(cache.lookup(id('nope')), null);
      assert.equal(cache.delete(id('b')), true);
      assert.equal(cache.delete(id('b')), false);
      assert.equal(cache.lookup(id('bad-\xff')), null, 'non-UTF-8: a miss');
      cache.update(id('c'), sess(5));
      clock.advance(121);
      assert.equal(cache.lookup(id('c')), null, 'expired on lookup');
      cache.update(id('d'), sess(5));
      assert.equal(cache.sweep(100), 1, 'a expired through the sweep');
      assert.deepEqual(cache.stats(), {
        ...ZERO, entries: 1, bytes: entryBytes('d', 5),
        hits: 1, misses: 3, stores: 5, replaced: 1, deletes: 1, expired: 2,
      });
    }));
  });
}

test('update over the protocol answers OK for a refused oversize entry (as tls_scache_update)', () => {
  const h = makeHarness({ config: testConfig({ cache: { smtpd: { maxEntrySize: 100 } } }) });
  const update = req('update', ['cache_type', 'smtpd'], ['cache_id', 'big'], ['session', b64(sess(200))]);
  assert.equal(h.serve(update)?.status, Number(OK));
  assert.equal(h.caches.get('smtpd')?.size, 0);
  assert.equal(entryBytes('big', 200), 256);
  assert.match(h.takeWarnings()[0], /entry for big is 256 bytes, over smtpd_tls_session_cache_max_entry_size 100: not stored/);
});

/* engineError - an Error with an engine's code, as better-sqlite3 throws them */
function engineError(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

test('a failing store: lookup misses, update and delete do not throw, one warning a minute', () => {
  class Broken extends MemoryStore {
    override get(): Buffer | undefined {
      throw new StoreError('/x.sqlite', engineError('SQLITE_IOERR', 'disk I/O error'));
    }
    override put(): void {
      throw new StoreError('/x.sqlite', engineError('SQLITE_FULL', 'database or disk is full'));
    }
  }
  const { cache, warnings } = scacheOver(new Broken());
  assert.equal(cache.lookup(id('a')), null);
  cache.update(id('a'), sess(10));
  assert.equal(cache.delete(id('a')), false);
  assert.deepEqual(warnings, ['btree:/test/smtpd_scache: cannot lookup TLS session cache entry: /x.sqlite: SQLITE_IOERR: disk I/O error']);
  assert.equal(cache.stats().stores, 0);
  assert.equal(cache.stats().misses, 1);
});

test('a store failure logs the file and the engine\'s reason only: no session, key or seed bytes', () => {
  const secret = Buffer.from('0123456789abcdefSECRETSESSION', 'latin1');
  // An engine error that carries the bound values in its other fields, and non-printable
  // bytes and an overlong text in its message.
  const engine = Object.assign(engineError('SQLITE_IOERR', `disk I/O error\n\x01${'x'.repeat(500)}`), {
    bound: [secret, secret.toString('hex')],
    record: secret,
  });
  class Broken extends MemoryStore {
    override put(): void {
      throw new StoreError('/x.sqlite', engine);
    }
  }
  const { cache, warnings } = scacheOver(new Broken());
  cache.update(id('CACHEID-7f3e'), secret);
  assert.equal(warnings.length, 1);
  const w = warnings[0];
  assert.match(w, /^btree:\/test\/smtpd_scache: cannot update TLS session cache entry: \/x\.sqlite: SQLITE_IOERR: disk I\/O error\?\?x+$/);
  assert.ok(w.length < 300, `not cut: ${w.length} characters`);
  for (const s of [secret.toString('latin1'), secret.toString('hex'), secret.toString('base64'), 'SECRET']) assert.ok(!w.includes(s), w);
  assert.ok(!w.includes('CACHEID-7f3e'), 'the cache_id is in the warning');
  // A thrown non-Error gives its type only.
  assert.equal(new StoreError('/y', secret).message, '/y: non-Error value (object)');
});

test('formatStats: one line, every counter, no ids or data', () => {
  const s: CacheStats = { ...ZERO, entries: 3, bytes: 420, hits: 7, misses: 2, stores: 4, replaced: 1 };
  assert.equal(
    formatStats('smtp', s),
    'statistics: smtp TLS session cache: entries=3 bytes=420 hits=7 misses=2 stores=4 replaced=1 deletes=0 expired=0 evicted=0 refused=0 corrupt=0',
  );
});

test('CacheTable logs one statistics line per enabled cache every tlsmgr_stats_interval; 0 = never', () => {
  const timers = new FakeTimers();
  const lines: string[] = [];
  const config = testConfig({ statsInterval: 600, cache: { smtp: { database: 'btree:/nonexistent/smtp_scache' } } });
  const table = new CacheTable(config, { clock: new FakeClock(T0), warn: () => undefined, info: (m) => lines.push(m), timers });
  try {
    now(table.get('smtpd')?.update(id('a'), sess(10)));
    table.startCleanup();
    timers.advance(599_999);
    assert.equal(lines.length, 0);
    timers.advance(1);
    assert.equal(lines.length, 2);
    assert.match(lines[0], /^statistics: smtpd TLS session cache: entries=1 bytes=\d+ hits=0 misses=0 stores=1 /);
    assert.match(lines[1], /^statistics: smtp TLS session cache: entries=0 bytes=0 /);
    assert.deepEqual([...table.stats().keys()], ['smtpd', 'smtp']);
    timers.advance(600_000);
    assert.equal(lines.length, 4, 'and again one interval later');
  } finally {
    table.close();
  }
  assert.equal(timers.size, 0, 'close() cancels the timers');
  const off = new CacheTable(testConfig({ statsInterval: 0 }), { clock: new FakeClock(T0), warn: () => undefined, info: (m) => lines.push(m), timers });
  try {
    off.startCleanup();
    timers.advance(10 * 86400_000);
    assert.equal(lines.length, 4);
  } finally {
    off.close();
  }
});

test('the caller\'s statistics lines follow the caches\' at every interval, also with no cache enabled', () => {
  const timers = new FakeTimers();
  const lines: string[] = [];
  const none = testConfig({ statsInterval: 60, cache: { smtpd: { database: '' } } });
  const table = new CacheTable(none, {
    clock: new FakeClock(T0), warn: () => undefined, info: (m) => lines.push(m), timers, statsLines: () => ['statistics: redis /x.cf: roundtrips=1'],
  });
  try {
    table.startCleanup();
    timers.advance(60_000);
    assert.deepEqual(lines, ['statistics: redis /x.cf: roundtrips=1']);
  } finally {
    table.close();
  }
});

test('cleanup periods of any length: a 100-day timeout passes every 100 days, not at Node\'s 2^31 ms cap', async () => {
  const timers = new FakeTimers();
  const DAYS = 100;
  const clock = new FakeClock(T0);
  const table = new CacheTable(testConfig({ cache: { smtpd: { timeout: DAYS * 86400 } } }), { clock, warn: () => undefined, timers });
  const settled = (): Promise<void> => new Promise((r) => setImmediate(r));
  try {
    const cache = table.get('smtpd');
    assert.ok(cache !== undefined);
    table.startCleanup();
    now(cache.update(id('a'), sess(10)));
    clock.advance(DAYS * 86400 + 1); // expired from now on: the next pass removes it
    timers.advance(2 ** 31 - 1);
    await settled();
    assert.equal(cache.size, 1, 'no pass at the 2^31 ms timer cap (24.8 days)');
    timers.advance(DAYS * 86400_000 - (2 ** 31 - 1) - 1);
    await settled();
    assert.equal(cache.size, 1, 'no pass before 100 days');
    timers.advance(1);
    await settled();
    assert.equal(cache.size, 0, 'the pass at 100 days removed the expired entry');
  } finally {
    table.close();
  }
});

test('a pass is timed by the injected monotonic clock, in its end line', async () => {
  const lines: string[] = [];
  const clock = new FakeClock(T0);
  const ms = [1000, 1002.54];
  const table = new CacheTable(testConfig({ cache: { smtpd: { timeout: 120, loglevel: 'cache' } } }), {
    clock, warn: () => undefined, info: (m) => lines.push(m), monotonic: () => ms.shift() ?? NaN,
  });
  try {
    const cache = table.get('smtpd');
    assert.ok(cache !== undefined);
    now(cache.update(id('k'), sess(10)));
    clock.advance(121);
    assert.equal(await table.runPass('smtpd', cache), 1);
    assert.deepEqual(lines, [
      'tlsmgr_cache_run_event: start TLS smtpd session cache cleanup',
      'tlsmgr_cache_run_event: TLS smtpd session cache cleanup: 1 expired entries removed in 2.5 ms',
    ]);
  } finally {
    table.close();
  }
});

test('logsCache: *_tls_loglevel 2 and up, debug, ssl-expert, ssl-developer or "cache" (tls_log_table)', () => {
  for (const v of ['2', '3', '9', 'debug', 'SSL-Expert', 'ssl-developer', 'cache', '1, cache', 'routine cache']) assert.equal(logsCache(v), true, v);
  for (const v of ['0', '1', '', 'routine', 'summary', 'verbose', 'peercert', '10', 'caches']) assert.equal(logsCache(v), false, v);
});

test('with cache logging a pass logs its start (Postfix\'s text) and its end with count and duration', async () => {
  const lines: string[] = [];
  const clock = new FakeClock(T0);
  const config = testConfig({ cache: { smtpd: { timeout: 120, loglevel: '2' } } });
  const table = new CacheTable(config, { clock, warn: () => undefined, info: (m) => lines.push(m) });
  try {
    const cache = table.get('smtpd');
    assert.ok(cache !== undefined);
    for (let i = 0; i < 300; i++) cache.update(id(`k${i}`), sess(10));
    clock.advance(121);
    assert.equal(await table.runPass('smtpd', cache), 300);
    assert.equal(lines[0], 'tlsmgr_cache_run_event: start TLS smtpd session cache cleanup');
    assert.match(lines[1], /^tlsmgr_cache_run_event: TLS smtpd session cache cleanup: 300 expired entries removed in [\d.]+ ms$/);
    assert.equal(lines.length, 2);
  } finally {
    table.close();
  }
  const quiet: string[] = [];
  const t2 = new CacheTable(testConfig(), { clock, warn: () => undefined, info: (m) => quiet.push(m) });
  await t2.runPass('smtpd', t2.get('smtpd') as NonNullable<ReturnType<CacheTable['get']>>);
  t2.close();
  assert.deepEqual(quiet, [], 'loglevel 0: no pass lines');
});
