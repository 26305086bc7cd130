/*
 * redis-hostile - Redis is a peer, not a friend (hardening issue, finding 5a), against a real
 * redis-server: the test writes values straight into Redis, under the very keys a member
 * reads, as anyone with access to the server could, and watches Sealer.open (a node:test
 * spy on the member's sealer):
 * - session cache: a value longer than max_entry_size + SEAL_OVERHEAD is refused by its
 *   length -- open() is never called on it -- counted as corrupt, warned about (the limit,
 *   never bytes) and removed from Redis; that holds even for a genuine record sealed
 *   with the cluster key whose session is over the limit; a record of exactly the limit
 *   opens;
 * - ticket keys: a slot value of any length but the one a sealed 88-byte key has (per record
 *   version) is refused without open(), warned about, and the request is served from the
 *   local ring; a genuine record of the wrong length is refused the same way;
 * - a 50 MB value planted under a session key or a ticket-key slot: Redis sends the member
 *   (INFO stats total_net_output_bytes) under 1 MiB for a lookup or a tktkey request -- values
 *   are read with GETRANGE up to the limit, never whole -- and it is refused as above;
 * - rolling upgrade: version 1 records, sealed as an older member seals them (HKDF of the
 *   key-file key, AES-256-GCM, 12-byte nonce), are still found -- a session and a ticket key.
 * LIMITS
 *   Needs redis-server (skipWithoutRedis; CI=true makes its absence a failure); one server on
 *   127.0.0.1 (a free port) and a UNIX socket, stopped in after(). Waits are bounded.
 */

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, mock, test } from 'node:test';
import { TlsScache } from '../../src/cache/scache.js';
import { RedisStore } from '../../src/cache/stores/redis.js';
import { SEAL_OVERHEAD, SEAL_OVERHEAD_V1 } from '../../src/util/seal.js';
import { readRedisConfig } from '../../src/cluster/config.js';
import { parseClusterKeys, type ClusterKeys } from '../../src/cluster/keyfile.js';
import { RedisLink } from '../../src/cluster/link.js';
import { FakeClock } from '../../src/util/clock.js';
import { TicketKeyRing, type TicketKeyResult } from '../../src/tickets/keys.js';
import { SharedTicketKeys } from '../../src/tickets/shared.js';
import { T0 } from '../helpers/harness.js';
import { linkReady, skipWithoutRedis, startRedis, waitFor, writeClusterFiles, type RedisServer } from '../helpers/redis.js';
import { clusterSealKey, sealV1 } from '../helpers/seal-v1.js';
import { TICKET, TOUT_OFFSET } from '../../src/util/tktkey.js';

const skip = skipWithoutRedis();
const TIMEOUT = 3600;
const HALF = TIMEOUT / 2;
const MAX_ENTRY = 4096;
const KEY_HEX = '5a'.repeat(32);
const K1 = `1 ${KEY_HEX}`;

let redis: RedisServer;
let dir: string;
let cf: string;

interface Member {
  readonly keys: ClusterKeys;
  readonly link: RedisLink;
  readonly cache: TlsScache;
  readonly store: RedisStore;
  readonly tickets: SharedTicketKeys;
  readonly local: TicketKeyRing;
  readonly clock: FakeClock;
  readonly warnings: string[];
}

async function member(): Promise<Member> {
  const keys = parseClusterKeys(K1, 'k');
  const clock = new FakeClock(T0);
  const warnings: string[] = [];
  const warn = (m: string): void => void warnings.push(m);
  const link = RedisLink.open(readRedisConfig(cf), { clock, warn, info: () => undefined });
  const limits = { maxEntries: 0, maxSize: 0, maxEntrySize: MAX_ENTRY };
  const store = new RedisStore({ cacheType: 'smtpd', link, keys, limits });
  const cache = new TlsScache({ cacheType: 'smtpd', dictName: `redis:${cf}`, timeout: TIMEOUT, store, clock, smtputf8: true, warn, limits });
  const local = new TicketKeyRing(randomBytes);
  const tickets = new SharedTicketKeys({ link, sealer: keys.sealer, random: randomBytes, fallback: local, clock, warn });
  await linkReady(link);
  return { keys, link, cache, store, tickets, local, clock, warnings };
}

