/*
 * redis-revoke - group-wide `keys revoke` and `keys rotate` of ticket keys shared through a
 * real redis-server (tickets/shared.ts), with members in process: each its own Redis
 * connection, SharedTicketKeys and local ring, one cluster key.
 * - revoke on A: the key name both members held is unknown to A at once and to B once B
 *   has read the generation again (bounded wait, short poll), to a member started
 *   afterwards too; B's local ring is revoked as well and B logs it; the group's next key
 *   is new and shared; the slot records of the generation before are gone from Redis; a
 *   revoked record copied under the new generation's name does not open;
 * - a member that polls too rarely to notice still learns the revoke when its connection
 *   is ready again (the connection killed by CLIENT KILL);
 * - rotate on A: a new shared current key, the old one still found by name on A, B and a
 *   fresh member; a second rotate drops it;
 * - hostile generation values (non-numeric, 50 MB, floor above generation, going back, a
 *   hash): refused with a rate-limited warning that does not echo them, at most a few
 *   hundred bytes read; a member that never read a valid one serves local keys; a revoke
 *   still goes through and puts a valid value back; a value lost by Redis is written back;
 * - Redis down: revoke rejects with a clear message and still revokes the local ring.
 * Every wait is bounded (waitFor: count and interval).
 */

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { readRedisConfig } from '../../src/cluster/config.js';
import { parseClusterKeys } from '../../src/cluster/keyfile.js';
import { RedisLink } from '../../src/cluster/link.js';
import { FakeClock } from '../../src/util/clock.js';
import { TicketKeyRing, type TicketKeyResult } from '../../src/tickets/keys.js';
import { MAX_GEN_RECORD, SharedTicketKeys, parseGeneration } from '../../src/tickets/shared.js';
import { T0 } from '../helpers/harness.js';
import { linkReady, skipWithoutRedis, startRedis, waitFor, writeClusterFiles, type RedisServer } from '../helpers/redis.js';

const TIMEOUT = 3600;
const HALF = TIMEOUT / 2;
const K1 = `1 ${'11'.repeat(32)}`;

let redis: RedisServer;
let dir: string;
let cf: string;

interface Member {
  readonly link: RedisLink;
  readonly tickets: SharedTicketKeys;
  readonly local: TicketKeyRing;
  readonly warnings: string[];
  readonly infos: string[];
}

const members: Member[] = [];

function member(clock: FakeClock, pollMs = 50): Member {
  const warnings: string[] = [];
  const infos: string[] = [];
  const keys = parseClusterKeys(K1, 'k');
  const link = RedisLink.open(readRedisConfig(cf), { clock, warn: (m) => warnings.push(m), info: (m) => infos.push(m) });
  const local = new TicketKeyRing(randomBytes);
  const tickets = new SharedTicketKeys({
    link, sealer: keys.sealer, random: randomBytes, fallback: local, clock, pollMs,
    warn: (m) => warnings.push(m), info: (m) => infos.push(m),
  });
  const m = { link, tickets, local, warnings, infos };
  members.push(m);
  return m;
}

function closeAll(): void {
  for (const m of members.splice(0)) m.link.close();
}

function okKey(r: TicketKeyResult): Buffer {
  assert.equal(r.status, 'ok');
  return (r as Extract<TicketKeyResult, { status: 'ok' }>).key.record;
}

const nameOf = (k: Buffer): Buffer => Buffer.from(k.subarray(0, 16));

/** Bytes Redis has sent to all its clients so far (INFO stats total_net_output_bytes). */
async function netOutput(): Promise<number> {
  const info = await redis.command('INFO', 'stats');
  assert.ok(Buffer.isBuffer(info));
  const m = /^total_net_output_bytes:(\d+)\r?$/m.exec(info.toString('latin1'));
  assert.ok(m !== null);
  return Number(m[1]);
}

const skip = skipWithoutRedis();
// At a slot boundary, so that the test's steps stay in one slot.
const NOW = T0 - (T0 % HALF) + HALF + 10;

before(async () => {
  if (skip !== false) return;
  redis = await startRedis();
  dir = mkdtempSync(join(tmpdir(), 'tlsmgr-redis-revoke-'));
  cf = writeClusterFiles(dir, redis, { via: 'tcp', timeout: '500ms', keys: [K1] }).cf;
});

after(async () => {
  if (skip !== false) return;
  closeAll();
  await redis.destroy();
  rmSync(dir, { recursive: true, force: true });
});

