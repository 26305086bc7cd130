/*
 * bench storage smoke: bench/storage.ts against a real daemon with 2,000 sessions of 1,500
 * bytes and no expiry phase (that one waits for real cleanup passes, minutes): every update
 * and lookup reply is verified, and the figures the benchmark reports are present.
 * Not a timed test: it asserts correctness and that work was done, not a speed.
 */

import assert from 'node:assert/strict';
import test from 'node:test';
import { runStorageBench } from '../../bench/storage.js';

test('storage benchmark: 2,000 entries load and are looked up, all verified', { timeout: 60000 }, async () => {
  const r = await runStorageBench({ entries: 2000, size: 1500, connections: 4, lookups: 2, live: 0, timeout: 120, expire: false });
  assert.equal(r.errors, 0, 'every reply verified');
  assert.equal(r.update_latency.count, 2000);
  assert.equal(r.lookup_at_rest.count, 4000);
  assert.ok(r.load_per_s > 0);
  assert.ok(r.rss_mb_loaded > 0);
  assert.ok(r.file_mb_loaded > 2000 * 1500 / 2 ** 20, `file holds the data: ${r.file_mb_loaded} MB`);
  assert.equal(r.expire, undefined);
});
