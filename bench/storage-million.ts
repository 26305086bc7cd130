/*
 * NAME
 *   bench/storage-million - `npm run bench:storage`: a million sessions in the default store
 * SYNOPSIS
 *   node dist/bench/storage-million.js [--entries N] [--size BYTES] [--connections C]
 *     [--lookups L] [--live N] [--timeout SECONDS] [--runs R] [--no-expire] [--json]
 * DESCRIPTION
 *   Runs bench/storage.ts R times (default 3), each on a fresh daemon, and prints every run
 *   and the medians: load rate, daemon RSS and database file size with all entries loaded,
 *   the time the cleanup needs to expire them all, lookup p50/p99 latency while it runs,
 *   and RSS and file size afterwards. Defaults: 1,000,000 entries of 1,500 bytes, 8 loading
 *   connections, 4 lookup connections, 10,000 live entries, timeout 120 s (Postfix's
 *   minimum; the daemon has no faster clock, so a run waits for real cleanup passes: about
 *   4 minutes when the load takes under 2 minutes). --no-expire stops after the load.
 *   Targets (issue 3): RSS under 300 MB with a million entries; p99 lookup during expiry
 *   under 5 ms.
 */

import { cpus, totalmem } from 'node:os';
import { parseArgs } from 'node:util';
import { runStorageBench, type StorageReport } from './storage.js';

const { values } = parseArgs({
  options: {
    entries: { type: 'string', default: '1000000' },
    size: { type: 'string', default: '1500' },
    connections: { type: 'string', default: '8' },
    lookups: { type: 'string', default: '4' },
    live: { type: 'string', default: '10000' },
    timeout: { type: 'string', default: '120' },
    runs: { type: 'string', default: '3' },
    'no-expire': { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
  },
});

function median(xs: number[]): number | undefined {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)] : undefined;
}

const machine = `${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, ${Math.round(totalmem() / 2 ** 30)} GiB, node ${process.version}`;
const log = (m: string): void => {
  if (!values.json) console.log(m);
};
const reports: StorageReport[] = [];
for (let i = 0; i < Number(values.runs); i++) {
  log(`run ${i + 1}:`);
  reports.push(
    await runStorageBench({
      entries: Number(values.entries),
      size: Number(values.size),
      connections: Number(values.connections),
      lookups: Number(values.lookups),
      live: Number(values.live),
      timeout: Number(values.timeout),
      expire: !values['no-expire'],
      log,
    }),
  );
}

const m = (f: (r: StorageReport) => number | undefined): number | undefined => median(reports.map(f).filter((x): x is number => x !== undefined));
const summary = {
  machine,
  runs: reports.length,
  median: {
    load_per_s: m((r) => r.load_per_s),
    rss_mb_loaded: m((r) => r.rss_mb_loaded),
    file_mb_loaded: m((r) => r.file_mb_loaded),
    update_p99_ms: m((r) => r.update_latency.p99_ms),
    lookup_at_rest_p99_ms: m((r) => r.lookup_at_rest.p99_ms),
    expire_seconds: m((r) => r.expire?.expire_seconds),
    expire_wall_seconds: m((r) => r.expire?.wall_seconds),
    lookup_during_expiry_p50_ms: m((r) => r.expire?.lookup_during_expiry.p50_ms),
    lookup_during_expiry_p99_ms: m((r) => r.expire?.lookup_during_expiry.p99_ms),
    rss_mb_after: m((r) => r.expire?.rss_mb_after),
    file_mb_after: m((r) => r.expire?.file_mb_after),
  },
  errors: reports.reduce((a, r) => a + r.errors, 0),
  reports,
};

if (values.json) {
  console.log(JSON.stringify(summary, null, 2));
} else {
  const f = (x: number | undefined, d = 1): string => (x === undefined ? '-' : x.toFixed(d));
  console.log(`machine: ${machine}`);
  console.log(`entries: ${values.entries} x ${values.size} bytes, runs: ${reports.length}, errors: ${summary.errors}`);
  console.log('run  load/s   rss MB  file MB  expire s  lookup p50/p99 ms during expiry  rss after  file after');
  const row = (name: string, r: Record<string, number | undefined>): void =>
    console.log(
      `${name.padEnd(5)}${f(r.load_per_s, 0).padEnd(9)}${f(r.rss_mb_loaded).padEnd(8)}${f(r.file_mb_loaded, 0).padEnd(9)}` +
        `${f(r.expire_seconds).padEnd(10)}${`${f(r.p50, 3)}/${f(r.p99, 3)}`.padEnd(33)}${f(r.rss_mb_after).padEnd(11)}${f(r.file_mb_after, 0)}`,
    );
  reports.forEach((r, i) =>
    row(String(i + 1), {
      load_per_s: r.load_per_s, rss_mb_loaded: r.rss_mb_loaded, file_mb_loaded: r.file_mb_loaded,
      expire_seconds: r.expire?.expire_seconds, p50: r.expire?.lookup_during_expiry.p50_ms, p99: r.expire?.lookup_during_expiry.p99_ms,
      rss_mb_after: r.expire?.rss_mb_after, file_mb_after: r.expire?.file_mb_after,
    }),
  );
  const md = summary.median;
  row('med', { ...md, p50: md.lookup_during_expiry_p50_ms, p99: md.lookup_during_expiry_p99_ms });
  console.log(JSON.stringify(summary.median));
  reports.forEach((r, i) => {
    if (r.errors > 0) console.log(`run ${i + 1} errors: ${JSON.stringify(r.error_kinds)}`);
    if (r.expire) console.log(`run ${i + 1} passes: ${JSON.stringify(r.expire.passes)}, lookups during expiry: ${r.expire.lookup_during_expiry.count}`);
  });
}
