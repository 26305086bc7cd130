/*
 * redis-cluster - cluster mode against a real redis-server (issue 7), in process, two
 * "daemons" being two members (each its own Redis connection, cache and ticket keys) with one
 * cluster key:
 * - sharing: an update through member A is found through member B; a delete through B
 *   removes it for A; a cluster key roll (file [1] -> [2, 1] -> [2]) loses nothing;
 * - nothing secret in clear: every key and value in Redis is scanned for the cache ids, the
 *   session bytes (any 12-byte window, raw, hex or base64) and the ticket key bytes;
 * - Redis stopped mid-test: no exception, no call is sent once the links know (fail fast, by
 *   the links' counters: every call a fallback, no round trip), lookups miss, ticket keys
 *   come from the local ring, warnings are logged (rate-limited) and counted; Redis started
 *   again on the same port: both members reconnect (bounded wait) and sharing resumes;
 *   Redis hung (SIGSTOP): each call settles while Redis is still stopped, every one a
 *   fallback, every one sent a timeout (none answered);
 * - ticket-key rotation with a fake clock over 8 slots: at every step both members hand out
 *   the same current key, even when both ask at once; a key is found by name on the other
 *   member until T after its slot began, and not from T on; keys are 88-byte records whose
 *   tout is the end of their slot.
 */

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { TlsScache } from '../../src/cache/scache.js';
import { RedisStore } from '../../src/cache/stores/redis.js';
import { readRedisConfig } from '../../src/cluster/config.js';
import { parseClusterKeys, type ClusterKeys } from '../../src/cluster/keyfile.js';
import { RedisLink } from '../../src/cluster/link.js';
import { FakeClock } from '../../src/util/clock.js';
import { TicketKeyRing, type TicketKeyResult } from '../../src/tickets/keys.js';
import { SharedTicketKeys } from '../../src/tickets/shared.js';
import { T0 } from '../helpers/harness.js';
import { linkReady, skipWithoutRedis, startRedis, waitFor, writeClusterFiles, type RedisServer } from '../helpers/redis.js';
import { sleep } from '../helpers/postfix.js';
import { TOUT_OFFSET } from '../../src/util/tktkey.js';

const TIMEOUT = 3600;
const CALL_MS = 150;
const K1 = `1 ${'11'.repeat(32)}`;
const K2 = `2 ${'22'.repeat(32)}`;

let redis: RedisServer;
let dir: string;
let cf: string;

interface Member {
  readonly link: RedisLink;
  readonly cache: TlsScache;
  readonly store: RedisStore;
  readonly tickets: SharedTicketKeys;
  readonly local: TicketKeyRing;
  readonly warnings: string[];
  readonly infos: string[];
}

function member(clock: FakeClock, keys: ClusterKeys = parseClusterKeys(K1, 'k')): Member {
  const warnings: string[] = [];
  const infos: string[] = [];
  const config = readRedisConfig(cf);
  const link = RedisLink.open(config, { clock, warn: (m) => warnings.push(m), info: (m) => infos.push(m) });
  const local = new TicketKeyRing(randomBytes);
  const store = new RedisStore({ cacheType: 'smtpd', link, keys });
  const cache = new TlsScache({ cacheType: 'smtpd', dictName: `redis:${cf}`, timeout: TIMEOUT, store, clock, smtputf8: true, warn: (m) => warnings.push(m) });
  const tickets = new SharedTicketKeys({ link, sealer: keys.sealer, random: randomBytes, fallback: local, clock, warn: (m) => warnings.push(m) });
  return { link, cache, store, tickets, local, warnings, infos };
}

async function ready(...ms: Member[]): Promise<void> {
  for (const m of ms) await linkReady(m.link);
}

function okKey(r: TicketKeyResult): Buffer {
  assert.equal(r.status, 'ok');
  return (r as Extract<TicketKeyResult, { status: 'ok' }>).key.record;
}

const skip = skipWithoutRedis();

before(async () => {
  if (skip !== false) return;
  redis = await startRedis();
  dir = mkdtempSync(join(tmpdir(), 'tlsmgr-redis-cluster-'));
  cf = writeClusterFiles(dir, redis, { via: 'tcp', timeout: `${CALL_MS}ms`, keys: [K1] }).cf;
});

after(async () => {
  if (skip !== false) return;
  await redis.destroy();
  rmSync(dir, { recursive: true, force: true });
});

