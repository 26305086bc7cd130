/*
 * ctl-redis - tlsmgr-ctl against a real daemon whose caches and ticket keys are shared
 * through a real redis-server (test/helpers/redis.ts):
 * - flush of a redis: cache without --cluster is refused and empties nothing;
 * - flush --cluster smtpd removes the group's smtpd entries (a stored id misses) and leaves
 *   the smtp entries and keys outside the prefix alone;
 * - status --json shows the cache as shared and the Redis connection with its counters;
 * - keys revoke on one daemon is group-wide: a ticket key name from before is unknown to it
 *   and (bounded wait) to a second daemon sharing the keys, which logs the revoke it
 *   applied; the next key is new and shared by both; status shows the generation;
 * - keys rotate: a new shared current key, the old one still found by name on both.
 * Every wait is bounded.
 */

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startDaemon, type RunningDaemon } from '../../bench/daemon.js';
import { TlsmgrClient } from '../../src/client/client.js';
import { main } from '../../src/ctl/main.js';
import { STAT } from '../../src/protocol/names.js';
import { skipWithoutRedis, startRedis, waitFor, writeClusterFiles, type RedisServer } from '../helpers/redis.js';

const skip = skipWithoutRedis();
let redis: RedisServer;
let dir: string;
let d: RunningDaemon;
let client: TlsmgrClient;
let db: string;

async function ctl(...argv: string[]): Promise<{ code: number; out: string[]; err: string[] }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(['-c', join(d.dir, 'etc'), ...argv], { out: (l) => out.push(l), err: (l) => err.push(l) }, {});
  return { code, out, err };
}

