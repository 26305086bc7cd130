/*
 * NAME
 *   bench/loadgen - tlsmgr load generator: N connections of strict request/reply, mixed load
 * SYNOPSIS
 *   runLoad({ socket, connections, durationMs, mix?, pid?, preload?, warmupMs? }): Promise<LoadReport>
 *   s = await LoadSession.open({ socket, connections, mix?, pid? }); await s.preload(n);
 *   await s.run(durationMs): LoadReport; s.close()
 *   procStats(pid), childrenOf(pid)
 * DESCRIPTION
 *   Each connection behaves like smtpd/smtp (greeting, then one request in flight) and draws
 *   requests from the mix: seed(32), update, lookup of an id it stored (hit: the bytes must
 *   match), lookup of an id never stored (miss: must be ERR), delete of an id it stored (must
 *   be OK). cache_ids are 94 characters like smtpd's; sessions are 200 bytes +-10%, cut from one
 *   random block and made distinct by a serial number (no CSPRNG call per request). Every
 *   reply is verified; a wrong one counts as an error. Latency is measured per request, per
 *   request type and over all of them.
 *   A connection keeps only serial numbers of what it stored (ids and sessions are derived
 *   from them again): a load generator holding every session would have garbage-collection
 *   pauses of a few ms that delay every request in flight and show up as daemon latency.
 *   A LoadSession keeps its connections, and what each stored, between runs: preload(n) stores
 *   n sessions (updates spread over the connections) that later lookup hits find, and runs
 *   against several daemons can be interleaved in short slices. runLoad() is one session:
 *   open, preload, warm-up, one measured run, close.
 *   With `pid`, the daemon's RSS and CPU seconds (utime + stime, its child processes included)
 *   are read from /proc; the CPU time over the measured window only (after the connections
 *   are up, until the last reply), and daemon_cpu_us_per_request derived from it.
 *   procStats() also gives the tree's peak RSS (the sum of each process's VmHWM).
 * LIMITS
 *   Bounded by durationMs; a run or a preload stops early after 1000 errors. CPU time has the
 *   resolution of the kernel's clock tick (10 ms), 0.2% of a 5 s run at one busy core.
 *   Children's CPU is counted while they live (not the cutime of children already reaped).
 * DIAGNOSTICS
 *   runLoad() throws when a preload update is answered wrongly.
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
  /** Sessions stored (updates spread over the connections) before the warm-up; not reported. */
  readonly preload?: number;
  /** Milliseconds of the same load before the measured run, on the same connections; not reported. */
  readonly warmupMs?: number;
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
  /** Every request of the run, whatever its type. */
  all: OpStats;
  daemon_rss_mb?: number;
  /** utime + stime of the daemon and its child processes over the measured window. */
  daemon_cpu_s?: number;
  daemon_cpu_us_per_request?: number;
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

/** The per-connection state a session keeps between runs: what it stored, so lookups can hit it. */
interface Conn {
  readonly client: TlsmgrClient;
  readonly index: number;
  /** The cache_id serials this connection stored (and not deleted) and the session serial of each. */
  readonly ids: number[];
  readonly sessionOf: Map<number, number>;
  serial: number;
}

/**
 * LoadSession - `connections` connections to one daemon, kept open between runs. What a
 * connection stored stays known to it, so a preload (or an earlier run) is found by later
 * lookup hits; runs can be interleaved with other daemons' sessions.
 */
export class LoadSession {
  private constructor(
    private readonly opts: LoadOptions,
    private readonly conns: Conn[],
  ) {}

  static async open(opts: Omit<LoadOptions, 'durationMs'>): Promise<LoadSession> {
    const clients = await Promise.all(Array.from({ length: opts.connections }, () => TlsmgrClient.connect(opts.socket)));
    return new LoadSession({ ...opts, durationMs: 0 }, clients.map((client, index) => ({ client, index, ids: [], sessionOf: new Map(), serial: 0 })));
  }

