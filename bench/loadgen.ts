/*
 * NAME
 *   bench/loadgen - tlsmgr load generator: N connections of strict request/reply, mixed load
 * SYNOPSIS
 *   runLoad({ socket, connections, durationMs, mix, pid? }): Promise<LoadReport>
 * DESCRIPTION
 *   Each connection behaves like smtpd/smtp (greeting, then one request in flight) and draws
 *   requests from the mix: seed(32), update, lookup of an id it stored (hit: the bytes must
 *   match), lookup of an id never stored (miss: must be ERR), delete of an id it stored (must
 *   be OK). cache_ids are 94 characters like smtpd's; sessions are 200 bytes +-10%, cut from one
 *   random block and made distinct by a serial number (no CSPRNG call per request). Every
 *   reply is verified; a wrong one counts as an error. Latency is measured per request.
 *   A connection keeps only serial numbers of what it stored (ids and sessions are derived
 *   from them again): a load generator holding every session would have garbage-collection
 *   pauses of a few ms that delay every request in flight and show up as daemon latency.
 *   With `pid`, the daemon's RSS and CPU seconds (its child processes included) are read from /proc;
 *   procStats() also gives the tree's peak RSS (the sum of each process's VmHWM).
 * LIMITS
 *   Bounded by durationMs; stops early after 1000 errors.
 */

import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { TlsmgrClient } from '../src/client/client.js';

export type Op = 'seed' | 'update' | 'lookup_hit' | 'lookup_miss' | 'delete';
export const DEFAULT_MIX: Readonly<Record<Op, number>> = { seed: 10, update: 30, lookup_hit: 35, lookup_miss: 15, delete: 10 };

export interface LoadOptions {
  readonly socket: string;
  readonly connections: number;
  readonly durationMs: number;
  readonly mix?: Readonly<Record<Op, number>>;
  readonly cacheType?: string;
  readonly pid?: number;
}

export interface OpStats {
  count: number;
  p50_us: number;
  p99_us: number;
  p999_us: number;
  max_us: number;
}

export interface LoadReport {
  connections: number;
  seconds: number;
  requests: number;
  requests_per_s: number;
  errors: number;
  ops: Record<string, OpStats>;
  daemon_rss_mb?: number;
  daemon_cpu_s?: number;
}

function pct(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

/*
 * procStats - RSS (MB), peak RSS (MB, the sum of each process's VmHWM: at least the tree's
 * true peak) and user+system CPU seconds of a process and its child processes, from /proc:
 * our daemon's watchdog is a child process (master/watchdog.ts), and its memory counts as
 * the daemon's.
 */
export function procStats(pid: number): { rssMb: number; peakRssMb: number; cpuS: number } {
  let rssKb = 0;
  let hwmKb = 0;
  let ticks = 0;
  for (const p of [pid, ...childrenOf(pid)]) {
    try {
      const status = readFileSync(`/proc/${p}/status`, 'latin1');
      const rss = /VmRSS:\s+(\d+) kB/.exec(status);
      const hwm = /VmHWM:\s+(\d+) kB/.exec(status);
      const stat = readFileSync(`/proc/${p}/stat`, 'latin1');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      rssKb += rss ? Number(rss[1]) : 0;
      hwmKb += hwm ? Number(hwm[1]) : 0;
      ticks += Number(f[11]) + Number(f[12]); // utime, stime (fields 14, 15)
    } catch (err) {
      if (p === pid) throw err; // a child may exit between the listing and the read
    }
  }
  return { rssMb: rssKb / 1024, peakRssMb: hwmKb / 1024, cpuS: ticks / 100 };
}

/** childrenOf - the direct children of every thread of pid (from /proc; [] once it is gone). */
export function childrenOf(pid: number): number[] {
  const out: number[] = [];
  let tasks: string[] = [];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const t of tasks) {
    try {
      for (const k of readFileSync(`/proc/${pid}/task/${t}/children`, 'latin1').split(' ')) if (k !== '') out.push(Number(k));
    } catch {
      /* the thread is gone */
    }
  }
  return out;
}

/** A random block the sessions are cut from: one CSPRNG call per run, not per update. */
const BLOCK = randomBytes(1 << 16);
let sessionSerial = 0;

/*
 * The session of serial number `serial`: 180..220 bytes cut from BLOCK at a place derived from
 * the serial, with the serial in its first 8 bytes (distinct from every other). A connection
 * remembers only the serial of what it stored and derives the expected bytes again to check
 * a lookup: the load generator keeps no buffer per stored session, so its own heap (and the
 * garbage-collection pauses that would show up as daemon latency) stays small.
 */
function sessionLength(serial: number): number {
  return 180 + (Math.imul(serial, 0x9e3779b1) >>> 27) + ((Math.imul(serial, 0x85ebca6b) >>> 28) & 9);
}

