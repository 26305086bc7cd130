/*
 * NAME
 *   bench/cluster - `npm run bench:cluster`: requests/s with redis: against the embedded store
 * SYNOPSIS
 *   node dist/bench/cluster.js [--connections N] [--seconds S] [--rounds R] [--warmup S]
 *                              [--via tcp|unix] [--json]
 * DESCRIPTION
 *   Starts a private redis-server (no persistence, free loopback port and a UNIX socket),
 *   writes a redis: configuration file and a cluster key file, and runs the side-by-side load
 *   of bench/compare.ts (N = 32 connections, the default verified mix, S = 5 s after a 1 s
 *   warm-up, a fresh daemon each run, R = 3 rounds alternated) against:
 *     ours         the default embedded store (btree: -> SQLite)
 *     ours-redis   smtpd and smtp caches on redis: (ticket keys shared through it too),
 *                  Redis reached over --via (default tcp: 127.0.0.1, as a LAN server would be)
 *   and prints the medians (requests/s, latency per request type, daemon RSS and CPU) with
 *   ratios redis / embedded. The redis-server's own CPU is not counted in the daemon's.
 * LIMITS
 *   Needs /usr/bin/redis-server (apt-get install redis-server).
 */

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { redisAvailability, startRedis, writeClusterFiles } from '../test/helpers/redis.js';
import { formatHeader, formatSideBySide, runSideBySide, type Target } from './compare.js';
import { startDaemon } from './daemon.js';

const { values } = parseArgs({
  options: {
    connections: { type: 'string', default: '32' },
    seconds: { type: 'string', default: '5' },
    rounds: { type: 'string', default: '3' },
    warmup: { type: 'string', default: '1' },
    via: { type: 'string', default: 'tcp' },
    json: { type: 'boolean', default: false },
  },
});

const avail = redisAvailability();
if (!avail.ok) {
  console.error(`bench:cluster: ${avail.reason}`);
  process.exit(1);
}
const via = values.via === 'unix' ? 'unix' : 'tcp';
const redis = await startRedis();
const dir = mkdtempSync(join(tmpdir(), 'tlsmgr-bench-cluster-'));
try {
  const { cf } = writeClusterFiles(dir, redis, { via, timeout: '100ms' });
  const db = `redis:${cf}`;
  const targets: Target[] = [
    { name: 'ours', ours: true, start: (mainCf) => startDaemon({ mainCf }) },
    {
      name: 'ours-redis',
      ours: true,
      start: (mainCf) =>
        startDaemon({ mainCf: { smtpd_tls_session_cache_database: db, smtp_tls_session_cache_database: db, ...mainCf } }),
    },
  ];
  const log = (m: string): void => {
    if (!values.json) console.error(m);
  };
  const s = await runSideBySide({
    targets,
    connections: Number(values.connections),
    durationMs: Number(values.seconds) * 1000,
    rounds: Number(values.rounds),
    warmupMs: Number(values.warmup) * 1000,
    fresh: true,
    log,
  });
  const [emb, red] = s.targets;
  const ratio = red.median.requests_per_s / emb.median.requests_per_s;
  if (values.json) {
    console.log(JSON.stringify({ ...s, redis_via: via, redis_over_embedded: ratio }, null, 2));
  } else {
    console.log(`${formatHeader()}\n${formatSideBySide(s)}`);
    console.log(`redis over ${via}: ${(ratio * 100).toFixed(1)}% of the embedded store's requests/s`);
  }
} finally {
  await redis.destroy();
  rmSync(dir, { recursive: true, force: true });
}