  /**
   * preload - `n` updates spread over the connections (not timed, not in any report), each
   * remembered by its connection; returns the number of wrong replies.
   */
  async preload(n: number): Promise<number> {
    const type = this.opts.cacheType ?? 'smtpd';
    let next = 0;
    let errors = 0;
    await Promise.all(
      this.conns.map(async (c) => {
        while (next < n && errors < 1000) {
          next++;
          const id = c.serial++;
          const ss = ++sessionSerial;
          let ok = false;
          try {
            ok = (await c.client.update(type, cacheId(c.index, id), makeSession(ss))) === 0;
          } catch {
            ok = false;
          }
          if (!ok) {
            errors++;
            continue;
          }
          c.sessionOf.set(id, ss);
          c.ids.push(id);
        }
      }),
    );
    return errors;
  }

  /**
   * run - the mix for durationMs on every connection. With `pid` in the options, the daemon's
   * CPU time is read just before the first request and just after the last reply (the
   * measured window only: no connect, no close), and its RSS at the end.
   */
  async run(durationMs: number, mix: Readonly<Record<Op, number>> = this.opts.mix ?? DEFAULT_MIX): Promise<LoadReport> {
    const type = this.opts.cacheType ?? 'smtpd';
    const ops = Object.keys(mix) as Op[];
    const total = ops.reduce((s, o) => s + mix[o], 0);
    const lat: Record<Op, number[]> = { seed: [], update: [], lookup_hit: [], lookup_miss: [], delete: [] };
    let errors = 0;
    const pick = (): Op => {
      let r = Math.random() * total;
      for (const o of ops) {
        r -= mix[o];
        if (r < 0) return o;
      }
      return ops[ops.length - 1];
    };
    const pid = this.opts.pid;
    const cpu0 = pid ? procStats(pid).cpuS : 0;
    const t0 = performance.now();
    const deadline = t0 + durationMs;

    await Promise.all(
      this.conns.map(async (conn) => {
        const { client: c, ids, sessionOf } = conn;
        const ci = conn.index;
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
                const n = conn.serial++;
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
                const r = await c.lookup(type, cacheId(ci + 0x10000000, conn.serial++));
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
    const st = pid ? procStats(pid) : null;

    const report: LoadReport = { connections: this.conns.length, seconds, requests: 0, requests_per_s: 0, errors, ops: {}, all: opStats([]) };
    for (const o of ops) {
      report.ops[o] = opStats(lat[o]);
      report.requests += lat[o].length;
    }
    report.all = opStats(ops.flatMap((o) => lat[o]));
    report.requests_per_s = report.requests / seconds;
    if (st !== null) {
      report.daemon_rss_mb = st.rssMb;
      report.daemon_cpu_s = st.cpuS - cpu0;
      report.daemon_cpu_us_per_request = report.requests > 0 ? (report.daemon_cpu_s * 1e6) / report.requests : 0;
    }
    return report;
  }

  close(): void {
    for (const c of this.conns) c.client.close();
  }
}

function opStats(lat: readonly number[]): OpStats {
  const s = Float64Array.from(lat).sort();
  return { count: s.length, p50_us: pct(s, 0.5), p99_us: pct(s, 0.99), p999_us: pct(s, 0.999), max_us: s.length > 0 ? s[s.length - 1] : 0 };
}

/**
 * runLoad - one session: open, preload, warm up (not reported), run for durationMs, close.
 * Throws when the preload got a wrong reply.
 */
export async function runLoad(opts: LoadOptions): Promise<LoadReport> {
  const s = await LoadSession.open(opts);
  try {
    if ((opts.preload ?? 0) > 0) {
      const bad = await s.preload(opts.preload ?? 0);
      if (bad > 0) throw new Error(`load generator: ${bad} wrong replies to the preload updates`);
    }
    if ((opts.warmupMs ?? 0) > 0) await s.run(opts.warmupMs ?? 0);
    return await s.run(opts.durationMs);
  } finally {
    s.close();
  }
}
