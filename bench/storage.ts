/*
 * NAME
 *   bench/storage - one run of the storage benchmark: load, measure, let expire, measure
 * SYNOPSIS
 *   runStorageBench(opts): Promise<StorageReport>
 * DESCRIPTION
 *   Starts the real daemon (bench/daemon.ts) with the default store (btree: -> SQLite), the
 *   smtpd cache timeout opts.timeout (120 s, Postfix's minimum, by default), no entry or size
 *   limit (a million 1,500-byte sessions are over the 1 GiB default), cache logging on
 *   (smtpd_tls_loglevel = 2: the cleanup passes log their start and end) and statistics
 *   every 10 s. Then:
 *   1. load: opts.connections connections store opts.entries sessions of opts.size random
 *      bytes under smtpd-like 94-character ids, one request in flight per connection, as
 *      Postfix's clients do; every reply must be OK;
 *   2. after the load: daemon RSS (/proc), database file size (+ WAL), lookup latency at rest;
 *   3. unless opts.expire is false: waits until the cleanup pass that expires the loaded
 *      entries is near (passes run every `timeout` seconds from the daemon's start; the
 *      pass at k * timeout removes what was stored before (k - 1) * timeout), storing
 *      opts.live fresh sessions a few seconds before it (they stay live through it and well
 *      after); from 3 s before the pass until it has ended, opts.lookups
 *      connections look up live ids (must hit, bytes compared) and loaded ids (must miss)
 *      back to back, and the latency of every lookup answered while a pass ran is kept;
 *      the time to expire is taken from the daemon's own pass lines (start seen by this
 *      process, and the duration the daemon measured), summed over the passes that removed
 *      loaded entries; then RSS and file size again.
 *   Every wrong reply counts as an error.
 * LIMITS
 *   The expiry phase waits for real time (about 2 * timeout after the daemon's start, plus
 *   one timeout more when the load itself takes longer than one timeout).
 */

import { randomBytes } from 'node:crypto';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { TlsmgrClient } from '../src/client/client.js';
import { startDaemon } from './daemon.js';
import { procStats } from './loadgen.js';

export interface StorageOptions {
  readonly entries: number;
  readonly size: number;
  readonly connections: number;
  readonly lookups: number;
  readonly live: number;
  readonly timeout: number;
  readonly expire: boolean;
  readonly log?: (msg: string) => void;
}

export interface Latency {
  count: number;
  p50_ms: number;
  p99_ms: number;
  max_ms: number;
}

export interface PassLine {
  /** ms since the daemon started (as seen here) */
  at_ms: number;
  removed: number;
  /** the pass's duration measured by the daemon */
  daemon_ms: number;
}

export interface StorageReport {
  entries: number;
  size: number;
  load_seconds: number;
  load_per_s: number;
  update_latency: Latency;
  rss_mb_loaded: number;
  file_mb_loaded: number;
  lookup_at_rest: Latency;
  expire?: {
    passes: PassLine[];
    /** sum of the daemon-measured durations of the passes that removed entries */
    expire_seconds: number;
    /** first pass start seen here to last pass end seen here */
    wall_seconds: number;
    lookup_during_expiry: Latency;
    lookup_hits: number;
    lookup_misses: number;
    rss_mb_after: number;
    file_mb_after: number;
  };
  errors: number;
  /** errors by phase: update, rest (lookup after load), live (live update), hit, miss */
  error_kinds: Record<string, number>;
}

