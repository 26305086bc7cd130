/*
 * NAME
 *   bench/seed - `npm run bench:seed`: seed throughput of the PRNG pool, in-process and over the socket
 * SYNOPSIS
 *   node dist/bench/seed.js [--seconds S] [--runs R] [--connections N] [--size B] [--json]
 * DESCRIPTION
 *   Measures 32-byte (--size) seed generation three ways, R runs each (default 3), and prints
 *   every run and the median, in requests/s and bytes/s:
 *   - pool: in-process PrngPool, each request a stir() (time as additional input) plus
 *     generate(size): the pool's own cost in the worst case, one request per event-loop turn
 *     (the daemon stirs once per turn, prng/manager.ts);
 *   - randomBytes: node:crypto randomBytes(size) in-process, for scale (what the daemon served
 *     before the pool);
 *   - socket: the real daemon (bench/daemon.ts) loaded by bench/loadgen.ts with a seed-only
 *     mix over N connections (default 32), each a strict request/reply client like smtpd;
 *     every reply is checked (status OK, size bytes).
 *   The machine is described in the output.
 * LIMITS
 *   Each run lasts --seconds (default 5); the in-process loops check the clock every 256 requests.
 */

import { randomBytes } from 'node:crypto';
import { cpus, totalmem } from 'node:os';
import { parseArgs } from 'node:util';
import { PrngPool } from '../src/prng/pool.js';
import { startDaemon } from './daemon.js';
import { runLoad } from './loadgen.js';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '5' },
    runs: { type: 'string', default: '3' },
    connections: { type: 'string', default: '32' },
    size: { type: 'string', default: '32' },
    json: { type: 'boolean', default: false },
  },
});
const seconds = Number(values.seconds);
const runs = Number(values.runs);
const connections = Number(values.connections);
const size = Number(values.size);

interface Run {
  requests: number;
  seconds: number;
  requests_per_s: number;
  bytes_per_s: number;
  p50_us?: number;
  p99_us?: number;
  errors?: number;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function loop(fn: () => Buffer): Run {
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  let n = 0;
  let sink = 0;
  while (performance.now() < end) {
    for (let i = 0; i < 256; i++) sink ^= fn()[0];
    n += 256;
  }
  const s = (performance.now() - t0) / 1000;
  if (sink === 256) console.error(''); // keep the result alive
  return { requests: n, seconds: s, requests_per_s: n / s, bytes_per_s: (n * size) / s };
}

const machine = `${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, ${Math.round(totalmem() / 2 ** 30)} GiB, node ${process.version}`;
const results: Record<string, Run[]> = { pool: [], randomBytes: [], socket: [] };

const pool = PrngPool.create();
for (let i = 0; i < runs; i++) {
  results.pool.push(
    loop(() => {
      pool.stir();
      return pool.generate(size);
    }),
  );
  results.randomBytes.push(loop(() => randomBytes(size)));
}

const daemon = await startDaemon();
try {
  const mix = { seed: 1, update: 0, lookup_hit: 0, lookup_miss: 0, delete: 0 };
  for (let i = 0; i < runs; i++) {
    const r = await runLoad({ socket: daemon.socket, connections, durationMs: seconds * 1000, mix, pid: daemon.proc.pid });
    const seed = r.ops.seed;
    results.socket.push({
      requests: r.requests,
      seconds: r.seconds,
      requests_per_s: r.requests_per_s,
      bytes_per_s: r.requests_per_s * size,
      p50_us: seed.p50_us,
      p99_us: seed.p99_us,
      errors: r.errors,
    });
  }
} finally {
  await daemon.stop();
}
if (size !== 32) console.error(`note: the socket load generator always asks for 32-byte seeds; --size ${size} applies in-process only`);

const summary = {
  machine,
  seed_bytes: size,
  seconds_per_run: seconds,
  runs,
  connections,
  median: Object.fromEntries(
    Object.entries(results).map(([k, rs]) => [k, { requests_per_s: median(rs.map((r) => r.requests_per_s)), bytes_per_s: median(rs.map((r) => r.bytes_per_s)) }]),
  ),
  results,
};

if (values.json) {
  console.log(JSON.stringify(summary, null, 2));
} else {
  const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');
  console.log(`machine: ${machine}`);
  console.log(`${size}-byte seeds, ${runs} runs of ${seconds} s; socket: ${connections} connections, seed-only mix`);
  for (const [k, rs] of Object.entries(results)) {
    rs.forEach((r, i) => {
      const lat = r.p50_us !== undefined ? `  p50/p99 ${r.p50_us.toFixed(0)}/${(r.p99_us ?? 0).toFixed(0)} us, errors ${r.errors ?? 0}` : '';
      console.log(`${k.padEnd(12)} run ${i + 1}: ${fmt(r.requests_per_s).padStart(12)} req/s ${fmt(r.bytes_per_s).padStart(14)} B/s${lat}`);
    });
    const m = summary.median[k];
    console.log(`${k.padEnd(12)} median: ${fmt(m.requests_per_s).padStart(12)} req/s ${fmt(m.bytes_per_s).padStart(14)} B/s`);
  }
}
