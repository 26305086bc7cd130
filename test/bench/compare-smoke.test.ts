/*
 * bench smoke: the side-by-side benchmark (bench/compare.ts) for one short round: ours with the
 * default store, ours with memory:, Postfix's real tlsmgr when it is installed and the suite
 * runs as root, and the floor (bench/floor.ts). Every reply is verified by the load generator,
 * so a wrong reply from any daemon, or from the floor, fails this test. Checks that every
 * present target ran, with zero errors, that CPU per request and the ratios are computed and
 * that the tables print; not a timed test (no speed is asserted). Also: --mix parsing, the
 * lookup-heavy preload (lookup hits find the preloaded sessions, in ours and in the floor),
 * the order of interleaved and fresh rounds, the PASS/MISS reading of the targets of issue
 * #16 on made-up figures, and RSS counting the daemon's watchdog process.
 */

import assert from 'node:assert/strict';
import test from 'node:test';
import { readFileSync } from 'node:fs';
import {
  LOOKUP_HEAVY_MIX,
  benchTargets,
  formatSideBySide,
  formatTargets,
  issueTargets,
  parseMix,
  runSideBySide,
  type Figures,
  type SideBySide,
  type Target,
} from '../../bench/compare.js';
import { startDaemon } from '../../bench/daemon.js';
import { startFloor } from '../../bench/floor.js';
import { LoadSession, procStats } from '../../bench/loadgen.js';
import { postfixTlsmgrAvailable } from '../../bench/postfix-tlsmgr.js';

test('side-by-side bench: one short verified round against every present target and the floor', { timeout: 90000 }, async () => {
  const { targets, skipped } = benchTargets();
  const names = targets.map((t) => t.name);
  assert.deepEqual(names.slice(0, 2), ['ours', 'ours-memory']);
  assert.equal(names[names.length - 1], 'floor', 'the floor runs last in each round');
  if (postfixTlsmgrAvailable() === null) assert.ok(names.includes('postfix'), 'Postfix present but not run');
  else assert.ok(skipped !== null, 'a missing Postfix is reported');
  const s = await runSideBySide({ targets, skipped, connections: 4, durationMs: 600, warmupMs: 100, rounds: 1 });
  assert.deepEqual(s.order, names, 'each target ran once, in order');
  assert.equal(s.method, 'interleaved');
  assert.equal(s.label, 'default');
  for (const t of s.targets) {
    assert.equal(t.median.errors, 0, `${t.name}: every reply verified`);
    assert.ok(t.runs[0].requests > 50, `${t.name}: requests done: ${t.runs[0].requests}`);
    for (const op of ['seed', 'update', 'lookup_hit', 'lookup_miss', 'delete']) assert.ok(t.runs[0].ops[op].count > 0, `${t.name}: ${op} exercised`);
    assert.equal(t.runs[0].all.count, t.runs[0].requests, `${t.name}: overall latency over every request`);
    assert.ok(t.median.rss_mb > 0, `${t.name}: RSS read`);
    const cpu = t.runs[0].daemon_cpu_us_per_request;
    assert.ok(cpu !== undefined && Number.isFinite(cpu) && cpu >= 0, `${t.name}: CPU per request read: ${cpu}`);
  }
  const ours = s.targets[0];
  assert.ok(ours.floor_ratio !== undefined && ours.floor_ratio.requests_per_s > 0, 'ratios ours/floor computed');
  assert.equal(s.targets[s.targets.length - 1].floor_ratio, undefined, 'no floor/floor');
  const pf = s.targets.find((t) => t.name === 'postfix');
  if (pf) assert.ok(ours.ratio !== undefined && ours.ratio.requests_per_s > 0, 'ratios ours/Postfix computed');
  const table = formatSideBySide(s);
  for (const n of names) assert.match(table, new RegExp(n));
  assert.match(table, /^CPU us\/request /m);
  assert.match(table, /ours\/floor/);
  const checks = issueTargets([s]);
  const vsFloor = checks.find((c) => c.what === 'CPU/request vs floor');
  assert.ok(vsFloor !== undefined && vsFloor.verdict !== 'n/a', 'the floor target is read');
  assert.equal(checks.find((c) => c.what === 'requests/s vs Postfix')?.verdict === 'n/a', pf === undefined);
  assert.match(formatTargets(checks), /RSS after the bench/);
});

test('lookup-heavy preload: the lookups of the measured run hit the preloaded sessions, in ours and in the floor', { timeout: 60000 }, async () => {
  for (const start of [() => startDaemon(), () => startFloor()]) {
    const d = await start();
    const s = await LoadSession.open({ socket: d.socket, connections: 4, pid: d.proc.pid });
    try {
      assert.equal(await s.preload(400), 0, 'every preload update answered OK');
      // Lookups only: with nothing stored a connection would fall back to updates.
      const r = await s.run(300, { seed: 0, update: 0, lookup_hit: 1, lookup_miss: 0, delete: 0 });
      assert.equal(r.errors, 0, 'every lookup returned the preloaded bytes');
      assert.ok(r.ops.lookup_hit.count > 0);
      assert.equal(r.ops.update.count, 0, 'no connection was left without preloaded sessions');
      assert.ok(r.daemon_cpu_us_per_request !== undefined);
    } finally {
      s.close();
      await d.stop();
    }
  }
});

