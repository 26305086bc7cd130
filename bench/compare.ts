/*
 * NAME
 *   bench/compare - the same load against several tlsmgr daemons, alternated, side by side
 * SYNOPSIS
 *   benchTargets({ postfix?, nodeArgs? }): { targets: Target[]; skipped: string | null }
 *   runSideBySide({ targets, connections, durationMs, rounds, warmupMs? }): Promise<SideBySide>
 *   runEntries({ targets, entries, lookups?, log? }): Promise<EntriesRow[]>
 *   formatSideBySide(s), formatScaling(rows), formatEntries(rows), machine()
 * DESCRIPTION
 *   Targets: "ours" (bench/daemon.ts with the default store, btree: -> the embedded database),
 *   "ours-memory" (the same with memory:) and "postfix" (Postfix's real tlsmgr under a fake
 *   master, bench/postfix-tlsmgr.ts) when it can run here; `skipped` says why it cannot.
 *   runSideBySide() alternates the targets A B C A B C ... for `rounds` rounds; every run
 *   starts a fresh daemon, loads it for warmupMs (not measured: JIT, first pages), then runs
 *   bench/loadgen.ts (verified replies) for durationMs and stops it. Each figure is reported
 *   per run and as the median of the rounds; ratios are ours / Postfix of the medians.
 *   runEntries() fills a fresh daemon with `entries` 200-byte sessions (64 connections of
 *   updates; cache limits off for ours), then reports RSS, the size of the cache files in
 *   data_directory and the p50/p99 of `lookups` verified lookup hits over 8 connections.
 * LIMITS
 *   Medians of an even number of runs take the upper middle value.
 */

import { randomBytes } from 'node:crypto';
import { readdirSync, statSync } from 'node:fs';
import { cpus, totalmem, release } from 'node:os';
import { join } from 'node:path';
import { TlsmgrClient } from '../src/client/client.js';
import { startDaemon, type RunningDaemon } from './daemon.js';
import { DEFAULT_MIX, procStats, runLoad, type LoadReport, type Op } from './loadgen.js';
import { postfixTlsmgrAvailable, startPostfixTlsmgr } from './postfix-tlsmgr.js';

export interface Target {
  readonly name: string;
  readonly ours: boolean;
  start(mainCf?: Record<string, string>): Promise<RunningDaemon>;
}

export const OPS: readonly Op[] = ['seed', 'update', 'lookup_hit', 'lookup_miss', 'delete'];

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

export function benchTargets(opts: { postfix?: boolean; nodeArgs?: string[] } = {}): { targets: Target[]; skipped: string | null } {
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
  rss_mb: number;
  cpu_s: number;
  /** per op: [p50, p99, p99.9] in microseconds */
  latency_us: Record<string, [number, number, number]>;
}

export interface TargetResult {
  name: string;
  runs: LoadReport[];
  median: Figures;
  /** ours / Postfix of the medians (absent for Postfix itself or without Postfix) */
  ratio?: Figures;
}

export interface SideBySide {
  machine: string;
  connections: number;
  seconds: number;
  rounds: number;
  /** The mix as "seed=10 update=30 ...", with "(default)" when it is DEFAULT_MIX. */
  mix: string;
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
    cpu_s: median(runs.map((r) => r.daemon_cpu_s ?? 0)),
    latency_us,
  };
}

function ratioOf(a: Figures, b: Figures): Figures {
  const q = (x: number, y: number): number => (y === 0 ? 0 : x / y);
  const latency_us: Record<string, [number, number, number]> = {};
  for (const o of OPS) {
    const x = a.latency_us[o];
    const y = b.latency_us[o];
    latency_us[o] = [q(x[0], y[0]), q(x[1], y[1]), q(x[2], y[2])];
  }
  return { requests_per_s: q(a.requests_per_s, b.requests_per_s), errors: q(a.errors, b.errors), rss_mb: q(a.rss_mb, b.rss_mb), cpu_s: q(a.cpu_s, b.cpu_s), latency_us };
}

