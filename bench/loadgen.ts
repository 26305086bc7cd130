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
 *   With `pid`, the daemon's RSS and CPU seconds are read from /proc.
 * LIMITS
 *   Bounded by durationMs; stops early after 1000 errors.
 */

import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
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

/** RSS (MB) and user+system CPU seconds of a process, from /proc. */
export function procStats(pid: number): { rssMb: number; cpuS: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'latin1');
  const rss = /VmRSS:\s+(\d+) kB/.exec(status);
  const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(f[11]) + Number(f[12]); // utime, stime (fields 14, 15)
  return { rssMb: rss ? Number(rss[1]) / 1024 : 0, cpuS: ticks / 100 };
}

/** A random block the sessions are cut from: one CSPRNG call per run, not per update. */
const BLOCK = randomBytes(1 << 16);
let sessionSerial = 0;

/** A 180..220-byte session, distinct from every other (a serial number in its first 8 bytes). */
function makeSession(): Buffer {
  const len = 180 + Math.floor(Math.random() * 41);
  const at = Math.floor(Math.random() * (BLOCK.length - len));
  const s = Buffer.allocUnsafe(len);
  BLOCK.copy(s, 0, at, at + len);
  s.writeDoubleBE(++sessionSerial, 0);
  return s;
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
      const stored = new Map<string, Buffer>();
      const ids: string[] = [];
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
              const id = cacheId(ci, serial++);
              const session = makeSession();
              ok = (await c.update(type, id, session)) === 0;
              stored.set(id, session);
              ids.push(id);
              break;
            }
            case 'lookup_hit': {
              const id = ids[Math.floor(Math.random() * ids.length)];
              const r = await c.lookup(type, id);
              ok = r.status === 0 && r.session.equals(stored.get(id) as Buffer);
              break;
            }
            case 'lookup_miss': {
              const r = await c.lookup(type, cacheId(ci + 0x10000000, serial++));
              ok = r.status === -1 && r.session.length === 0;
              break;
            }
            case 'delete': {
              const k = Math.floor(Math.random() * ids.length);
              const id = ids[k];
              ids[k] = ids[ids.length - 1];
              ids.pop();
              stored.delete(id);
              ok = (await c.delete(type, id)) === 0;
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
    report.ops[o] = { count: s.length, p50_us: pct(s, 0.5), p99_us: pct(s, 0.99), p999_us: pct(s, 0.999) };
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