describe('cluster mode over a real redis-server', { skip }, () => {
  test('an entry stored through one member is found through the other; a delete is seen by both', async () => {
    const clock = new FakeClock(T0);
    const a = member(clock);
    const b = member(clock);
    try {
      await ready(a, b);
      const id = Buffer.from('[192.0.2.1]:25&0123456789abcdef');
      const s = randomBytes(300);
      await a.cache.update(id, s);
      assert.deepEqual(await b.cache.lookup(id), s);
      assert.equal(await b.cache.delete(id), true);
      assert.equal(await a.cache.lookup(id), null);
    } finally {
      a.link.close();
      b.link.close();
    }
  });

  test('a cluster key roll without a flag day: [1] -> [2, 1] -> [2]', async () => {
    const clock = new FakeClock(T0);
    const old = member(clock, parseClusterKeys(K1, 'k'));
    const rolling = member(clock, parseClusterKeys(`${K2}\n${K1}`, 'k'));
    const next = member(clock, parseClusterKeys(K2, 'k'));
    try {
      await ready(old, rolling, next);
      const id = Buffer.from('roll.example:25');
      await old.cache.update(id, Buffer.from('sealed by key 1'));
      assert.equal((await rolling.cache.lookup(id))?.toString(), 'sealed by key 1', 'a member that lists both keys finds it');
      await rolling.cache.update(id, Buffer.from('sealed by key 2'));
      assert.equal((await next.cache.lookup(id))?.toString(), 'sealed by key 2', 'a member on the new key alone finds it');
      assert.equal(await old.cache.lookup(id), null, 'the old entry was removed when the new one was written');
    } finally {
      for (const m of [old, rolling, next]) m.link.close();
    }
  });

  test('nothing secret in clear in Redis: no cache id, no session bytes, no ticket key bytes', async () => {
    await redis.command('FLUSHALL');
    const clock = new FakeClock(T0);
    const a = member(clock);
    try {
      await ready(a);
      const ids: Buffer[] = [];
      const sessions: Buffer[] = [];
      for (let i = 0; i < 50; i++) {
        const id = Buffer.from(`smtp.example${i}.net:25:[198.51.100.${i}]`);
        const s = randomBytes(200 + i);
        ids.push(id);
        sessions.push(s);
        await a.cache.update(id, s);
      }
      const keys = [okKey(await a.tickets.key(null, clock.now(), TIMEOUT))];
      clock.advance(TIMEOUT / 2);
      keys.push(okKey(await a.tickets.key(null, clock.now(), TIMEOUT)));
      const dump = await redis.dump();
      assert.ok(dump.size >= 52, `expected 50 entries and the ticket keys, found ${dump.size}`);
      const needles: Buffer[] = [];
      for (const id of ids) needles.push(id, Buffer.from(id.toString('hex')), Buffer.from(id.toString('base64')));
      const windows = (b: Buffer): Buffer[] => {
        const out: Buffer[] = [];
        for (let i = 0; i + 12 <= b.length; i += 6) out.push(b.subarray(i, i + 12));
        return out;
      };
      for (const s of sessions) for (const w of windows(s)) needles.push(w, Buffer.from(w.toString('hex')), Buffer.from(w.toString('base64')));
      for (const k of keys) for (const w of windows(k.subarray(0, TOUT_OFFSET))) needles.push(w, Buffer.from(w.toString('hex')));
      let checked = 0;
      for (const [key, value] of dump) {
        const k = Buffer.from(key, 'latin1');
        for (const n of needles) {
          assert.equal(k.includes(n), false, `key ${key} contains secret bytes`);
          assert.equal(value.includes(n), false, `the value of ${key} contains secret bytes`);
          checked++;
        }
        assert.match(key, /^tlsmgr:(scache:smtpd:[0-9a-f]{64}|tktkey:1800:\d+)$/);
      }
      assert.ok(checked > 100_000, `only ${checked} comparisons`);
    } finally {
      a.link.close();
    }
  });

  test('ticket-key rotation across two members with a fake clock: always one key, T to decrypt', async () => {
    await redis.command('FLUSHALL');
    const clock = new FakeClock(T0 - (T0 % 1800) + 1800); // at a slot boundary
    const a = member(clock);
    const b = member(clock);
    try {
      await ready(a, b);
      const half = TIMEOUT / 2;
      const born = new Map<string, number>(); // key name (hex) -> slot start
      for (let step = 0; step < 32; step++) {
        const now = clock.now();
        // Both ask at the same moment: they must converge on one key.
        const [ka, kb] = (await Promise.all([a.tickets.key(null, now, TIMEOUT), b.tickets.key(null, now, TIMEOUT)])).map(okKey);
        assert.ok(ka.equals(kb), `step ${step}: the members disagree on the current key`);
        assert.equal(ka.length, 88);
        const slot = Math.floor(now / half);
        assert.equal(Number(ka.readBigInt64LE(TOUT_OFFSET)), (slot + 1) * half, 'tout is the end of the slot');
        const name = ka.subarray(0, 16).toString('hex');
        if (!born.has(name)) born.set(name, slot * half);
        // Every key seen so far: found by name on the other member while younger than T.
        for (const [n, t0] of born) {
          const r = await b.tickets.key(Buffer.from(n, 'hex'), now, TIMEOUT);
          if (now < t0 + TIMEOUT) assert.equal(r.status, 'ok', `step ${step}: a key ${now - t0} s old was not found`);
          else assert.equal(r.status, 'nokey', `step ${step}: a key ${now - t0} s old was still found`);
        }
        clock.advance(450);
      }
      assert.equal(born.size, 8, 'one key per slot over 8 slots');
      // Exactly at the edges: a key of slot s decrypts at s*half + T - 1, not at s*half + T.
      const [first, t0] = [...born][born.size - 2];
      const probe = Buffer.from(first, 'hex');
      const fresh = member(clock);
      try {
        await ready(fresh);
        assert.equal((await fresh.tickets.key(probe, t0 + TIMEOUT - 1, TIMEOUT)).status, 'ok');
        assert.equal((await fresh.tickets.key(probe, t0 + TIMEOUT, TIMEOUT)).status, 'nokey');
      } finally {
        fresh.link.close();
      }
      assert.deepEqual([...a.warnings, ...b.warnings], []);
    } finally {
      a.link.close();
      b.link.close();
    }
  });

  test('Redis stopped: calls end at once, lookups miss, local ticket keys; started again: sharing resumes', async () => {
    const clock = new FakeClock(T0);
    const a = member(clock);
    const b = member(clock);
    try {
      await ready(a, b);
      const id = Buffer.from('down.example:25');
      await a.cache.update(id, Buffer.from('before'));
      await redis.stop();
      // Both links notice the closed connection (bounded wait); from then on nothing is sent.
      assert.ok(await waitFor(() => !a.link.ready && !b.link.ready, 250, 20), 'the links did not notice Redis going away within 5 s');
      const was = { a: { ...a.link.counters }, b: { ...b.link.counters } };
      for (let i = 0; i < 20; i++) {
        assert.equal(await a.cache.lookup(id), null);
        await a.cache.update(id, Buffer.from('during'));
        const t = await b.tickets.key(null, clock.now(), TIMEOUT);
        assert.equal(t.status, 'ok', 'ticket keys fall back to the local ring');
        assert.equal((await a.cache.lookup(id)), null);
      }
      // Fail fast, by the counters, not a clock: no call was sent while Redis was down (so
      // none could wait for the timeout), and every one fell back: 3 per round on A (two
      // lookups, an update), 1 on B (the claim of the slot's ticket key).
      assert.deepEqual(
        { a: { ...a.link.counters }, b: { ...b.link.counters } },
        { a: { ...was.a, fallbacks: was.a.fallbacks + 60 }, b: { ...was.b, fallbacks: was.b.fallbacks + 20 } },
      );
      const local = okKey(await b.tickets.key(null, clock.now(), TIMEOUT));
      assert.equal(okKey(await b.tickets.key(local.subarray(0, 16), clock.now(), TIMEOUT)).equals(local), true, 'a fallback key is found by name');
      assert.ok(a.link.counters.fallbacks > 0 && b.link.counters.fallbacks > 0);
      assert.ok(a.warnings.some((w) => /redis .*-- serving without Redis/.test(w)), a.warnings.join('\n'));
      assert.ok(a.warnings.length < 10, `warnings are rate-limited: ${a.warnings.length}`);

      await redis.start();
      await ready(a, b);
      await a.cache.update(id, Buffer.from('after'));
      assert.equal((await b.cache.lookup(id))?.toString(), 'after', 'sharing resumed');
      assert.ok(a.infos.some((m) => /connection ready again -- sharing resumes/.test(m)), a.infos.join('\n'));
      const ka = okKey(await a.tickets.key(null, clock.now(), TIMEOUT));
      const kb = okKey(await b.tickets.key(null, clock.now(), TIMEOUT));
      assert.ok(ka.equals(kb), 'shared ticket keys again');
    } finally {
      a.link.close();
      b.link.close();
    }
  });

  test('Redis hung (SIGSTOP): every call ends at the timeout; resumed: sharing again', async () => {
    const clock = new FakeClock(T0);
    const a = member(clock);
    const b = member(clock);
    try {
      await ready(a, b);
      const id = Buffer.from('hung.example:25');
      await a.cache.update(id, Buffer.from('x'));
      redis.pause();
      const was = { ...b.link.counters };
      // Each lookup settles while Redis is still stopped: its deadline ended it, not Redis
      // (a call without one would wait here until the test's own timeout).
      for (let i = 0; i < 6; i++) assert.equal(await b.cache.lookup(id), null);
      // Every lookup fell back (a miss of an entry that is there, found after the resume);
      // the first calls waited for their deadline, and after TIMEOUTS_BEFORE_RESET of them the
      // link drops the connection, failing the rest at once: not one call was answered.
      const c = b.link.counters;
      const d = { roundtrips: c.roundtrips - was.roundtrips, errors: c.errors - was.errors, timeouts: c.timeouts - was.timeouts };
      assert.equal(c.fallbacks - was.fallbacks, 6, JSON.stringify({ was, now: c }));
      assert.ok(d.timeouts >= 1, JSON.stringify({ was, now: c }));
      assert.equal(d.roundtrips, d.timeouts + d.errors, `a call was answered: ${JSON.stringify({ was, now: c })}`);
      redis.resume();
      await ready(a, b);
      let found: Buffer | null = null;
      for (let i = 0; i < 40 && found === null; i++) {
        found = await b.cache.lookup(id);
        if (found === null) await sleep(50);
      }
      assert.equal(found?.toString(), 'x');
    } finally {
      redis.resume();
      a.link.close();
      b.link.close();
    }
  });
});