/** One measured run on a fresh daemon of `t`. */
export async function oneRun(
  t: Target,
  connections: number,
  durationMs: number,
  warmupMs: number,
  mix?: Readonly<Record<Op, number>>,
): Promise<LoadReport> {
  const d = await t.start();
  try {
    if (warmupMs > 0) await runLoad({ socket: d.socket, connections, durationMs: warmupMs, mix });
    return await runLoad({ socket: d.socket, connections, durationMs, pid: d.proc.pid, mix });
  } finally {
    await d.stop();
  }
}

export async function runSideBySide(opts: {
  targets: readonly Target[];
  skipped?: string | null;
  connections: number;
  durationMs: number;
  rounds: number;
  warmupMs?: number;
  /** The request mix (default: DEFAULT_MIX). */
  mix?: Readonly<Record<Op, number>>;
  log?: (m: string) => void;
}): Promise<SideBySide> {
  const runs = new Map<string, LoadReport[]>(opts.targets.map((t) => [t.name, []]));
  const order: string[] = [];
  for (let round = 0; round < opts.rounds; round++) {
    for (const t of opts.targets) {
      const r = await oneRun(t, opts.connections, opts.durationMs, opts.warmupMs ?? 1000, opts.mix);
      runs.get(t.name)?.push(r);
      order.push(t.name);
      opts.log?.(`  round ${round + 1} ${t.name}: ${r.requests_per_s.toFixed(0)} req/s, errors ${r.errors}`);
    }
  }
  const results: TargetResult[] = opts.targets.map((t) => {
    const rs = runs.get(t.name) ?? [];
    return { name: t.name, runs: rs, median: medianFigures(rs) };
  });
  const pf = results.find((r) => r.name === 'postfix');
  if (pf) for (const r of results) if (r !== pf) r.ratio = ratioOf(r.median, pf.median);
  return {
    machine: machine(),
    connections: opts.connections,
    seconds: opts.durationMs / 1000,
    rounds: opts.rounds,
    mix: describeMix(opts.mix),
    order,
    skipped: opts.skipped ?? null,
    targets: results,
  };
}

const fmtUs = (x: number): string => (x >= 10000 ? `${(x / 1000).toFixed(1)}ms` : `${x.toFixed(0)}`);

/** The side-by-side table: one column per target, then ours/Postfix ratio columns. */
export function formatSideBySide(s: SideBySide): string {
  const cols: { head: string; f: Figures; ratio: boolean }[] = s.targets.map((t) => ({ head: t.name, f: t.median, ratio: false }));
  for (const t of s.targets) if (t.ratio) cols.push({ head: `${t.name}/pf`, f: t.ratio, ratio: true });
  const rows: [string, (f: Figures, ratio: boolean) => string][] = [
    ['requests/s', (f, r) => (r ? f.requests_per_s.toFixed(2) : f.requests_per_s.toFixed(0))],
    ['errors', (f, r) => (r ? '' : String(f.errors))],
    ['RSS MB', (f, r) => (r ? f.rss_mb.toFixed(2) : f.rss_mb.toFixed(1))],
    ['CPU s', (f, r) => (r ? f.cpu_s.toFixed(2) : f.cpu_s.toFixed(2))],
  ];
  for (const o of OPS) {
    if (s.targets.every((t) => t.median.latency_us[o][0] === 0)) continue; // not in the mix
    const labels = ['p50', 'p99', 'p99.9'];
    labels.forEach((l, i) => rows.push([`${o} ${l} us`, (f, r) => (r ? f.latency_us[o][i].toFixed(2) : fmtUs(f.latency_us[o][i]))]));
  }
  const w0 = 22;
  const w = 16;
  const lines = [
    `machine: ${s.machine}`,
    `load: ${s.connections} connections, ${s.seconds} s per run after a warm-up, mix ${s.mix}, every reply verified; ${loadgenNode()}`,
    `runs: ${s.rounds} rounds alternated (${s.order.join(' ')}); figures are medians of the rounds; x/pf = ours / Postfix`,
  ];
  if (s.skipped) lines.push(`NOTE: ${s.skipped}; ours only`);
  lines.push(''.padEnd(w0) + cols.map((c) => c.head.padStart(w)).join(''));
  for (const [label, f] of rows) lines.push(label.padEnd(w0) + cols.map((c) => f(c.f, c.ratio).padStart(w)).join(''));
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
    for (const t of opts.targets) {
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
