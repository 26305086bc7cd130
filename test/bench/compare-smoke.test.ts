/*
 * bench smoke: the side-by-side benchmark (bench/compare.ts) for one short round: ours with the
 * default store, ours with memory:, and Postfix's real tlsmgr when it is installed and the
 * suite runs as root. Every reply is verified by the load generator, so a wrong reply from any
 * daemon fails this test. Checks that every present target ran, with zero errors, and that the
 * table prints; not a timed test (no speed is asserted). Also: --mix parsing and a
 * lookup-heavy run, and RSS counting the daemon's watchdog process.
 */

import assert from 'node:assert/strict';
import test from 'node:test';
import { readFileSync } from 'node:fs';
import { benchTargets, formatSideBySide, parseMix, runSideBySide } from '../../bench/compare.js';
import { startDaemon } from '../../bench/daemon.js';
import { procStats } from '../../bench/loadgen.js';
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

test('--mix: parsed strictly; a lookup-heavy mix runs only the named request types', { timeout: 60000 }, async () => {
  assert.deepEqual(parseMix('update=10,lookup_hit=90'), { seed: 0, update: 10, lookup_hit: 90, lookup_miss: 0, delete: 0 });
  assert.throws(() => parseMix('bogus=1'), /unknown request type "bogus"/);
  assert.throws(() => parseMix('seed=-1'), /bad weight for seed/);
  assert.throws(() => parseMix('seed'), /bad weight for seed/);
  assert.throws(() => parseMix('seed=0'), /every weight is 0/);
  const { targets } = benchTargets({ postfix: false });
  const ours = targets.filter((t) => t.name === 'ours');
  const mix = parseMix('update=10,lookup_hit=90');
  const s = await runSideBySide({ targets: ours, skipped: null, connections: 4, durationMs: 500, warmupMs: 0, rounds: 1, mix });
  const run = s.targets[0].runs[0];
  assert.equal(run.errors, 0);
  assert.ok(run.ops.lookup_hit.count > run.ops.update.count, `lookups ${run.ops.lookup_hit.count}, updates ${run.ops.update.count}`);
  for (const op of ['seed', 'lookup_miss', 'delete']) assert.equal(run.ops[op].count, 0, `${op} is not in the mix`);
  const table = formatSideBySide(s);
  assert.match(table, /mix seed=0 update=10 lookup_hit=90 lookup_miss=0 delete=0,/);
  assert.doesNotMatch(table, /^seed p50/m, 'a request type outside the mix gets no rows');
});

test('procStats counts the daemon and its watchdog process', { timeout: 30000 }, async () => {
  const d = await startDaemon();
  try {
    const own = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${d.proc.pid}/status`, 'latin1'))?.[1]) / 1024;
    const st = procStats(d.proc.pid ?? 0);
    // The watchdog (bash in read) adds at least a few hundred kB of its own.
    assert.ok(st.rssMb > own + 0.2, `daemon tree ${st.rssMb.toFixed(1)} MB, daemon alone ${own.toFixed(1)} MB`);
  } finally {
    await d.stop();
  }
});