describe('parseGeneration', () => {
  test('takes "<generation> <floor>" in decimal only, floor <= generation, 15 digits at most', () => {
    assert.deepEqual(parseGeneration(Buffer.from('0 0')), { gen: 0, floor: 0 });
    assert.deepEqual(parseGeneration(Buffer.from('7 5')), { gen: 7, floor: 5 });
    assert.deepEqual(parseGeneration(Buffer.from('999999999999999 999999999999999')), { gen: 999999999999999, floor: 999999999999999 });
    for (const bad of ['', '7', '7 ', ' 7 5', '07 5', '7 05', '7  5', '7 5\n', '+7 5', '7.0 5', '1e3 0', '0x10 0', '7 -1', 'abc', '1000000000000000 0']) {
      assert.equal(typeof parseGeneration(Buffer.from(bad)), 'string', JSON.stringify(bad));
    }
    assert.equal(parseGeneration(Buffer.from('5 7')), 'floor 7 above generation 5');
    assert.equal(parseGeneration(Buffer.alloc(MAX_GEN_RECORD + 1, 0x31)), `longer than ${MAX_GEN_RECORD} bytes`);
  });
});

describe('group-wide revoke and rotate over a real redis-server', { skip }, () => {
  test('revoke on one member: the old key is unknown to both members and a later one, a new key is shared at once', async () => {
    await redis.command('FLUSHALL');
    const clock = new FakeClock(NOW);
    const a = member(clock);
    const b = member(clock);
    try {
      await linkReady(a.link);
      await linkReady(b.link);
      const k = okKey(await a.tickets.key(null, NOW, TIMEOUT));
      assert.ok(okKey(await b.tickets.key(null, NOW, TIMEOUT)).equals(k), 'the members share the key');
      const name = nameOf(k);
      assert.equal((await b.tickets.key(name, NOW, TIMEOUT)).status, 'ok');
      // B's local ring holds a key too (as after a Redis outage): it must go with the revoke.
      const localName = nameOf(okKey(b.local.key(null, NOW, TIMEOUT)));
      const slot = Math.floor(NOW / HALF);
      const oldRecord = await redis.command('GET', `tlsmgr:tktkey:${HALF}:${slot}`);
      assert.ok(Buffer.isBuffer(oldRecord));

      await a.tickets.revoke(NOW, TIMEOUT);
      assert.equal((await a.tickets.key(name, NOW, TIMEOUT)).status, 'nokey', 'A still finds the revoked key');
      assert.deepEqual(await redis.command('GET', 'tlsmgr:tktkey:gen'), Buffer.from('1 1'));
      for (const s of [slot - 1, slot, slot + 1]) {
        assert.equal(await redis.command('EXISTS', `tlsmgr:tktkey:${HALF}:${s}`), 0, `slot ${s} of generation 0 is still in Redis`);
      }
      assert.ok(await waitFor(() => b.infos.some((l) => /session ticket keys revoked by a member of the group \(generation 1\)/.test(l)), 100, 50),
        `B did not learn the revoke within 5 s: ${b.infos.join('; ')}`);
      assert.equal((await b.tickets.key(name, NOW, TIMEOUT)).status, 'nokey', 'B still finds the revoked key');
      assert.equal(b.local.key(localName, NOW, TIMEOUT).status, 'nokey', 'B\'s local ring was not revoked');
      assert.equal((await b.tickets.key(localName, NOW, TIMEOUT)).status, 'nokey');
      assert.equal(b.tickets.info(NOW, TIMEOUT).generation, 1);

      // The group's next key: new, the same on both, found by name on both.
      const k2 = okKey(await b.tickets.key(null, NOW, TIMEOUT));
      assert.ok(!nameOf(k2).equals(name));
      assert.ok(okKey(await a.tickets.key(null, NOW, TIMEOUT)).equals(k2), 'the members do not share the new key');
      assert.ok(okKey(await a.tickets.key(nameOf(k2), NOW, TIMEOUT)).equals(k2));

      // A member started afterwards, and a revoked record put back under the new generation's name.
      const c = member(clock);
      await linkReady(c.link);
      assert.equal((await c.tickets.key(name, NOW, TIMEOUT)).status, 'nokey', 'a later member finds the revoked key');
      await redis.command('SET', `tlsmgr:tktkey:g1:${HALF}:${slot - 1}`, oldRecord);
      const d = member(clock);
      await linkReady(d.link);
      assert.equal((await d.tickets.key(name, NOW, TIMEOUT)).status, 'nokey', 'a revoked record opened under a new name');
      assert.ok(d.warnings.some((w) => /ticket key of slot \d+: .* -- using a local key/.test(w)), d.warnings.join('\n'));
      assert.deepEqual([...a.warnings, ...b.warnings, ...c.warnings], []);
    } finally {
      closeAll();
    }
  });

  test('a member that polls too rarely learns the revoke when its connection is ready again', async () => {
    await redis.command('FLUSHALL');
    const clock = new FakeClock(NOW);
    const a = member(clock);
    const b = member(clock, 3_600_000);
    try {
      await linkReady(a.link);
      await linkReady(b.link);
      const name = nameOf(okKey(await b.tickets.key(null, NOW, TIMEOUT)));
      await a.tickets.revoke(NOW, TIMEOUT);
      // B has not read the generation since: it still hands out the revoked key.
      assert.ok(nameOf(okKey(await b.tickets.key(null, NOW, TIMEOUT))).equals(name));
      const killed = await redis.command('CLIENT', 'KILL', 'TYPE', 'normal');
      assert.ok(typeof killed === 'number' && killed >= 2, `CLIENT KILL: ${String(killed)}`);
      assert.ok(await waitFor(() => b.infos.some((l) => /revoked by a member of the group \(generation 1\)/.test(l)), 100, 50),
        `B did not learn the revoke on reconnecting within 5 s: ${b.infos.join('; ')}`);
      assert.equal((await b.tickets.key(name, NOW, TIMEOUT)).status, 'nokey');
      assert.ok(!nameOf(okKey(await b.tickets.key(null, NOW, TIMEOUT))).equals(name));
    } finally {
      closeAll();
    }
  });

  test('rotate on one member: a new shared current key, the old one decrypts on every member; a second rotate drops it', async () => {
    await redis.command('FLUSHALL');
    const clock = new FakeClock(NOW);
    const a = member(clock);
    const b = member(clock);
    try {
      await linkReady(a.link);
      await linkReady(b.link);
      const k = okKey(await a.tickets.key(null, NOW, TIMEOUT));
      assert.ok(okKey(await b.tickets.key(null, NOW, TIMEOUT)).equals(k));
      const name = nameOf(k);
      await a.tickets.rotate(NOW, TIMEOUT);
      assert.deepEqual(await redis.command('GET', 'tlsmgr:tktkey:gen'), Buffer.from('1 0'));
      const k2 = okKey(await a.tickets.key(null, NOW, TIMEOUT));
      assert.ok(!nameOf(k2).equals(name), 'rotate made no new current key');
      assert.ok(okKey(await a.tickets.key(name, NOW, TIMEOUT)).equals(k), 'the old key no longer decrypts on A');
      assert.ok(await waitFor(() => b.infos.some((l) => /session ticket keys rotated by a member of the group \(generation 1\)/.test(l)), 100, 50),
        `B did not learn the rotate within 5 s: ${b.infos.join('; ')}`);
      assert.ok(okKey(await b.tickets.key(null, NOW, TIMEOUT)).equals(k2), 'B does not encrypt with the new key');
      assert.ok(okKey(await b.tickets.key(name, NOW, TIMEOUT)).equals(k), 'the old key no longer decrypts on B');
      const c = member(clock);
      await linkReady(c.link);
      assert.ok(okKey(await c.tickets.key(name, NOW, TIMEOUT)).equals(k), 'a later member does not find the old key');
      assert.equal((await a.tickets.rotate(NOW, 0).then(() => 'done', (e: Error) => e.message)), 'ticket keys are disabled (smtpd_tls_session_cache_timeout is 0)');

      await b.tickets.rotate(NOW, TIMEOUT);
      const k3 = okKey(await b.tickets.key(null, NOW, TIMEOUT));
      assert.ok(!k3.equals(k2) && !k3.equals(k));
      assert.ok(okKey(await b.tickets.key(nameOf(k2), NOW, TIMEOUT)).equals(k2), 'the previous key decrypts');
      assert.equal((await b.tickets.key(name, NOW, TIMEOUT)).status, 'nokey', 'two rotates ago: dropped');
      assert.ok(await waitFor(() => a.tickets.info(NOW, TIMEOUT).generation === 2, 100, 50), 'A did not learn the second rotate');
      assert.equal((await a.tickets.key(name, NOW, TIMEOUT)).status, 'nokey');
      assert.ok(okKey(await a.tickets.key(null, NOW, TIMEOUT)).equals(k3));
      assert.deepEqual([...a.warnings, ...b.warnings, ...c.warnings], []);
    } finally {
      closeAll();
    }
  });

  test('hostile generation values are refused with a warning; a revoke still goes through', async () => {
    await redis.command('FLUSHALL');
    const clock = new FakeClock(NOW);
    const gen = 'tlsmgr:tktkey:gen';
    try {
      // Never read a valid generation: local keys, a warning that does not echo the value.
      await redis.command('SET', gen, 'evil-not-a-number');
      // No polling here: every read is the test's, so each warning is the one expected.
      const m = member(clock, 3_600_000);
      await linkReady(m.link);
      const k = okKey(await m.tickets.key(null, NOW, TIMEOUT));
      assert.ok(okKey(m.local.key(null, NOW, TIMEOUT)).equals(k), 'not served from the local ring');
      assert.deepEqual(m.warnings, [`redis ${cf}: ticket key generation: not two decimal numbers -- using local keys`]);
      assert.equal(m.tickets.info(NOW, TIMEOUT).generation, null);

      // 50 MB: read at most MAX_GEN_RECORD + 1 bytes of it.
      await redis.command('DEL', gen);
      await redis.command('SETRANGE', gen, String((50 << 20) - 1), '9'); // zero-filled up to there
      await redis.command('SETRANGE', gen, '0', '9 9');
      const big = member(clock, 3_600_000);
      await linkReady(big.link);
      const sent0 = await netOutput();
      okKey(await big.tickets.key(null, NOW, TIMEOUT));
      await big.tickets.refresh();
      const sent = (await netOutput()) - sent0;
      assert.ok(sent < 64 * 1024, `Redis sent ${sent} bytes`);
      assert.ok(big.warnings.includes(`redis ${cf}: ticket key generation: longer than ${MAX_GEN_RECORD} bytes -- using local keys`), big.warnings.join('\n'));

      // A revoke over a hostile value writes a valid one; every member then shares again.
      await big.tickets.revoke(NOW, TIMEOUT);
      assert.deepEqual(await redis.command('GET', gen), Buffer.from('1 1'));
      await m.tickets.refresh();
      const shared = okKey(await m.tickets.key(null, NOW, TIMEOUT));
      assert.ok(okKey(await big.tickets.key(null, NOW, TIMEOUT)).equals(shared), 'not shared after the revoke');
      assert.ok(!okKey(m.local.key(null, NOW, TIMEOUT)).equals(shared), 'still the local key');
      await m.tickets.revoke(NOW, TIMEOUT);
      await m.tickets.revoke(NOW, TIMEOUT);
      assert.deepEqual(await redis.command('GET', gen), Buffer.from('3 3'));

      // Going back, floor above generation, a hash: warnings, generation 3 kept, keys still shared.
      const warned = m.warnings.length;
      for (const [plant, reason] of [['1 1', 'went back to 1 (floor 1)'], ['5 9', 'floor 9 above generation 5'], ['3 2', 'went back to 3 (floor 2)']] as const) {
        await redis.command('SET', gen, plant);
        clock.advance(61); // past the warning limiter's interval
        await m.tickets.refresh();
        assert.equal(m.warnings.at(-1), `redis ${cf}: ticket key generation: ${reason} -- keeping generation 3`);
        assert.equal(m.tickets.info(clock.now(), TIMEOUT).generation, 3);
      }
      assert.equal(m.warnings.length, warned + 3);
      await redis.command('DEL', gen);
      await redis.command('HSET', gen, 'f', 'v');
      await m.tickets.revoke(clock.now(), TIMEOUT);
      assert.deepEqual(await redis.command('GET', gen), Buffer.from('4 4'));
      for (const w of [...m.warnings, ...big.warnings]) assert.ok(!w.includes('evil') && !w.includes('9 9'), w);
    } finally {
      closeAll();
    }
  });

  test('a generation Redis lost is written back; with Redis down a revoke fails clearly and revokes the local ring', async () => {
    await redis.command('FLUSHALL');
    const clock = new FakeClock(NOW);
    const m = member(clock);
    try {
      await linkReady(m.link);
      okKey(await m.tickets.key(null, NOW, TIMEOUT));
      await m.tickets.revoke(NOW, TIMEOUT);
      await redis.command('FLUSHALL');
      await m.tickets.refresh();
      assert.deepEqual(await redis.command('GET', 'tlsmgr:tktkey:gen'), Buffer.from('1 1'));
      assert.ok(m.warnings.includes(`redis ${cf}: ticket key generation missing -- writing generation 1 back`), m.warnings.join('\n'));

      await redis.stop();
      try {
        assert.ok(await waitFor(() => !m.link.ready, 250, 20), 'the link did not notice Redis going away');
        const localName = nameOf(okKey(await m.tickets.key(null, NOW, TIMEOUT)));
        assert.ok(okKey(m.local.key(localName, NOW, TIMEOUT)).subarray(0, 16).equals(localName), 'served from the local ring');
        await assert.rejects(m.tickets.revoke(NOW, TIMEOUT), (err: Error) => {
          assert.match(err.message, new RegExp(`^keys revoke: redis ${cf}: .*: the Redis group's ticket keys are unchanged \\(this member's local keys were dropped\\) -- try again when Redis answers$`));
          return true;
        });
        assert.equal(m.local.key(localName, NOW, TIMEOUT).status, 'nokey');
      } finally {
        await redis.start();
      }
    } finally {
      closeAll();
    }
  });
});
