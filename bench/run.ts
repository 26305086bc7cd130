/*
 * NAME
 *   bench/run - `npm run bench`: throughput and latency of our tlsmgr under a mixed load
 * SYNOPSIS
 *   node dist/bench/run.js [--connections N] [--seconds S] [--runs R] [--json]
 * DESCRIPTION
 *   Starts the daemon on a scratch instance, runs bench/loadgen R times (default 3) and prints
 *   each run and the medians, as a table and as JSON. The machine is described in the output.
 */

import { cpus, totalmem } from 'node:os';
import { parseArgs } from 'node:util';
import { startDaemon } from './daemon.js';
import { runLoad, type LoadReport } from './loadgen.js';

const { values } = parseArgs({
  options: {
    connections: { type: 'string', default: '32' },
    seconds: { type: 'string', default: '10' },
    runs: { type: 'string', default: '3' },
    json: { type: 'boolean', default: false },
  },
});

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

const machine = `${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, ${Math.round(totalmem() / 2 ** 30)} GiB, node ${process.version}`;
const daemon = await startDaemon();
const reports: LoadReport[] = [];
try {
  for (let i = 0; i < Number(values.runs); i++) {
    reports.push(
      await runLoad({
        socket: daemon.socket,
        connections: Number(values.connections),
        durationMs: Number(values.seconds) * 1000,
        pid: daemon.proc.pid,
      }),
    );
  }
} finally {
  await daemon.stop();
}
const summary = {
  machine,
  connections: Number(values.connections),
  runs: reports.length,
  median_requests_per_s: median(reports.map((r) => r.requests_per_s)),
  median_p99_us: Object.fromEntries(Object.keys(reports[0].ops).map((o) => [o, median(reports.map((r) => r.ops[o].p99_us))])),
  errors: reports.reduce((s, r) => s + r.errors, 0),
  reports,
};
if (values.json) {
  console.log(JSON.stringify(summary, null, 2));
} else {
  console.log(`machine: ${machine}`);
  console.log(`connections: ${summary.connections}, runs: ${summary.runs}, errors: ${summary.errors}`);
  console.log('run  req/s     rss MB  cpu s   ' + Object.keys(reports[0].ops).map((o) => `${o} p50/p99 us`.padEnd(26)).join(''));
  reports.forEach((r, i) => {
    const cols = Object.values(r.ops).map((s) => `${s.p50_us.toFixed(0)}/${s.p99_us.toFixed(0)}`.padEnd(26));
    console.log(
      `${String(i + 1).padEnd(5)}${r.requests_per_s.toFixed(0).padEnd(10)}${(r.daemon_rss_mb ?? 0).toFixed(1).padEnd(8)}${(r.daemon_cpu_s ?? 0).toFixed(2).padEnd(8)}${cols.join('')}`,
    );
  });
  console.log(`median requests/s: ${summary.median_requests_per_s.toFixed(0)}`);
}
