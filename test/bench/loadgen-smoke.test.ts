/*
 * bench smoke: the load generator against a real daemon process for about a second, with
 * 4 connections of the default mix. Every reply is verified by the generator (lookup hits must
 * return the stored bytes, misses ERR, deletes OK), so a wrong daemon reply fails this test.
 * Not a timed test: it asserts correctness and that work was done, not a speed. Also: runLoad's
 * preload and warm-up (on the same connections, not in the report).
 */

import assert from 'node:assert/strict';
import test from 'node:test';
import { startDaemon } from '../../bench/daemon.js';
import { runLoad } from '../../bench/loadgen.js';

test('load generator runs a verified mixed load against the daemon', { timeout: 60000 }, async () => {
  const d = await startDaemon();
  try {
    const r = await runLoad({ socket: d.socket, connections: 4, durationMs: 1000, pid: d.proc.pid });
    assert.equal(r.errors, 0, 'every reply verified');
    assert.ok(r.requests > 100, `requests done: ${r.requests}`);
    for (const op of ['seed', 'update', 'lookup_hit', 'lookup_miss', 'delete']) {
      assert.ok(r.ops[op].count > 0, `${op} exercised`);
    }
    assert.ok((r.daemon_rss_mb ?? 0) > 0);
    assert.equal(r.all.count, r.requests, 'overall percentiles over every request');
    assert.ok(r.all.p50_us <= r.all.p99_us && r.all.p99_us <= r.all.max_us);
    assert.ok(r.daemon_cpu_s !== undefined && r.daemon_cpu_us_per_request === (r.daemon_cpu_s * 1e6) / r.requests, 'CPU per request of the run');
  } finally {
    assert.equal(await d.stop(), 0, 'daemon exits 0 on SIGTERM');
  }
});

test('runLoad: the preload comes before the measured run and stays out of its report; a warm-up runs too', { timeout: 60000 }, async () => {
  const d = await startDaemon();
  try {
    const mix = { seed: 0, update: 0, lookup_hit: 1, lookup_miss: 0, delete: 0 };
    // Lookups only and no warm-up: a connection with nothing preloaded would fall back to updates.
    const r = await runLoad({ socket: d.socket, connections: 2, durationMs: 300, preload: 50, mix, pid: d.proc.pid });
    assert.equal(r.errors, 0, 'every lookup found its preloaded session');
    assert.equal(r.ops.update.count, 0, 'the preload updates are not in the report');
    assert.ok(r.ops.lookup_hit.count > 0);
    const w = await runLoad({ socket: d.socket, connections: 2, durationMs: 200, warmupMs: 100, preload: 10, mix });
    assert.equal(w.errors, 0);
    assert.equal(w.ops.update.count, 0);
  } finally {
    await d.stop();
  }
});