function latency(samples: number[]): Latency {
  const s = Float64Array.from(samples).sort();
  const at = (p: number): number => (s.length === 0 ? 0 : s[Math.min(s.length - 1, Math.floor(s.length * p))]);
  return { count: s.length, p50_ms: at(0.5), p99_ms: at(0.99), max_ms: s.length ? s[s.length - 1] : 0 };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** smtpd-like ids: hex session id, &s=, &l=; 94 characters; distinct per (kind, n). */
const cacheId = (kind: string, n: number): string => `${kind}${n.toString(16).padStart(62, '0')}&s=smtp&l=805306608`.padEnd(94, 'X');

export async function runStorageBench(opts: StorageOptions): Promise<StorageReport> {
  const log = opts.log ?? ((): void => undefined);
  const daemon = await startDaemon({
    mainCf: {
      smtpd_tls_session_cache_timeout: `${opts.timeout}s`,
      smtpd_tls_session_cache_max_entries: '0',
      smtpd_tls_session_cache_max_size: '0',
      smtpd_tls_loglevel: '2',
      tlsmgr_stats_interval: '10s',
    },
  });
  // startDaemon() returns once the socket answers; the cleanup timers started just before.
  const t0 = performance.now();
  const pid = daemon.proc.pid as number;
  const db = join(daemon.dir, 'data', 'smtpd_scache.sqlite');
  const fileMb = (): number => {
    let n = 0;
    for (const f of [db, `${db}-wal`]) {
      try {
        n += statSync(f).size;
      } catch {
        /* no WAL right now */
      }
    }
    return n / 2 ** 20;
  };
  const passes: PassLine[] = [];
  const passStarts: number[] = [];
  let tail = '';
  daemon.proc.stderr?.on('data', (c: Buffer) => {
    const lines = (tail + c.toString('utf8')).split('\n');
    tail = lines.pop() ?? '';
    for (const l of lines) {
      const now = performance.now() - t0;
      if (/start TLS smtpd session cache cleanup/.test(l)) passStarts.push(now);
      const m = /TLS smtpd session cache cleanup: (\d+) expired entries removed in ([\d.]+) ms/.exec(l);
      if (m) passes.push({ at_ms: now, removed: Number(m[1]), daemon_ms: Number(m[2]) });
      if (/warning:|error:|fatal:|panic:/.test(l)) log(`daemon: ${l}`);
    }
  });

  let errors = 0;
  const kinds: Record<string, number> = {};
  const fail = (kind: string): void => {
    errors++;
    kinds[kind] = (kinds[kind] ?? 0) + 1;
  };
  try {
    // 1. Load.
    const clients = await Promise.all(Array.from({ length: opts.connections }, () => TlsmgrClient.connect(daemon.socket, { timeoutMs: 30000 })));
    const updLat: number[] = [];
    let next = 0;
    const loadStart = performance.now();
    let lastReport = loadStart;
    await Promise.all(
      clients.map(async (c) => {
        const session = randomBytes(opts.size);
        for (let n = next++; n < opts.entries; n = next++) {
          session.writeUInt32BE(n, 0); // a different session each time, without a CSPRNG call each
          const s = performance.now();
          if ((await c.update('smtpd', cacheId('a', n), session)) !== 0) fail('update');
          const e = performance.now();
          updLat.push(e - s);
          if (e - lastReport > 10000) {
            lastReport = e;
            log(`  loaded ${n} (${((n / (e - loadStart)) * 1000).toFixed(0)}/s), rss ${procStats(pid).rssMb.toFixed(0)} MB`);
          }
        }
      }),
    );
    const loadSeconds = (performance.now() - loadStart) / 1000;
    const loadEndMs = performance.now() - t0;
    const rssLoaded = procStats(pid).rssMb;
    const fileLoaded = fileMb();
    log(`  load done: ${opts.entries} in ${loadSeconds.toFixed(1)} s, rss ${rssLoaded.toFixed(0)} MB, file ${fileLoaded.toFixed(0)} MB`);

    // 2. Lookups at rest (no pass running): a quick sample over the loaded ids.
    const rest: number[] = [];
    await Promise.all(
      clients.slice(0, Math.max(1, opts.lookups)).map(async (c) => {
        for (let i = 0; i < 2000; i++) {
          const s = performance.now();
          const r = await c.lookup('smtpd', cacheId('a', Math.floor(Math.random() * opts.entries)));
          rest.push(performance.now() - s);
          if (r.status !== 0 || r.session.length !== opts.size) fail('rest');
        }
      }),
    );
    const report: StorageReport = {
      entries: opts.entries,
      size: opts.size,
      load_seconds: loadSeconds,
      load_per_s: opts.entries / loadSeconds,
      update_latency: latency(updLat),
      rss_mb_loaded: rssLoaded,
      file_mb_loaded: fileLoaded,
      lookup_at_rest: latency(rest),
      errors,
      error_kinds: kinds,
    };
    if (!opts.expire) {
      for (const c of clients) c.close();
      report.errors = errors;
      return report;
    }

    // 3. Expiry. Pass k runs at k * T and removes what was stored before (k - 1) * T.
    const T = opts.timeout * 1000;
    const k = Math.floor(loadEndMs / T) + 2;
    const passAt = k * T;
    // Live entries, stored just before pass k: after (k - 1) * T, so that pass k keeps them,
    // and late enough that they stay live (stamp + T) until the measurement ends.
    while (performance.now() - t0 < passAt - 8000) await sleep(200);
    const liveSession = randomBytes(opts.size);
    let ln = 0;
    await Promise.all(
      clients.map(async (c) => {
        for (let n = ln++; n < opts.live; n = ln++) {
          liveSession.writeUInt32BE(n, 0);
          if ((await c.update('smtpd', cacheId('b', n), liveSession)) !== 0) fail('live');
        }
      }),
    );
    log(`  ${opts.live} live entries stored; the expiring pass is due in ${((passAt - (performance.now() - t0)) / 1000).toFixed(0)} s`);
    while (performance.now() - t0 < passAt - 3000) await sleep(200);

    // Look up until the pass that ran at passAt has ended and its end line was read.
    const during: number[] = [];
    let hits = 0;
    let misses = 0;
    const passesBefore = passes.length;
    const running = (): boolean => passStarts.length > passes.length;
    const finished = (): boolean => passes.length > passesBefore && !running() && performance.now() - t0 > passAt;
    let stop = false;
    const deadline = performance.now() + T + 600_000;
    await Promise.all(
      clients.slice(0, opts.lookups).map(async (c, ci) => {
        for (let i = ci; !stop; i++) {
          const live = i % 2 === 0;
          const n = Math.floor(Math.random() * (live ? opts.live : opts.entries));
          const wasRunning = running();
          const s = performance.now();
          const r = await c.lookup('smtpd', cacheId(live ? 'b' : 'a', n));
          const ms = performance.now() - s;
          if (wasRunning || running()) during.push(ms);
          if (live) {
            hits++;
            if (r.status !== 0 || r.session.length < 4 || r.session.readUInt32BE(0) !== n) fail('hit');
          } else {
            misses++;
            if (r.status !== -1) fail('miss');
          }
          if (finished() || performance.now() > deadline) stop = true;
        }
      }),
    );
    for (const c of clients) c.close();
    const mine = passes.filter((p) => p.removed > 0);
    const starts = passStarts.filter((_, i) => passes[i] !== undefined && passes[i].removed > 0);
    report.expire = {
      passes: mine,
      expire_seconds: mine.reduce((a, p) => a + p.daemon_ms, 0) / 1000,
      wall_seconds: mine.length ? (mine[mine.length - 1].at_ms - starts[0]) / 1000 : 0,
      lookup_during_expiry: latency(during),
      lookup_hits: hits,
      lookup_misses: misses,
      rss_mb_after: procStats(pid).rssMb,
      file_mb_after: fileMb(),
    };
    report.errors = errors;
    return report;
  } finally {
    await daemon.stop();
  }
}
