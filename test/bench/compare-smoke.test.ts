/*
 * bench smoke: the side-by-side benchmark (bench/compare.ts) for one short round: ours with the
 * default store, ours with memory:, and Postfix's real tlsmgr when it is installed and the
 * suite runs as root. Every reply is verified by the load generator, so a wrong reply from any
 * daemon fails this test. Checks that every present target ran, with zero errors, and that the
 * table prints; not a timed test (no speed is asserted).
 */

import assert from 'node:assert/strict';
import test from 'node:test';
import { benchTargets, formatSideBySide, runSideBySide } from '../../bench/compare.js';
import { postfixTlsmgrAvailable } from '../../bench/postfix-tlsmgr.js';

test('side-by-side bench: one short verified round against every present target', { timeout: 60000 }, async () => {
  const { targets, skipped } = benchTargets();
  const names = targets.map((t) => t.name);
  assert.deepEqual(names.slice(0, 2), ['ours', 'ours-memory']);
  if (postfixTlsmgrAvailable() === null) assert.ok(names.includes('postfix'), 'Postfix present but not run');
  else assert.ok(skipped !== null, 'a missing Postfix is reported');
  const s = await runSideBySide({ targets, skipped, connections: 4, durationMs: 600, warmupMs: 100, rounds: 1 });
  assert.deepEqual(s.order, names, 'each target ran once, in order');
  for (const t of s.targets) {
    assert.equal(t.median.errors, 0, `${t.name}: every reply verified`);
    assert.ok(t.runs[0].requests > 50, `${t.name}: requests done: ${t.runs[0].requests}`);
    for (const op of ['seed', 'update', 'lookup_hit', 'lookup_miss', 'delete']) assert.ok(t.runs[0].ops[op].count > 0, `${t.name}: ${op} exercised`);
    assert.ok(t.median.rss_mb > 0, `${t.name}: RSS read`);
  }
  const pf = s.targets.find((t) => t.name === 'postfix');
  if (pf) assert.ok(s.targets[0].ratio !== undefined && s.targets[0].ratio.requests_per_s > 0, 'ratios ours/Postfix computed');
  const table = formatSideBySide(s);
  for (const n of names) assert.match(table, new RegExp(n));
});