async function set(key: string, value: Buffer): Promise<void> {
  const r = await redis.command('SET', key, value);
  assert.ok(Buffer.isBuffer(r) && r.toString() === 'OK', `SET ${key}`);
}

/** A value that looks like a version 2 record of key 1 at first glance: random past the header. */
function plausible(length: number, version = 2): Buffer {
  const b = randomBytes(length);
  b[0] = version;
  b.writeUInt32BE(1, 1);
  return b;
}

/** The longest sealed ticket key of any record version. */
const MAX_TICKET_RECORD = TICKET.RECORDLEN + Math.max(SEAL_OVERHEAD, SEAL_OVERHEAD_V1);
/** A planted value far over every limit, and the most a member may read of it (well under). */
const HUGE = 50 << 20;
const READ_BOUND = 1 << 20;

/** Plant a HUGE-byte value under key (zero-filled by SETRANGE, a version 2 header in front). */
async function plantHuge(key: string): Promise<void> {
  await redis.command('SETRANGE', key, String(HUGE - 1), 'x');
  await redis.command('SETRANGE', key, '0', plausible(64));
  assert.equal(await redis.command('STRLEN', key), HUGE);
}

/** Bytes Redis has sent to all its clients so far (INFO stats total_net_output_bytes). */
async function netOut(): Promise<number> {
  const info = await redis.command('INFO', 'stats');
  assert.ok(Buffer.isBuffer(info));
  const m = /^total_net_output_bytes:(\d+)\r?$/m.exec(info.toString('latin1'));
  assert.ok(m !== null, 'INFO stats has total_net_output_bytes');
  return Number(m[1]);
}

function okKey(r: TicketKeyResult): Buffer {
  assert.equal(r.status, 'ok');
  return (r as Extract<TicketKeyResult, { status: 'ok' }>).key.record;
}

/** The 88-byte ticket key a member publishes for `slot`, with its tout. */
function ticketRecord(slot: number): Buffer {
  const rec = randomBytes(TICKET.RECORDLEN);
  rec.writeBigInt64LE(BigInt((slot + 1) * HALF), TOUT_OFFSET);
  return rec;
}

before(async () => {
  if (skip !== false) return;
  redis = await startRedis();
  dir = mkdtempSync(join(tmpdir(), 'tlsmgr-redis-hostile-'));
  cf = writeClusterFiles(dir, redis, { via: 'unix', timeout: '2s', keys: [K1] }).cf;
});

after(async () => {
  if (skip !== false) return;
  await redis.destroy();
  rmSync(dir, { recursive: true, force: true });
});