before(async () => {
  if (skip !== false) return;
  redis = await startRedis();
  dir = mkdtempSync(join(tmpdir(), 'tlsmgr-ctl-redis-'));
  const files = writeClusterFiles(dir, redis, { via: 'tcp', timeout: '2000ms' });
  db = `redis:${files.cf}`;
  d = await startDaemon({ mainCf: { smtpd_tls_session_cache_database: db, smtp_tls_session_cache_database: db } });
  client = await TlsmgrClient.connect(d.socket, { timeoutMs: 5000 });
  // Bounded wait until the daemon's link is up: an update is then found.
  for (let i = 0; i < 50; i++) {
    await client.update('smtpd', 'probe', Buffer.from('probe'));
    if ((await client.lookup('smtpd', 'probe')).status === STAT.OK) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('the daemon did not reach Redis within 5 s');
});

after(async () => {
  if (skip !== false) return;
  client?.close();
  await d?.stop();
  await redis?.destroy();
  rmSync(dir, { recursive: true, force: true });
});

describe('tlsmgr-ctl with redis: caches and shared ticket keys', { skip }, () => {
  test('flush without --cluster is refused; flush --cluster smtpd empties the group\'s smtpd entries only', async () => {
    assert.equal(await client.update('smtpd', 'shared-id', Buffer.from('shared-session')), STAT.OK);
    assert.equal(await client.update('smtp', 'smtp-id', Buffer.from('smtp-session')), STAT.OK);
    await redis.command('SET', 'unrelated:key', 'v');
    const refused = await ctl('flush', 'smtpd');
    assert.equal(refused.code, 1);
    assert.match(refused.err[0], /fatal: tlsmgr: flush: the smtpd TLS session cache redis:.* is shared by the Redis group -- use --cluster/);
    assert.equal((await client.lookup('smtpd', 'shared-id')).status, STAT.OK, 'nothing emptied');
    const all = await ctl('flush');
    assert.equal(all.code, 1, 'all includes shared caches: refused too');

    const r = await ctl('flush', '--cluster', 'smtpd');
    assert.equal(r.code, 0, r.err.join('\n'));
    // The probe and shared-id: the only smtpd entries this fresh server holds.
    assert.deepEqual(r.out, ['flushed smtpd TLS session cache: 2 entries removed']);
    assert.equal((await client.lookup('smtpd', 'shared-id')).status, STAT.ERR);
    assert.equal((await client.lookup('smtp', 'smtp-id')).status, STAT.OK, 'the smtp entries stay');
    assert.deepEqual(await redis.command('GET', 'unrelated:key'), Buffer.from('v'));
  });

  test('status --json: shared caches and the Redis connection\'s counters', async () => {
    const r = await ctl('status', '--json');
    assert.equal(r.code, 0, r.err.join('\n'));
    const s = JSON.parse(r.out[0]) as {
      caches: Record<string, { shared: boolean; entries: number }>;
      redis: { connected: boolean; counters: { roundtrips: number } }[];
      ticketKeys: { shared: boolean };
    };
    assert.equal(s.caches.smtpd.shared, true);
    assert.equal(s.caches.smtpd.entries, -1);
    assert.equal(s.redis.length, 1);
    assert.equal(s.redis[0].connected, true);
    assert.ok(s.redis[0].counters.roundtrips > 0);
    assert.equal(s.ticketKeys.shared, true);
    const text = await ctl('status');
    assert.ok(text.out.some((l) => /^redis .*: connected, roundtrips \d+, errors \d+, timeouts \d+, fallbacks \d+$/.test(l)), text.out.join('\n'));
  });

  test('keys revoke and rotate are group-wide: a second daemon sharing the keys follows', async () => {
    const d2 = await startDaemon({ mainCf: { smtpd_tls_session_cache_database: db } });
    const c2 = await TlsmgrClient.connect(d2.socket, { timeoutMs: 5000 });
    try {
      // Both daemons on the group's key (the second one's link may take a moment).
      const first = await client.tktkey();
      assert.equal(first.status, STAT.OK);
      const name = first.keybuf.subarray(0, 16);
      assert.ok(await waitFor(async () => (await c2.tktkey(name)).status === STAT.OK, 50, 100), 'the second daemon does not share the key');

      const r = await ctl('keys', 'revoke');
      assert.equal(r.code, 0, r.err.join('\n'));
      assert.equal(r.out[0], 'ticket keys revoked for the Redis group (generation 1; every member follows within a second)');
      assert.match(r.out[1], /^ticket keys: 0 \(shared through Redis, generation 1\); no current key/);
      assert.match(d.stderr(), /: control: keys revoke: every session ticket key of the Redis group \(generation 1\) dropped/);
      assert.equal((await client.tktkey(name)).status, STAT.ERR, 'the daemon asked still finds the revoked key');
      assert.ok(await waitFor(async () => (await c2.tktkey(name)).status === STAT.ERR, 50, 100), 'the other daemon still finds the revoked key');
      assert.match(d2.stderr(), /: redis .*: session ticket keys revoked by a member of the group \(generation 1\) -- every ticket key dropped/);
      const fresh = await client.tktkey();
      assert.equal(fresh.status, STAT.OK);
      assert.ok(!fresh.keybuf.subarray(0, 16).equals(name));
      assert.ok((await c2.tktkey()).keybuf.equals(fresh.keybuf), 'the new key is not shared');
      const status = JSON.parse((await ctl('status', '--json')).out[0]) as { ticketKeys: { generation: number; shared: boolean } };
      assert.deepEqual([status.ticketKeys.shared, status.ticketKeys.generation], [true, 1]);

      const rot = await ctl('keys', 'rotate');
      assert.equal(rot.code, 0, rot.err.join('\n'));
      assert.equal(rot.out[0], 'ticket keys rotated for the Redis group (generation 2; every member follows within a second)');
      const next = await client.tktkey();
      assert.ok(!next.keybuf.equals(fresh.keybuf), 'rotate made no new current key');
      assert.ok(await waitFor(async () => (await c2.tktkey()).keybuf.equals(next.keybuf), 50, 100), 'the other daemon does not take the rotated key');
      assert.equal((await c2.tktkey(fresh.keybuf.subarray(0, 16))).status, STAT.OK, 'the key before the rotate no longer decrypts');
      assert.equal(d.proc.exitCode, null);
      assert.equal(d2.proc.exitCode, null);
    } finally {
      c2.close();
      await d2.stop();
    }
  });
});
