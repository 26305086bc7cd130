/*
 * NAME
 *   bench/seal - CPU cost of sealing and opening one session-cache record (util/seal.ts)
 * SYNOPSIS
 *   npm run build && node dist/bench/seal.js [--records N] [--runs R] [--sizes 250,1500] [--wall] [--json]
 * DESCRIPTION
 *   In process, one Sealer (Sealer.fresh() with the daemon's pooled nonce source), for each
 *   session size: R runs (default 7) of N records (default 20000) each, timing seal() alone,
 *   open() alone (of records sealed beforehand) and seal() followed by open(); prints every
 *   run's microseconds per record (CPU time of the process, user + system; wall-clock time
 *   with --wall) and the median, so two builds (before and after a change to the record
 *   format) compare on the same machine. One untimed warm-up run per size comes first. Every
 *   open() is checked (ok and the right length), so a broken build cannot look fast.
 * LIMITS
 *   Process CPU time includes the GC's helper threads; a loaded machine still slows every
 *   run (shared caches, frequency): compare medians of one machine at one time, ideally run
 *   alternately, not absolute figures across machines.
 * DIAGNOSTICS
 *   Throws if a record does not open.
 */

import { randomBytes } from 'node:crypto';
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { Sealer } from '../src/util/seal.js';
import { pooledRandom } from '../src/daemon/random-pool.js';

const { values } = parseArgs({
  options: {
    records: { type: 'string', default: '20000' },
    runs: { type: 'string', default: '7' },
    sizes: { type: 'string', default: '250,1500' },
    json: { type: 'boolean', default: false },
    wall: { type: 'boolean', default: false },
  },
});
const records = Number(values.records);
const runs = Number(values.runs);
const sizes = values.sizes.split(',').map(Number);

// The nonce source of the daemon (daemon/service.ts): pooled CSPRNG output.
const sealer = Sealer.fresh(pooledRandom());
const id = Buffer.from('[192.0.2.1]:25&smtp&0123456789abcdef0123456789abcdef', 'latin1');

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 === 1 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/*
 * perRecord - microseconds per record of fn over n records: CPU time of the process (user +
 * system) by default, which other load on the machine disturbs far less than wall-clock time
 * (--wall for that instead)
 */
function perRecord(n: number, fn: (i: number) => void): number {
  if (values.wall) {
    const t = process.hrtime.bigint();
    for (let i = 0; i < n; i++) fn(i);
    return Number(process.hrtime.bigint() - t) / 1000 / n;
  }
  const c = process.cpuUsage();
  for (let i = 0; i < n; i++) fn(i);
  const d = process.cpuUsage(c);
  return (d.user + d.system) / n;
}

function check(r: ReturnType<Sealer['open']>, size: number): void {
  if (!r.ok || r.session.length !== size) throw new Error(`a record did not open: ${r.ok ? 'length' : r.reason}`);
}

const out: Record<string, { seal: number[]; open: number[]; both: number[] }> = {};
for (const size of sizes) {
  const session = randomBytes(size);
  const sealed = Array.from({ length: Math.min(records, 1024) }, (_, i) => sealer.seal('smtp', id, 1_700_000_000 + i, session));
  const runOnce = (): { seal: number; open: number; both: number } => ({
    seal: perRecord(records, (i) => void sealer.seal('smtp', id, 1_700_000_000 + i, session)),
    open: perRecord(records, (i) => check(sealer.open('smtp', id, sealed[i % sealed.length]), size)),
    both: perRecord(records, (i) => check(sealer.open('smtp', id, sealer.seal('smtp', id, 1_700_000_000 + i, session)), size)),
  });
  runOnce();
  const r = { seal: [] as number[], open: [] as number[], both: [] as number[] };
  for (let k = 0; k < runs; k++) {
    const one = runOnce();
    r.seal.push(one.seal);
    r.open.push(one.open);
    r.both.push(one.both);
  }
  out[size] = r;
}

if (values.json) {
  console.log(JSON.stringify({ records, runs, time: values.wall ? 'wall' : 'cpu', cpu: cpus()[0]?.model, node: process.version, results: out }));
} else {
  console.log(`seal bench: ${records} records x ${runs} runs, ${values.wall ? 'wall-clock' : 'CPU'} time, ${cpus()[0]?.model ?? 'cpu?'}, node ${process.version}`);
  for (const [size, r] of Object.entries(out)) {
    for (const k of ['seal', 'open', 'both'] as const) {
      const runsText = r[k].map((x) => x.toFixed(2)).join(' ');
      console.log(`  ${size.padStart(5)} B  ${k === 'both' ? 'seal+open' : k.padEnd(9)}  median ${median(r[k]).toFixed(2)} us/record  (runs: ${runsText})`);
    }
  }
}