describe('values planted in Redis', { skip }, () => {
  test('session cache: an overlong value is refused by its length, never decrypted; counted, warned, removed', async () => {
    await redis.command('FLUSHALL');
    const m = await member();
    try {
      assert.equal(m.store.maxRecord, MAX_ENTRY + SEAL_OVERHEAD);
      const id = Buffer.from('[192.0.2.7]:25&hostile');
      const [key] = m.store.keysFor(id);
      const genuineOver = m.keys.sealer.seal('smtpd', id, T0, randomBytes(MAX_ENTRY + 1));
      const atLimit = randomBytes(MAX_ENTRY);
      const genuineAt = m.keys.sealer.seal('smtpd', id, T0, atLimit);
      assert.equal(genuineOver.length, m.store.maxRecord + 1);
      assert.equal(genuineAt.length, m.store.maxRecord);
      const open = mock.method(m.keys.sealer, 'open');
      let corrupt = 0;
      for (const [what, value] of [['random bytes', plausible(m.store.maxRecord + 1)], ['1 MiB', plausible(1 << 20)],
        ['a genuine record over the limit', genuineOver]] as const) {
        await set(key, value);
        m.warnings.length = 0;
        assert.equal(await m.cache.lookup(id), null, what);
        assert.equal(open.mock.callCount(), 0, `${what}: Sealer.open was called`);
        assert.equal(m.cache.stats().corrupt, ++corrupt, what);
        assert.deepEqual(m.warnings, [
          `smtpd TLS cache: malformed entry for (hashed id ${key.slice(-64, -48)}): record longer than the ${m.store.maxRecord}-byte limit; entry removed`,
        ], what);
        assert.ok(await waitFor(async () => (await redis.command('EXISTS', key)) === 0, 100, 20), `${what}: removed from Redis`);
        m.clock.advance(61); // past the warning rate limit, for the next case
      }
      // A record of exactly the limit is one a member could have written: it opens.
      await set(key, genuineAt);
      assert.deepEqual(await m.cache.lookup(id), atLimit);
      assert.equal(open.mock.callCount(), 1);
      assert.equal(m.cache.stats().corrupt, corrupt);
    } finally {
      m.link.close();
    }
  });

  test('ticket keys: a value of any other length than a sealed key\'s is refused without decrypting; the local ring serves', async () => {
    const slot = Math.floor(T0 / HALF);
    const lengths = [TICKET.RECORDLEN + SEAL_OVERHEAD + 1, TICKET.RECORDLEN + SEAL_OVERHEAD - 1, 1 << 20];
    const cases: Array<[string, Buffer]> = lengths.map((n) => [`${n} random bytes`, plausible(n)]);
    cases.push([`a ${TICKET.RECORDLEN + SEAL_OVERHEAD_V1 + 8}-byte "version 1" value`, plausible(TICKET.RECORDLEN + SEAL_OVERHEAD_V1 + 8, 1)]);
    for (const [what, value] of cases) {
      await redis.command('FLUSHALL');
      const m = await member();
      try {
        const key = `${m.link.prefix}tktkey:${HALF}:${slot}`;
        await set(key, value);
        const open = mock.method(m.keys.sealer, 'open');
        const got = okKey(await m.tickets.key(null, T0, TIMEOUT));
        assert.deepEqual(got, okKey(m.local.key(null, T0, TIMEOUT)), `${what}: served from the local ring`);
        const opened = open.mock.calls.map((c) => c.arguments[2]);
        assert.ok(!opened.some((r) => r.equals(value)), `${what}: Sealer.open was called on it`);
        assert.ok(opened.length >= 1, `${what}: the next slot's key (ours) was opened`);
        // Values are read up to one byte past the longest sealed key (MAX_TICKET_RECORD).
        const length = value.length > MAX_TICKET_RECORD ? `over ${MAX_TICKET_RECORD}` : `${value.length}`;
        assert.deepEqual(m.warnings.filter((w) => /ticket key/.test(w)), [
          `redis ${cf}: ticket key of slot ${slot}: bad record length ${length} -- using a local key`,
        ], what);
      } finally {
        m.link.close();
      }
    }
  });

  test('ticket keys: a genuine sealed record of the wrong length is refused before it is opened', async () => {
    await redis.command('FLUSHALL');
    const m = await member();
    try {
      const slot = Math.floor(T0 / HALF);
      const short = m.keys.sealer.seal('tktkey', Buffer.from(`${HALF}:${slot}`), slot * HALF, randomBytes(TICKET.RECORDLEN - 1));
      await set(`${m.link.prefix}tktkey:${HALF}:${slot}`, short);
      const open = mock.method(m.keys.sealer, 'open');
      okKey(await m.tickets.key(null, T0, TIMEOUT));
      assert.ok(!open.mock.calls.some((c) => c.arguments[2].equals(short)), 'Sealer.open was called on it');
      assert.ok(m.warnings.some((w) => w.includes(`bad record length ${short.length}`)), m.warnings.join('\n'));
    } finally {
      m.link.close();
    }
  });

  test('a 50 MB value planted under a session key or a ticket-key slot is never read into the daemon', async () => {
    await redis.command('FLUSHALL');
    const m = await member();
    try {
      const id = Buffer.from('[192.0.2.9]:25&huge');
      const [key] = m.store.keysFor(id);
      const slot = Math.floor(T0 / HALF);
      const slotKey = `${m.link.prefix}tktkey:${HALF}:${slot}`;
      await plantHuge(key);
      await plantHuge(slotKey);
      const open = mock.method(m.keys.sealer, 'open');

      // Session lookup: refused by length as before (corrupt, warned, removed), yet Redis sent
      // next to nothing -- GET would have sent all 50 MB, read by ioredis even after a timeout.
      let before = await netOut();
      assert.equal(await m.cache.lookup(id), null);
      let sent = (await netOut()) - before;
      assert.ok(sent < READ_BOUND, `session lookup: Redis sent ${sent} bytes to the daemon`);
      assert.equal(open.mock.callCount(), 0);
      assert.equal(m.cache.stats().corrupt, 1);
      assert.ok(m.warnings.some((w) => w.includes(`record longer than the ${m.store.maxRecord}-byte limit; entry removed`)), m.warnings.join('\n'));
      assert.ok(await waitFor(async () => (await redis.command('EXISTS', key)) === 0, 100, 20), 'removed from Redis');

      // tktkey without a name (SET NX, then read back: the planted value stays and is refused)
      // and with an unknown name (slots s-1, s, s+1 read again): the local ring serves.
      before = await netOut();
      const got = okKey(await m.tickets.key(null, T0, TIMEOUT));
      assert.deepEqual(got, okKey(m.local.key(null, T0, TIMEOUT)), 'served from the local ring');
      assert.equal((await m.tickets.key(randomBytes(TICKET.NAMELEN), T0, TIMEOUT)).status, 'nokey');
      sent = (await netOut()) - before;
      assert.ok(sent < READ_BOUND, `tktkey: Redis sent ${sent} bytes to the daemon`);
      assert.ok(!open.mock.calls.some((c) => c.arguments[2].length > MAX_TICKET_RECORD), 'Sealer.open was called on it');
      assert.ok(m.warnings.includes(`redis ${cf}: ticket key of slot ${slot}: bad record length over ${MAX_TICKET_RECORD} -- using a local key`),
        m.warnings.join('\n'));
      assert.equal(await redis.command('STRLEN', slotKey), HUGE, 'the planted slot value is left alone');
    } finally {
      m.link.close();
    }
  });

  test('rolling upgrade: version 1 records of an older member are still found (a session, a ticket key)', async () => {
    await redis.command('FLUSHALL');
    const m = await member();
    try {
      const sealKey = clusterSealKey(KEY_HEX);
      const id = Buffer.from('older.example:25');
      const session = randomBytes(700);
      await set(m.store.keysFor(id)[0], sealV1(sealKey, 1, 'smtpd', id, T0, session));
      assert.deepEqual(await m.cache.lookup(id), session);
      const slot = Math.floor(T0 / HALF);
      const tk = ticketRecord(slot);
      const v1 = sealV1(sealKey, 1, 'tktkey', Buffer.from(`${HALF}:${slot}`), slot * HALF, tk);
      assert.equal(v1.length, TICKET.RECORDLEN + SEAL_OVERHEAD_V1);
      await set(`${m.link.prefix}tktkey:${HALF}:${slot}`, v1);
      assert.deepEqual(okKey(await m.tickets.key(null, T0, TIMEOUT)), tk);
      assert.deepEqual(m.warnings, []);
    } finally {
      m.link.close();
    }
  });
});
