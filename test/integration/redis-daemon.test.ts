/*
 * redis-daemon - two real tlsmgr processes (`node bin/tlsmgr`, standalone, each its own
 * queue directory and socket) with redis: caches on one real redis-server (issue 7), driven
 * over their sockets exactly as Postfix's clients speak:
 * - policy says cachable with the configured timeout; an update through daemon A is found
 *   by a lookup through daemon B, byte for byte; a delete through B is seen by A;
 * - tktkey: both hand out the same current 88-byte key; A's key is found by name on B;
 * - a key file readable by others is refused at start ("fatal: ... use chmod 600", exit 1);
 * - Redis stopped: both daemons keep answering (lookup ERR, update OK, tktkey OK from the
 *   local ring, seed OK) and log the rate-limited warning; that no request waited for Redis
 *   is read from the daemons' own counters (the statistics line, every second here), not
 *   from a clock: no call waited for its deadline (timeouts unchanged; the call timeout is
 *   2 s, far above what a slow machine takes to notice a closed connection) and every lookup
 *   and update fell back; Redis started again: sharing resumes (bounded wait);
 * - SIGTERM: both exit 0.
 */

import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { TlsmgrClient } from '../../src/client/client.js';
import { startDaemon, type RunningDaemon } from '../../bench/daemon.js';
import { until } from '../helpers/harness.js';
import { sleep } from '../helpers/postfix.js';
import { skipWithoutRedis, startRedis, writeClusterFiles, type RedisServer } from '../helpers/redis.js';

const skip = skipWithoutRedis();
/** The call timeout: no request here may reach it (see the stopped-Redis test). */
const CALL_MS = 2000;
let redis: RedisServer;
let dir: string;
let db: string;
let keyFile: string;
let a: RunningDaemon;
let b: RunningDaemon;
/** Every daemon started, for after(). */
const running: RunningDaemon[] = [];

const mainCf = (): Record<string, string> => ({
  smtpd_tls_session_cache_database: db,
  smtp_tls_session_cache_database: db,
  smtpd_tls_session_cache_timeout: '3600s',
  tlsmgr_stats_interval: '1s',
});

async function withClient<T>(d: RunningDaemon, fn: (c: TlsmgrClient) => Promise<T>): Promise<T> {
  const c = await TlsmgrClient.connect(d.socket, { timeoutMs: 5000 });
  try {
    return await fn(c);
  } finally {
    c.close();
  }
}

interface LinkStats {
  readonly roundtrips: number;
  readonly errors: number;
  readonly timeouts: number;
  readonly fallbacks: number;
}

/*
 * nextStats - the daemon's Redis counters from the first statistics line it logs after now
 * (bounded wait: it logs one every second): what it has done up to that line.
 */
async function nextStats(d: RunningDaemon): Promise<LinkStats> {
  const from = d.stderr().length;
  const re = /statistics: redis \S+: roundtrips=(\d+) errors=(\d+) timeouts=(\d+) fallbacks=(\d+)/;
  await until(() => re.test(d.stderr().slice(from)), 10_000, 'a statistics line');
  const m = re.exec(d.stderr().slice(from)) as RegExpExecArray;
  return { roundtrips: Number(m[1]), errors: Number(m[2]), timeouts: Number(m[3]), fallbacks: Number(m[4]) };
}

/** Bounded wait until daemon B finds what A stores (both connected to Redis again). */
async function shared(tag: string): Promise<boolean> {
  for (let i = 0; i < 60; i++) {
    const s = Buffer.from(`${tag}-${i}`);
    await withClient(a, (c) => c.update('smtp', `probe-${tag}`, s));
    const r = await withClient(b, (c) => c.lookup('smtp', `probe-${tag}`));
    if (r.status === 0 && r.session.equals(s)) return true;
    await sleep(100);
  }
  return false;
}

before(async () => {
  if (skip !== false) return;
  redis = await startRedis();
  dir = mkdtempSync(join(tmpdir(), 'tlsmgr-redis-daemon-'));
  const files = writeClusterFiles(dir, redis, { via: 'tcp', timeout: `${CALL_MS}ms` });
  db = `redis:${files.cf}`;
  keyFile = files.keyFile;
  // Both started at once; if one fails, the other is still stopped by after() (else it keeps the test process alive).
  const started = await Promise.allSettled([startDaemon({ mainCf: mainCf() }), startDaemon({ mainCf: mainCf() })]);
  for (const r of started) if (r.status === 'fulfilled') running.push(r.value);
  for (const r of started) if (r.status === 'rejected') throw r.reason;
  [a, b] = running;
  assert.ok(await shared('start'), 'the daemons did not share through Redis within 6 s');
});

