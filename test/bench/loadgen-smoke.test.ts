/*
 * bench smoke: the load generator against a real daemon process for about a second, with
 * 4 connections of the default mix. Every reply is verified by the generator (lookup hits must
 * return the stored bytes, misses ERR, deletes OK), so a wrong daemon reply fails this test.
 * Not a timed test: it asserts correctness and that work was done, not a speed.
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
  } finally {
    assert.equal(await d.stop(), 0, 'daemon exits 0 on SIGTERM');
  }
});
