/*
 * NAME
 *   bench/compare - the same load against several tlsmgr daemons and the floor, alternated, side by side
 * SYNOPSIS
 *   benchTargets({ postfix?, nodeArgs?, floor? }): { targets: Target[]; skipped: string | null }
 *   runSideBySide({ targets, connections, durationMs, rounds, warmupMs?, mix?, label?, preload?, fresh? }): Promise<SideBySide>
 *   issueTargets(sides): TargetCheck[]
 *   runScaling({ targets, connections, durationMs }), runEntries({ targets, entries, lookups?, log? })
 *   formatHeader(), formatSideBySide(s), formatTargets(checks), formatScaling(rows), formatEntries(rows), machine()
 * DESCRIPTION
 *   Targets: "ours" (bench/daemon.ts with the default store, btree: -> the embedded database),
 *   "ours-memory" (the same with memory:), "postfix" (Postfix's real tlsmgr under a fake
 *   master, bench/postfix-tlsmgr.ts) when it can run here (`skipped` says why it cannot), and
 *   "floor" (bench/floor.ts: a bare Node net server, what Node itself costs per request).
 *   runSideBySide() runs the verified load of bench/loadgen.ts for `rounds` rounds against
 *   every target. Interleaved (the default): every daemon is started at once, each gets one
 *   LoadSession (the same number of connections), is preloaded with `preload` sessions and
 *   warmed up for warmupMs (not measured: JIT, first pages), then each round runs one
 *   durationMs slice per target, in order A B C D in even rounds and D C B A in odd ones.
 *   fresh: a new daemon per run (preload, warm-up, one run, stop), A B C D A B C D ...
 *   Each figure is reported per run and as the median of the rounds: requests/s, latency
 *   percentiles (all requests, and per request type), daemon CPU microseconds per request
 *   (utime + stime of the daemon and its children over the measured slice), RSS at the end
 *   of each run and after the last one. Ratios: x / Postfix and x / floor of the medians.
 *   issueTargets() reads the targets of issue #16 for "ours" off the "default" and
 *   "lookup-heavy" runs, as PASS, MISS or n/a (a figure not measured).
 *   runEntries() fills a fresh daemon with `entries` 200-byte sessions (64 connections of
 *   updates; cache limits off for ours), then reports RSS, the size of the cache files in
 *   data_directory and the p50/p99 of `lookups` verified lookup hits over 8 connections
 *   (not for the floor: it has no cache files).
 * LIMITS
 *   Medians of an even number of runs take the upper middle value. Interleaved, a daemon's
 *   cache keeps what earlier slices stored (the default mix stores more than it deletes), as
 *   a long-running daemon's does; the floor keeps it too. The targets' PASS/MISS are one
 *   run's figures on whatever else the machine is doing, not a verdict on the code.
 */

import { randomBytes } from 'node:crypto';
import { readdirSync, statSync } from 'node:fs';
import { cpus, totalmem, release } from 'node:os';
import { join } from 'node:path';
import { TlsmgrClient } from '../src/client/client.js';
import { startDaemon, type RunningDaemon } from './daemon.js';
import { startFloor } from './floor.js';
import { DEFAULT_MIX, LoadSession, procStats, runLoad, type LoadReport, type Op } from './loadgen.js';
import { postfixTlsmgrAvailable, startPostfixTlsmgr } from './postfix-tlsmgr.js';

export interface Target {
  readonly name: string;
  readonly ours: boolean;
  /** The bare Node server of bench/floor.ts: what Node itself costs per request. */
  readonly floor?: boolean;
  start(mainCf?: Record<string, string>): Promise<RunningDaemon>;
}

export const OPS: readonly Op[] = ['seed', 'update', 'lookup_hit', 'lookup_miss', 'delete'];

/** The lookup-heavy mix of issue #16: 2% updates, 98% lookup hits (after a preload of LOOKUP_HEAVY_PRELOAD). */
export const LOOKUP_HEAVY_MIX: Readonly<Record<Op, number>> = { seed: 0, update: 2, lookup_hit: 98, lookup_miss: 0, delete: 0 };
export const LOOKUP_HEAVY_PRELOAD = 20000;

export function machine(): string {
  const c = cpus();
  return `${c.length} x ${c[0]?.model ?? 'cpu'}, ${Math.round(totalmem() / 2 ** 30)} GiB RAM, Linux ${release()}, node ${process.version}`;
}