test('rounds: interleaved slices alternate A B, B A; fresh daemons run A B, A B; the preload is reported', { timeout: 90000 }, async () => {
  const { targets } = benchTargets({ postfix: false });
  const two: Target[] = targets.filter((t) => t.name === 'ours' || t.name === 'floor');
  const i = await runSideBySide({ targets: two, connections: 2, durationMs: 200, warmupMs: 0, rounds: 2, mix: LOOKUP_HEAVY_MIX, preload: 100, label: 'lookup-heavy' });
  assert.deepEqual(i.order, ['ours', 'floor', 'floor', 'ours']);
  assert.equal(i.preload, 100);
  assert.match(formatSideBySide(i), /mix lookup-heavy: .*100 sessions preloaded/);
  for (const t of i.targets) {
    assert.equal(t.median.errors, 0, t.name);
    assert.equal(t.runs.reduce((a, r) => a + r.ops.update.count + r.ops.lookup_hit.count, 0) > 0, true);
  }
  const f = await runSideBySide({ targets: two, connections: 2, durationMs: 200, warmupMs: 0, rounds: 2, fresh: true, preload: 100 });
  assert.deepEqual(f.order, ['ours', 'floor', 'ours', 'floor']);
  assert.equal(f.method, 'fresh');
  for (const t of f.targets) assert.equal(t.median.errors, 0, t.name);
});

/* A made-up run: ours and Postfix (and the floor) with the figures given, for issueTargets(). */
function madeUp(label: string, ours: Partial<Figures>, pf: Partial<Figures>, floorCpu: number): SideBySide {
  const fig = (f: Partial<Figures>): Figures => ({
    requests_per_s: 1,
    errors: 0,
    rss_mb: 1,
    rss_after_mb: 1,
    cpu_s: 1,
    cpu_us_per_req: 1,
    all_us: [1, 1, 1],
    latency_us: {},
    ...f,
  });
  const o = fig(ours);
  const p = fig(pf);
  const fl = fig({ cpu_us_per_req: floorCpu });
  const q = (a: Figures, b: Figures): Figures =>
    fig({
      requests_per_s: a.requests_per_s / b.requests_per_s,
      cpu_us_per_req: a.cpu_us_per_req / b.cpu_us_per_req,
      all_us: [a.all_us[0] / b.all_us[0], a.all_us[1] / b.all_us[1], a.all_us[2] / b.all_us[2]],
    });
  return {
    machine: 'm',
    connections: 32,
    seconds: 5,
    rounds: 3,
    label,
    mix: '',
    preload: 0,
    method: 'interleaved',
    order: [],
    skipped: null,
    targets: [
      { name: 'ours', runs: [], median: o, ratio: q(o, p), floor_ratio: q(o, fl) },
      { name: 'postfix', runs: [], median: p, floor_ratio: q(p, fl) },
      { name: 'floor', floor: true, runs: [], median: fl },
    ],
  };
}

test('issueTargets: PASS and MISS on either side of each target of issue #16', () => {
  const verdicts = (sides: SideBySide[]): string[] => issueTargets(sides).map((c) => `${c.mix} ${c.what} ${c.verdict}`);
  const pass = verdicts([
    madeUp('default', { requests_per_s: 31, all_us: [1, 3, 3], cpu_us_per_req: 20, rss_after_mb: 55 }, { requests_per_s: 10, all_us: [1, 9.1, 9] }, 10),
    madeUp('lookup-heavy', { requests_per_s: 15, all_us: [1, 4.5, 5], cpu_us_per_req: 20 }, { requests_per_s: 10, all_us: [1, 9, 9], cpu_us_per_req: 20 }, 10),
  ]);
  assert.deepEqual(pass, [
    'default requests/s vs Postfix PASS',
    'default p99 vs Postfix PASS',
    'default CPU/request vs floor PASS',
    'default RSS after the bench PASS',
    'lookup-heavy requests/s vs Postfix PASS',
    'lookup-heavy p99 vs Postfix PASS',
    'lookup-heavy CPU/request vs Postfix PASS',
    'lookup-heavy CPU/request vs floor PASS',
  ]);
  const miss = verdicts([
    madeUp('default', { requests_per_s: 29, all_us: [1, 3.1, 3], cpu_us_per_req: 20.1, rss_after_mb: 55.1 }, { requests_per_s: 10, all_us: [1, 9, 9] }, 10),
    madeUp('lookup-heavy', { requests_per_s: 14.9, all_us: [1, 4.6, 5], cpu_us_per_req: 20.1 }, { requests_per_s: 10, all_us: [1, 9, 9], cpu_us_per_req: 20 }, 10),
  ]);
  assert.ok(miss.every((v) => v.endsWith(' MISS')), miss.join('\n'));
  assert.equal(miss.length, 8);
  // A custom mix is held to the floor target only.
  assert.deepEqual(verdicts([madeUp('custom', { cpu_us_per_req: 19 }, {}, 10)]), ['custom CPU/request vs floor PASS']);
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
  assert.match(table, /^mix custom: seed=0 update=10 lookup_hit=90 lookup_miss=0 delete=0$/m);
  assert.match(table, /^lookup_hit /m);
  assert.doesNotMatch(table, /^seed /m, 'a request type outside the mix gets no rows');
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
