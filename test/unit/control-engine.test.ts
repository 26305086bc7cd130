/*
 * control-engine - what the control socket's commands rely on below the daemon:
 * - TlsScache.clear() over every store kind (memory, SQLite, Redis: test/helpers/stores.ts):
 *   every entry of that cache type goes (more than one batch), the other type's entries
 *   stay, the counters are kept;
 * - TicketKeyRing rotate / revoke / info (tickets/keys.ts): rotate makes a new current key
 *   while the old name still decrypts, the second rotation drops the oldest as Postfix's
 *   ring does, revoke drops every key, info reports times only.
 */

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { TlsScache } from '../../src/cache/scache.js';
import { MemoryStore } from '../../src/cache/stores/memory.js';
import type { CacheType } from '../../src/config/types.js';
import { TicketKeyRing } from '../../src/tickets/keys.js';
import { FakeClock } from '../../src/util/clock.js';
import { Sealer } from '../../src/util/seal.js';
import { T0 } from '../helpers/harness.js';
import { ALL_STORE_KINDS } from '../helpers/stores.js';

for (const kind of ALL_STORE_KINDS) {
  describe(`clear() over ${kind.name}`, { skip: kind.skip }, () => {
    before(() => kind.start());
    after(() => kind.stop());

    test('every entry of the type goes, over more than one batch; the other type and the counters stay', async () => {
      const set = await kind.open();
      try {
        const clock = new FakeClock(T0);
        const sealer = Sealer.fresh();
        const make = (type: CacheType): TlsScache =>
          new TlsScache({ cacheType: type, dictName: `${kind.name}:/t/${type}`, timeout: 120, store: set.store(type), sealer, clock, smtputf8: true, warn: () => undefined });
        const smtpd = make('smtpd');
        const smtp = make('smtp');
        const n = 1100;
        for (let i = 0; i < n; i++) await smtpd.update(Buffer.from(`id-${i}`), Buffer.from(`session-${i}`));
        await smtp.update(Buffer.from('other'), Buffer.from('other-session'));
        assert.ok((await smtpd.lookup(Buffer.from('id-7'))) !== null);
        const was = smtpd.stats();
        assert.equal(await smtpd.clear(), n);
        const now = smtpd.stats();
        assert.equal(now.hits, was.hits);
        assert.equal(now.stores, was.stores);
        assert.equal(now.deletes, was.deletes);
        if (!smtpd.shared) assert.equal(now.entries, 0);
        for (const i of [0, 7, 1023, 1024, n - 1]) assert.equal(await smtpd.lookup(Buffer.from(`id-${i}`)), null, `id-${i} gone`);
        assert.deepEqual(await smtp.lookup(Buffer.from('other')), Buffer.from('other-session'));
        assert.equal(await smtpd.clear(), 0, 'nothing left');
      } finally {
        await set.close();
      }
    });
  });
}

test('clear() of an embedded store yields to the event loop between batches: other work runs during a flush', async () => {
  const cache = new TlsScache({ cacheType: 'smtpd', dictName: 'memory:smtpd', timeout: 120, store: new MemoryStore(), clock: new FakeClock(T0), smtputf8: true, warn: () => undefined });
  const n = 5000;
  for (let i = 0; i < n; i++) cache.update(Buffer.from(`id-${i}`), Buffer.from('s'));
  let turns = 0;
  let flushing = true;
  const tick = (): void => {
    if (!flushing) return;
    turns++;
    setImmediate(tick);
  };
  setImmediate(tick);
  assert.equal(await cache.clear(), n);
  flushing = false;
  assert.ok(turns >= 3, `only ${turns} event-loop turns ran while ${n} entries were flushed`);
});

describe('TicketKeyRing rotate, revoke, info', () => {
  const T = 3600;
  const half = T / 2;
  const name = (r: ReturnType<TicketKeyRing['key']>): Buffer => {
    assert.equal(r.status, 'ok');
    return r.status === 'ok' ? Buffer.from(r.key.record.subarray(0, 16)) : Buffer.alloc(0);
  };

  test('rotate: a new current key now, the old one still decrypts until it expires', () => {
    const ring = new TicketKeyRing(randomBytes);
    const n1 = name(ring.key(null, T0, T));
    ring.rotate(T0 + 10, T);
    const n2 = name(ring.key(null, T0 + 10, T));
    assert.ok(!n2.equals(n1));
    assert.ok(name(ring.key(n1, T0 + 10, T)).equals(n1), 'old key decrypts');
    // The old key's decryption ends where it always did: tout + half, tout = T0 + half - 1.
    assert.equal(ring.key(n1, T0 + half - 1 + half - 1, T).status, 'ok');
    assert.equal(ring.key(n1, T0 + half - 1 + half, T).status, 'nokey');
    assert.deepEqual(ring.info(T0 + 10, T), { shared: false, count: 2, current: { age: 0, encryptFor: half - 1, decryptFor: T - 1 } });
    assert.deepEqual(ring.info(T0 + 20, T).current, { age: 10, encryptFor: half - 11, decryptFor: T - 11 });
    // Rotating again within the same second still makes the new key current; the oldest goes.
    ring.rotate(T0 + 10, T);
    const n3 = name(ring.key(null, T0 + 10, T));
    assert.ok(!n3.equals(n2) && !n3.equals(n1));
    assert.equal(ring.key(n1, T0 + 10, T).status, 'nokey');
    assert.equal(ring.key(n2, T0 + 10, T).status, 'ok');
    // The natural rotation still happens when the current key's encryption time ends.
    const n4 = name(ring.key(null, T0 + 10 + half, T));
    assert.ok(!n4.equals(n3));
    assert.equal(ring.key(n3, T0 + 10 + half, T).status, 'ok');
  });

  test('revoke: no key is found by name afterwards, and the next request makes a new one', () => {
    const ring = new TicketKeyRing(randomBytes);
    const n1 = name(ring.key(null, T0, T));
    ring.rotate(T0 + 1, T);
    const n2 = name(ring.key(null, T0 + 1, T));
    ring.revoke();
    assert.deepEqual(ring.info(T0 + 1, T), { shared: false, count: 0, current: null });
    assert.equal(ring.key(n1, T0 + 1, T).status, 'nokey');
    assert.equal(ring.key(n2, T0 + 1, T).status, 'nokey');
    const n3 = name(ring.key(null, T0 + 1, T));
    assert.ok(!n3.equals(n1) && !n3.equals(n2));
  });

  test('rotate with ticket keys disabled is refused', () => {
    assert.throws(() => new TicketKeyRing(randomBytes).rotate(T0, 0), /ticket keys are disabled/);
  });
});