/* describeMix - "seed=10 update=30 ..." for the output, "(default)" added for DEFAULT_MIX */
function describeMix(mix: Readonly<Record<Op, number>> | undefined): string {
  const m = mix ?? DEFAULT_MIX;
  const text = OPS.map((o) => `${o}=${m[o]}`).join(' ');
  return OPS.every((o) => m[o] === DEFAULT_MIX[o]) ? `${text} (default)` : text;
}

/**
 * parseMix - "--mix update=10,lookup_hit=90": the named request types with their weights,
 * the others 0. Throws on an unknown type, a weight that is not a non-negative number, or
 * an all-zero mix.
 */
export function parseMix(text: string): Record<Op, number> {
  const mix: Record<Op, number> = { seed: 0, update: 0, lookup_hit: 0, lookup_miss: 0, delete: 0 };
  for (const part of text.split(',')) {
    const [name, weight] = part.split('=');
    if (!(OPS as readonly string[]).includes(name)) throw new Error(`--mix: unknown request type "${name}" (${OPS.join(', ')})`);
    const w = Number(weight);
    if (weight === undefined || weight === '' || !Number.isFinite(w) || w < 0) throw new Error(`--mix: bad weight for ${name}: "${weight ?? ''}"`);
    mix[name as Op] = w;
  }
  if (OPS.every((o) => mix[o] === 0)) throw new Error('--mix: every weight is 0');
  return mix;
}

/*
 * loadgenNode - how the load generator's own node runs. Its latency figures include its own
 * garbage-collection pauses: with node's default new space, scavenges of 0.5-1.1 ms every
 * ~24 ms (measured with --trace-gc at 50k requests/s) delayed every request in flight and
 * added ~0.2-0.3 ms to every target's p99; `npm run bench` therefore runs it with
 * --max-semi-space-size=1 (scavenges of ~0.1-0.2 ms). Printed so a run can be reproduced.
 */
export function loadgenNode(): string {
  const flags = process.execArgv.filter((a) => a.startsWith('--max-semi-space-size'));
  return `load generator: node ${flags.length > 0 ? flags.join(' ') : '(default new space)'}`;
}

/**
 * benchTargets - ours (default store), ours-memory, Postfix's tlsmgr when it can run here,
 * and the floor (unless floor is false), in that order.
 */