after(async () => {
  if (skip !== false) return;
  for (const d of running) await d.stop();
  await redis.destroy();
  rmSync(dir, { recursive: true, force: true });
});

describe('two tlsmgr daemons, one redis-server', { skip }, () => {
  test('policy, then a session stored through A is found through B; a delete through B is seen by A', async () => {
    const p = await withClient(a, (c) => c.policy('smtpd'));
    assert.deepEqual(p, { status: 0, cachable: 1, timeout: 3600 });
    const id = 'a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90&s=smtp';
    const session = Buffer.from(Array.from({ length: 220 }, (_, i) => (i * 7) & 0xff));
    assert.equal(await withClient(a, (c) => c.update('smtpd', id, session)), 0);
    const hit = await withClient(b, (c) => c.lookup('smtpd', id));
    assert.equal(hit.status, 0);
    assert.ok(hit.session.equals(session));
    assert.equal(await withClient(b, (c) => c.delete('smtpd', id)), 0);
    assert.equal((await withClient(a, (c) => c.lookup('smtpd', id))).status, -1);
  });

  test('tktkey: both daemons hand out the same current key, and B finds A\'s key by name', async () => {
    const ka = await withClient(a, (c) => c.tktkey());
    const kb = await withClient(b, (c) => c.tktkey());
    assert.equal(ka.status, 0);
    assert.equal(ka.keybuf.length, 88);
    assert.ok(ka.keybuf.equals(kb.keybuf), 'the two daemons disagree on the current ticket key');
    const byName = await withClient(b, (c) => c.tktkey(ka.keybuf.subarray(0, 16)));
    assert.equal(byName.status, 0);
    assert.ok(byName.keybuf.equals(ka.keybuf));
  });

  test('a cluster key file that others can read is refused at start', async () => {
    chmodSync(keyFile, 0o644);
    try {
      await assert.rejects(startDaemon({ mainCf: mainCf() }), /fatal: cluster key file .* mode 0644 gives access to group or others: use chmod 600/);
    } finally {
      chmodSync(keyFile, 0o600);
    }
  });

  test('Redis stopped: both keep answering, every lookup and update from the fallback, none waiting; started again: sharing resumes', async () => {
    await redis.stop();
    try {
      for (const d of [a, b]) {
        const before = await nextStats(d);
        await withClient(d, async (c) => {
          for (let i = 0; i < 10; i++) {
            assert.equal((await c.lookup('smtpd', `down-${i}`)).status, -1);
            assert.equal(await c.update('smtpd', `down-${i}`, Buffer.from('x')), 0);
            const k = await c.tktkey();
            assert.equal(k.status, 0, 'ticket keys fall back to local ones');
            assert.equal(k.keybuf.length, 88);
            assert.equal((await c.seed(32)).status, 0);
          }
        });
        const after = await nextStats(d);
        // A call is made only on a ready connection, so none was queued behind the outage:
        // the 20 lookups and updates fell back at once (or on the closed connection's error),
        // and not one waited for its deadline.
        assert.equal(after.timeouts, before.timeouts, `no call may wait for the timeout: ${JSON.stringify({ before, after })}`);
        assert.ok(after.fallbacks - before.fallbacks >= 20, `every lookup and update falls back: ${JSON.stringify({ before, after })}`);
        assert.ok(after.roundtrips - before.roundtrips <= after.errors - before.errors,
          `a call sent while Redis was down must fail with an error: ${JSON.stringify({ before, after })}`);
      }
      assert.match(a.stderr(), /warning: redis .*-- serving without Redis/);
      assert.ok((a.stderr().match(/serving without Redis/g) ?? []).length < 10, 'warnings are rate-limited');
      assert.equal(a.proc.exitCode, null);
      assert.equal(b.proc.exitCode, null);
    } finally {
      await redis.start();
    }
    assert.ok(await shared('again'), 'sharing did not resume within 6 s of Redis coming back');
    assert.match(a.stderr(), /connection ready again -- sharing resumes/);
  });

  test('SIGTERM: both daemons exit 0', async () => {
    assert.equal(await a.stop(), 0);
    assert.equal(await b.stop(), 0);
  });
});