function sessionOffset(serial: number, len: number): number {
  return (Math.imul(serial ^ 0x5bd1e995, 0xc2b2ae35) >>> 0) % (BLOCK.length - len);
}

function makeSession(serial: number): Buffer {
  const len = sessionLength(serial);
  const at = sessionOffset(serial, len);
  const s = Buffer.allocUnsafe(len);
  BLOCK.copy(s, 0, at, at + len);
  s.writeDoubleBE(serial, 0);
  return s;
}

/* isSession - whether `b` is exactly makeSession(serial), without building it */
function isSession(b: Buffer, serial: number): boolean {
  const len = sessionLength(serial);
  if (b.length !== len || b.readDoubleBE(0) !== serial) return false;
  const at = sessionOffset(serial, len);
  return BLOCK.compare(b, 8, len, at + 8, at + len) === 0;
}

function cacheId(conn: number, n: number): string {
  // smtpd's form: hex session id, &s=service, &l=OpenSSL version; padded to 94 characters.
  const head = `${conn.toString(16).padStart(8, '0')}${n.toString(16).padStart(56, '0')}&s=smtp&l=805306608`;
  return head.padEnd(94, 'X');
}

export async function runLoad(opts: LoadOptions): Promise<LoadReport> {
  const mix = opts.mix ?? DEFAULT_MIX;
  const type = opts.cacheType ?? 'smtpd';
  const ops = Object.keys(mix) as Op[];
  const total = ops.reduce((s, o) => s + mix[o], 0);
  const lat: Record<Op, number[]> = { seed: [], update: [], lookup_hit: [], lookup_miss: [], delete: [] };
  let errors = 0;
  const cpu0 = opts.pid ? procStats(opts.pid).cpuS : 0;
  const clients = await Promise.all(Array.from({ length: opts.connections }, () => TlsmgrClient.connect(opts.socket)));
  const t0 = performance.now();
  const deadline = t0 + opts.durationMs;

  const pick = (): Op => {
    let r = Math.random() * total;
    for (const o of ops) {
      r -= mix[o];
      if (r < 0) return o;
    }
    return ops[ops.length - 1];
  };

  await Promise.all(
    clients.map(async (c, ci) => {
      // The cache_id serials this connection stored (and not deleted) and the session serial of each.
      const ids: number[] = [];
      const sessionOf = new Map<number, number>();
      let serial = 0;
      while (performance.now() < deadline && errors < 1000) {
        let op = pick();
        if ((op === 'lookup_hit' || op === 'delete') && ids.length === 0) op = 'update';
        const start = performance.now();
        let ok = true;
        try {
          switch (op) {
            case 'seed': {
              const r = await c.seed(32);
              ok = r.status === 0 && r.seed.length === 32;
              break;
            }
            case 'update': {
              const n = serial++;
              const ss = ++sessionSerial;
              ok = (await c.update(type, cacheId(ci, n), makeSession(ss))) === 0;
              sessionOf.set(n, ss);
              ids.push(n);
              break;
            }
            case 'lookup_hit': {
              const n = ids[Math.floor(Math.random() * ids.length)];
              const r = await c.lookup(type, cacheId(ci, n));
              ok = r.status === 0 && isSession(r.session, sessionOf.get(n) ?? -1);
              break;
            }
            case 'lookup_miss': {
              const r = await c.lookup(type, cacheId(ci + 0x10000000, serial++));
              ok = r.status === -1 && r.session.length === 0;
              break;
            }
            case 'delete': {
              const k = Math.floor(Math.random() * ids.length);
              const n = ids[k];
              ids[k] = ids[ids.length - 1];
              ids.pop();
              sessionOf.delete(n);
              ok = (await c.delete(type, cacheId(ci, n))) === 0;
              break;
            }
          }
        } catch {
          ok = false;
        }
        lat[op].push((performance.now() - start) * 1000);
        if (!ok) errors++;
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  for (const c of clients) c.close();

  const report: LoadReport = { connections: opts.connections, seconds, requests: 0, requests_per_s: 0, errors, ops: {} };
  for (const o of ops) {
    const s = Float64Array.from(lat[o]).sort();
    report.ops[o] = { count: s.length, p50_us: pct(s, 0.5), p99_us: pct(s, 0.99), p999_us: pct(s, 0.999), max_us: s.length > 0 ? s[s.length - 1] : 0 };
    report.requests += s.length;
  }
  report.requests_per_s = report.requests / seconds;
  if (opts.pid) {
    const st = procStats(opts.pid);
    report.daemon_rss_mb = st.rssMb;
    report.daemon_cpu_s = st.cpuS - cpu0;
  }
  return report;
}