export function benchTargets(opts: { postfix?: boolean; nodeArgs?: string[]; floor?: boolean } = {}): { targets: Target[]; skipped: string | null } {
  const nodeArgs = opts.nodeArgs;
  const targets: Target[] = [
    { name: 'ours', ours: true, start: (mainCf) => startDaemon({ mainCf, nodeArgs }) },
    {
      name: 'ours-memory',
      ours: true,
      start: (mainCf) => startDaemon({ mainCf: { smtpd_tls_session_cache_database: 'memory:smtpd_scache', ...mainCf }, nodeArgs }),
    },
  ];
  let skipped: string | null = opts.postfix === false ? 'disabled by --no-postfix' : postfixTlsmgrAvailable();
  if (skipped === null) targets.push({ name: 'postfix', ours: false, start: (mainCf) => startPostfixTlsmgr({ mainCf }) });
  if (skipped !== null) skipped = `Postfix's tlsmgr not run: ${skipped}`;
  if (opts.floor !== false) targets.push({ name: 'floor', ours: false, floor: true, start: () => startFloor() });
  return { targets, skipped };
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

export interface Figures {
  requests_per_s: number;
  errors: number;
  /** RSS (daemon and children) at the end of each run, median */
  rss_mb: number;
  /** RSS (daemon and children) after the last run: "after the bench" */
  rss_after_mb: number;
  cpu_s: number;
  /** daemon CPU (utime + stime, children included) per request over the measured window, median of the runs */
  cpu_us_per_req: number;
  /** every request of a run: [p50, p99, p99.9] in microseconds, medians of the runs */
  all_us: [number, number, number];
  /** per op: [p50, p99, p99.9] in microseconds */
  latency_us: Record<string, [number, number, number]>;
}

export interface TargetResult {
  name: string;
  floor?: boolean;
  runs: LoadReport[];
  median: Figures;
  /** this / Postfix of the medians (absent for Postfix itself, the floor, or without Postfix) */
  ratio?: Figures;
  /** this / the floor of the medians (absent for the floor itself or without it) */
  floor_ratio?: Figures;
}

export interface SideBySide {
  machine: string;
  connections: number;
  seconds: number;
  rounds: number;
  /** "default", "lookup-heavy" (the targets of issue #16 read these two) or "custom" */
  label: string;
  /** The mix as "seed=10 update=30 ...", with "(default)" when it is DEFAULT_MIX. */
  mix: string;
  /** Sessions stored by the load generator before the warm-up, not measured. */
  preload: number;
  /** "interleaved": every daemon up at once, slices alternated; "fresh": a new daemon per run */
  method: 'interleaved' | 'fresh';
  order: string[];
  skipped: string | null;
  targets: TargetResult[];
}

function medianFigures(runs: readonly LoadReport[]): Figures {
  const latency_us: Record<string, [number, number, number]> = {};
  for (const o of OPS) {
    latency_us[o] = [
      median(runs.map((r) => r.ops[o]?.p50_us ?? 0)),
      median(runs.map((r) => r.ops[o]?.p99_us ?? 0)),
      median(runs.map((r) => r.ops[o]?.p999_us ?? 0)),
    ];
  }
  return {
    requests_per_s: median(runs.map((r) => r.requests_per_s)),
    errors: runs.reduce((a, r) => a + r.errors, 0),
    rss_mb: median(runs.map((r) => r.daemon_rss_mb ?? 0)),
    rss_after_mb: runs.length > 0 ? (runs[runs.length - 1].daemon_rss_mb ?? 0) : 0,
    cpu_s: median(runs.map((r) => r.daemon_cpu_s ?? 0)),
    cpu_us_per_req: median(runs.map((r) => r.daemon_cpu_us_per_request ?? 0)),
    all_us: [median(runs.map((r) => r.all.p50_us)), median(runs.map((r) => r.all.p99_us)), median(runs.map((r) => r.all.p999_us))],
    latency_us,
  };
}

function ratioOf(a: Figures, b: Figures): Figures {
  const q = (x: number, y: number): number => (y === 0 ? 0 : x / y);
  const q3 = (x: [number, number, number], y: [number, number, number]): [number, number, number] => [q(x[0], y[0]), q(x[1], y[1]), q(x[2], y[2])];
  const latency_us: Record<string, [number, number, number]> = {};
  for (const o of OPS) latency_us[o] = q3(a.latency_us[o], b.latency_us[o]);
  return {
    requests_per_s: q(a.requests_per_s, b.requests_per_s),
    errors: q(a.errors, b.errors),
    rss_mb: q(a.rss_mb, b.rss_mb),
    rss_after_mb: q(a.rss_after_mb, b.rss_after_mb),
    cpu_s: q(a.cpu_s, b.cpu_s),
    cpu_us_per_req: q(a.cpu_us_per_req, b.cpu_us_per_req),
    all_us: q3(a.all_us, b.all_us),
    latency_us,
  };
}

/** One measured run on a fresh daemon of `t`: preload, warm-up, then the measured run. */
export async function oneRun(
  t: Target,
  connections: number,
  durationMs: number,
  warmupMs: number,
  mix?: Readonly<Record<Op, number>>,
  preload = 0,
): Promise<LoadReport> {
  const d = await t.start();
  try {
    return await runLoad({ socket: d.socket, connections, durationMs, warmupMs, preload, pid: d.proc.pid, mix });
  } finally {
    await d.stop();
  }
}

/*
 * interleavedRuns - every target's daemon up at once, one LoadSession each (preloaded all at
 * once, then warmed up one after the other), then `rounds` rounds of one durationMs slice per target, in the targets' order in even
 * rounds and the reverse in odd ones (A B C D, D C B A, ...): a slow drift of the machine's
 * other load then falls on every target alike, and no target always follows the same one.
 */
async function interleavedRuns(
  opts: { targets: readonly Target[]; connections: number; durationMs: number; rounds: number; warmupMs: number; preload: number; mix?: Readonly<Record<Op, number>>; log?: (m: string) => void },
  runs: Map<string, LoadReport[]>,
  order: string[],
): Promise<void> {
  const up: { t: Target; d: RunningDaemon; s?: LoadSession }[] = [];
  try {
    for (const t of opts.targets) up.push({ t, d: await t.start() });
    for (const u of up) u.s = await LoadSession.open({ socket: u.d.socket, connections: opts.connections, mix: opts.mix, pid: u.d.proc.pid });
    if (opts.preload > 0) {
      // All at once: Postfix's preload waits on its synchronous writes, not on the CPU.
      await Promise.all(
        up.map(async (u) => {
          const t0 = performance.now();
          const bad = await (u.s as LoadSession).preload(opts.preload);
          if (bad > 0) throw new Error(`${u.t.name}: ${bad} wrong replies to the preload updates`);
          opts.log?.(`  ${u.t.name}: ${opts.preload} sessions preloaded in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
        }),
      );
    }
    if (opts.warmupMs > 0) for (const u of up) await (u.s as LoadSession).run(opts.warmupMs);
    for (let round = 0; round < opts.rounds; round++) {
      for (const u of round % 2 === 0 ? up : [...up].reverse()) {
        const r = await (u.s as LoadSession).run(opts.durationMs);
        runs.get(u.t.name)?.push(r);
        order.push(u.t.name);
        opts.log?.(`  round ${round + 1} ${u.t.name}: ${r.requests_per_s.toFixed(0)} req/s, ${(r.daemon_cpu_us_per_request ?? 0).toFixed(1)} us CPU/request, errors ${r.errors}`);
      }
    }
  } finally {
    for (const u of up) {
      u.s?.close();
      await u.d.stop();
    }
  }
}

/**
 * runSideBySide - the same load against every target, `rounds` rounds, medians and ratios.
 * Interleaved (default): every daemon up at once, slices alternated (interleavedRuns());
 * fresh: a new daemon per run, A B C D A B C D ..., each preloaded and warmed up.
 */
export async function runSideBySide(opts: {
  targets: readonly Target[];
  skipped?: string | null;
  connections: number;
  durationMs: number;
  rounds: number;
  warmupMs?: number;
  /** The request mix (default: DEFAULT_MIX). */
  mix?: Readonly<Record<Op, number>>;
  /** "default", "lookup-heavy" or "custom" (the default: from the mix) */
  label?: string;
  /** Sessions stored before the warm-up (default 0). */
  preload?: number;
  /** A fresh daemon per run instead of interleaved slices. */
  fresh?: boolean;
  log?: (m: string) => void;
}): Promise<SideBySide> {
  const runs = new Map<string, LoadReport[]>(opts.targets.map((t) => [t.name, []]));
  const order: string[] = [];
  const warmupMs = opts.warmupMs ?? 1000;
  const preload = opts.preload ?? 0;
  if (opts.fresh) {
    for (let round = 0; round < opts.rounds; round++) {
      for (const t of opts.targets) {
        const r = await oneRun(t, opts.connections, opts.durationMs, warmupMs, opts.mix, preload);
        runs.get(t.name)?.push(r);
        order.push(t.name);
        opts.log?.(`  round ${round + 1} ${t.name}: ${r.requests_per_s.toFixed(0)} req/s, ${(r.daemon_cpu_us_per_request ?? 0).toFixed(1)} us CPU/request, errors ${r.errors}`);
      }
    }
  } else {
    await interleavedRuns({ ...opts, warmupMs, preload }, runs, order);
  }
  const results: TargetResult[] = opts.targets.map((t) => {
    const rs = runs.get(t.name) ?? [];
    return { name: t.name, ...(t.floor ? { floor: true } : {}), runs: rs, median: medianFigures(rs) };
  });
  const pf = results.find((r) => r.name === 'postfix');
  const floor = results.find((r) => r.floor === true);
  for (const r of results) {
    if (pf && r !== pf && r !== floor) r.ratio = ratioOf(r.median, pf.median);
    if (floor && r !== floor) r.floor_ratio = ratioOf(r.median, floor.median);
  }
  const mixText = describeMix(opts.mix);
  return {
    machine: machine(),
    connections: opts.connections,
    seconds: opts.durationMs / 1000,
    rounds: opts.rounds,
    label: opts.label ?? (mixText.endsWith('(default)') ? 'default' : 'custom'),
    mix: mixText,
    preload,
    method: opts.fresh ? 'fresh' : 'interleaved',
    order,
    skipped: opts.skipped ?? null,
    targets: results,
  };
}

const fmtUs = (x: number): string => (x >= 10000 ? `${(x / 1000).toFixed(1)}ms` : `${x.toFixed(0)}`);

/*
 * shortName - a target's name in a ratio column: "ours-memory/floor" would not fit
 * ("mem/floor" does); x/pf = x / Postfix.
 */
const shortName = (n: string): string => (n === 'ours-memory' ? 'mem' : n === 'postfix' ? 'pf' : n);

/**
 * formatSideBySide - one mix: a table of the key figures (one column per target, then the
 * ratio columns x/pf and x/floor), then one of the latencies per request type.
 */
export function formatSideBySide(s: SideBySide): string {
  const w0 = 20;
  const w = 12;
  const cols: { head: string; f: Figures; ratio: boolean }[] = s.targets.map((t) => ({ head: t.name, f: t.median, ratio: false }));
  for (const t of s.targets) if (t.ratio) cols.push({ head: `${shortName(t.name)}/pf`, f: t.ratio, ratio: true });
  for (const t of s.targets) if (t.floor_ratio) cols.push({ head: `${shortName(t.name)}/floor`, f: t.floor_ratio, ratio: true });
  const r2 = (x: number): string => x.toFixed(2);
  const rows: [string, (f: Figures, ratio: boolean) => string][] = [
    ['requests/s', (f, r) => (r ? r2(f.requests_per_s) : f.requests_per_s.toFixed(0))],
    ['errors', (f, r) => (r ? '' : String(f.errors))],
    ['CPU us/request', (f, r) => (r ? r2(f.cpu_us_per_req) : f.cpu_us_per_req.toFixed(1))],
    ['p50 us', (f, r) => (r ? r2(f.all_us[0]) : fmtUs(f.all_us[0]))],
    ['p99 us', (f, r) => (r ? r2(f.all_us[1]) : fmtUs(f.all_us[1]))],
    ['p99.9 us', (f, r) => (r ? r2(f.all_us[2]) : fmtUs(f.all_us[2]))],
    ['RSS MB (end of run)', (f, r) => (r ? r2(f.rss_mb) : f.rss_mb.toFixed(1))],
    ['RSS MB after bench', (f, r) => (r ? r2(f.rss_after_mb) : f.rss_after_mb.toFixed(1))],
  ];
  const method =
    s.method === 'interleaved'
      ? `every daemon up at once, ${s.seconds} s slices alternated (${s.order.join(' ')})`
      : `a fresh daemon per run, ${s.seconds} s each, alternated (${s.order.join(' ')})`;
  const lines = [
    `mix ${s.label}: ${s.mix}${s.preload > 0 ? `, ${s.preload} sessions preloaded` : ''}`,
    `  ${s.connections} connections, every reply verified; ${s.rounds} rounds, ${method}; medians of the rounds`,
  ];
  if (s.skipped) lines.push(`  NOTE: ${s.skipped}`);
  lines.push(''.padEnd(w0) + cols.map((c) => c.head.padStart(w)).join(''));
  for (const [label, f] of rows) lines.push(label.padEnd(w0) + cols.map((c) => f(c.f, c.ratio).padStart(w)).join(''));
  // How far the rounds spread: (max - min) / median of requests/s, the run's own noise.
  const spread = (t: TargetResult): string => {
    const xs = t.runs.map((r) => r.requests_per_s);
    return xs.length < 2 ? '' : `${((100 * (Math.max(...xs) - Math.min(...xs))) / median(xs)).toFixed(0)}%`;
  };
  lines.push('req/s range/median'.padEnd(w0) + s.targets.map((t) => spread(t).padStart(w)).join(''));
  const ops = OPS.filter((o) => s.targets.some((t) => t.median.latency_us[o][0] !== 0));
  if (ops.length > 1) {
    const wl = 24;
    lines.push('p50/p99/p99.9 us'.padEnd(w0) + s.targets.map((t) => t.name.padStart(wl)).join(''));
    for (const o of ops) lines.push(o.padEnd(w0) + s.targets.map((t) => t.median.latency_us[o].map(fmtUs).join('/').padStart(wl)).join(''));
  }
  return lines.join('\n');
}

/** The header of the bench's output: the machine and how the load generator runs. */
export function formatHeader(): string {
  return `machine: ${machine()}\n${loadgenNode()}; CPU = utime + stime of the daemon and its children over the measured window`;
}

export interface TargetCheck {
  mix: string;
  what: string;
  want: string;
  got: string;
  verdict: 'PASS' | 'MISS' | 'n/a';
}

/**
 * issueTargets - the targets of issue #16 read from the runs, for "ours" (the default store):
 * default mix: requests/s >= 3x Postfix's, p99 <= 1/3 of Postfix's; lookup-heavy: >= 1.5x,
 * p99 <= 1/2, CPU per request <= Postfix's; on every mix CPU per request <= 2x the floor's;
 * RSS after the default mix <= 55 MB (daemon and children). A target needing a figure that
 * was not measured (no Postfix, no floor, the mix not run) is "n/a".
 */
export function issueTargets(sides: readonly SideBySide[]): TargetCheck[] {
  const out: TargetCheck[] = [];
  const x = (v: number): string => `${v.toFixed(2)}x`;
  const check = (mix: string, what: string, want: string, got: string | null, ok: boolean): void => {
    out.push({ mix, what, want, got: got ?? 'not measured', verdict: got === null ? 'n/a' : ok ? 'PASS' : 'MISS' });
  };
  for (const s of sides) {
    const ours = s.targets.find((t) => t.name === 'ours');
    if (ours === undefined) continue;
    const pf = ours.ratio;
    const fl = ours.floor_ratio;
    const pfCpu = s.targets.find((t) => t.name === 'postfix')?.median.cpu_us_per_req;
    if (s.label === 'default') {
      check(s.label, 'requests/s vs Postfix', '>= 3x', pf ? x(pf.requests_per_s) : null, (pf?.requests_per_s ?? 0) >= 3);
      check(s.label, 'p99 vs Postfix', '<= 0.33x', pf ? x(pf.all_us[1]) : null, (pf?.all_us[1] ?? Infinity) <= 1 / 3);
    }
    if (s.label === 'lookup-heavy') {
      check(s.label, 'requests/s vs Postfix', '>= 1.5x', pf ? x(pf.requests_per_s) : null, (pf?.requests_per_s ?? 0) >= 1.5);
      check(s.label, 'p99 vs Postfix', '<= 0.5x', pf ? x(pf.all_us[1]) : null, (pf?.all_us[1] ?? Infinity) <= 0.5);
      check(
        s.label,
        'CPU/request vs Postfix',
        '<= 1x',
        pf && pfCpu !== undefined ? `${ours.median.cpu_us_per_req.toFixed(1)} vs ${pfCpu.toFixed(1)} us (${x(pf.cpu_us_per_req)})` : null,
        (pf?.cpu_us_per_req ?? Infinity) <= 1,
      );
    }
    const flCpu = s.targets.find((t) => t.floor === true)?.median.cpu_us_per_req;
    check(
      s.label,
      'CPU/request vs floor',
      '<= 2x',
      fl && flCpu !== undefined ? `${ours.median.cpu_us_per_req.toFixed(1)} vs ${flCpu.toFixed(1)} us (${x(fl.cpu_us_per_req)})` : null,
      (fl?.cpu_us_per_req ?? Infinity) <= 2,
    );
    if (s.label === 'default') check(s.label, 'RSS after the bench', '<= 55 MB', `${ours.median.rss_after_mb.toFixed(1)} MB`, ours.median.rss_after_mb <= 55);
  }
  return out;
}

export function formatTargets(checks: readonly TargetCheck[]): string {
  const lines = ['targets of issue #16 (ours = the default store):'];
  for (const c of checks) lines.push(`  ${c.mix.padEnd(14)}${c.what.padEnd(24)}${c.want.padEnd(10)}${c.got.padEnd(30)}${c.verdict}`);
  return lines.join('\n');
}

export interface ScalingRow {
  connections: number;
  target: string;
  requests_per_s: number;
  p50_us: number;
  p99_us: number;
  errors: number;
  rss_mb: number;
}

export async function runScaling(opts: {
  targets: readonly Target[];
  connections: readonly number[];
  durationMs: number;
  log?: (m: string) => void;
}): Promise<ScalingRow[]> {
  const rows: ScalingRow[] = [];
  for (const n of opts.connections) {
    for (const t of opts.targets) {
      const r = await oneRun(t, n, opts.durationMs, 500);
      const all = OPS.map((o) => r.ops[o]).filter((x) => x !== undefined);
      // Overall percentiles, approximated by the count-weighted per-op figures.
      const tot = all.reduce((a, x) => a + x.count, 0) || 1;
      rows.push({
        connections: n,
        target: t.name,
        requests_per_s: r.requests_per_s,
        p50_us: all.reduce((a, x) => a + x.p50_us * x.count, 0) / tot,
        p99_us: Math.max(...all.map((x) => x.p99_us)),
        errors: r.errors,
        rss_mb: r.daemon_rss_mb ?? 0,
      });
      opts.log?.(`  ${n} connections, ${t.name}: ${r.requests_per_s.toFixed(0)} req/s`);
    }
  }
  return rows;
}

export function formatScaling(rows: readonly ScalingRow[]): string {
  const lines = ['connections  target        req/s     p50 us (mean of ops)  p99 us (worst op)  errors  RSS MB'];
  for (const r of rows) {
    lines.push(
      `${String(r.connections).padEnd(13)}${r.target.padEnd(14)}${r.requests_per_s.toFixed(0).padEnd(10)}${r.p50_us.toFixed(0).padEnd(22)}` +
        `${r.p99_us.toFixed(0).padEnd(19)}${String(r.errors).padEnd(8)}${r.rss_mb.toFixed(1)}`,
    );
  }
  return lines.join('\n');
}

export interface EntriesRow {
  entries: number;
  target: string;
  load_seconds: number;
  rss_mb: number;
  file_mb: number;
  lookup_p50_us: number;
  lookup_p99_us: number;
  errors: number;
}

const entryId = (n: number): string => `${n.toString(16).padStart(64, '0')}&s=smtp&l=805306608`.padEnd(94, 'X');

function cacheFilesMb(dir: string): number {
  let n = 0;
  const data = join(dir, 'data');
  for (const f of readdirSync(data)) if (f.includes('scache')) n += statSync(join(data, f)).size;
  return n / 2 ** 20;
}

export async function runEntries(opts: { targets: readonly Target[]; entries: readonly number[]; lookups?: number; log?: (m: string) => void }): Promise<EntriesRow[]> {
  const rows: EntriesRow[] = [];
  const lookups = opts.lookups ?? 20000;
  for (const entries of opts.entries) {
    for (const t of opts.targets.filter((x) => x.floor !== true)) {
      const d = await t.start(t.ours ? { smtpd_tls_session_cache_max_entries: '0', smtpd_tls_session_cache_max_size: '0' } : {});
      let errors = 0;
      try {
        const clients = await Promise.all(Array.from({ length: 64 }, () => TlsmgrClient.connect(d.socket, { timeoutMs: 30000 })));
        const session = randomBytes(200);
        let next = 0;
        const t0 = performance.now();
        await Promise.all(
          clients.map(async (c) => {
            for (let n = next++; n < entries; n = next++) {
              session.writeUInt32BE(n, 0);
              if ((await c.update('smtpd', entryId(n), session)) !== 0) errors++;
            }
          }),
        );
        const loadSeconds = (performance.now() - t0) / 1000;
        const lat: number[] = [];
        let done = 0;
        await Promise.all(
          clients.slice(0, 8).map(async (c) => {
            while (done++ < lookups) {
              const n = Math.floor(Math.random() * entries);
              const s = performance.now();
              const r = await c.lookup('smtpd', entryId(n));
              lat.push((performance.now() - s) * 1000);
              if (r.status !== 0 || r.session.length !== 200 || r.session.readUInt32BE(0) !== n) errors++;
            }
          }),
        );
        for (const c of clients) c.close();
        const s = Float64Array.from(lat).sort();
        const row: EntriesRow = {
          entries,
          target: t.name,
          load_seconds: loadSeconds,
          rss_mb: procStats(d.proc.pid ?? 0).rssMb,
          file_mb: cacheFilesMb(d.dir),
          lookup_p50_us: s[Math.floor(s.length * 0.5)] ?? 0,
          lookup_p99_us: s[Math.floor(s.length * 0.99)] ?? 0,
          errors,
        };
        rows.push(row);
        opts.log?.(`  ${entries} entries, ${t.name}: loaded in ${loadSeconds.toFixed(1)} s, RSS ${row.rss_mb.toFixed(1)} MB`);
      } finally {
        await d.stop();
      }
    }
  }
  return rows;
}

export function formatEntries(rows: readonly EntriesRow[]): string {
  const lines = ['entries   target        load s  RSS MB  file MB  lookup p50 us  lookup p99 us  errors'];
  for (const r of rows) {
    lines.push(
      `${String(r.entries).padEnd(10)}${r.target.padEnd(14)}${r.load_seconds.toFixed(1).padEnd(8)}${r.rss_mb.toFixed(1).padEnd(8)}${r.file_mb.toFixed(1).padEnd(9)}` +
        `${r.lookup_p50_us.toFixed(0).padEnd(15)}${r.lookup_p99_us.toFixed(0).padEnd(15)}${r.errors}`,
    );
  }
  return lines.join('\n');
}
