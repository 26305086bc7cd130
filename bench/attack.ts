/*
 * NAME
 *   bench/attack - `npm run bench:attack`: one smtpd-like client's latency while hostile local clients attack
 * SYNOPSIS
 *   node dist/bench/attack.js [--runs N] [--seconds S] [--warmup S] [--settle S] [--lookups]
 *                             [--size-digits D] [--size-rate R] [--tricklers T] [--value-bytes B]
 *                             [--trickle-bytes W] [--half-open H] [--half-open-bytes B] [--stalled K]
 *                             [--hold-max S] [--bin PATH] [--set name=value]... [--json]
 * DESCRIPTION
 *   Each of N runs (default 3) has three phases, each on a fresh daemon (bench/daemon.ts: a
 *   real `bin/tlsmgr` process on a scratch instance, default limits unless --set):
 *   - baseline: the victim alone. The victim is bench/loadgen.ts with one connection of strict
 *     request/reply seed(32) requests, as smtpd asks (--lookups: about half of them lookups of
 *     a session it stored), run --warmup s (default 1) unmeasured, then --seconds s (default 5)
 *     measured: p50, p99 and max latency per request type, the daemon's CPU seconds in the
 *     window (its process tree, /proc/<pid>/stat) and its tree's peak RSS (sum of VmHWM).
 *   - attack: the same, but after the warm-up the attackers start, in separate processes
 *     (forked from this file with --attacker, so their CPU is not the victim's): (a) one
 *     connection sending seed requests whose size value has D digits (default 1,000,000),
 *     R per second (default 3), each after the previous reply; (b) T connections (default 4)
 *     each sending update requests whose session value is B bytes (default 1,400,000) of
 *     base64 text, written W bytes at a time (default 100) as fast as the socket takes them
 *     (a write that fills the socket waits for it to drain), then awaiting the reply (1,400,000
 *     characters decode to more than tlsmgr_session_limit, so a whole value gets FAIL); (c) H
 *     connections (default 3000) each holding an update request cut off inside its session
 *     value after --half-open-bytes bytes (default 100,000); (d) K connections (default 100)
 *     each holding an update request cut off after 4 bytes of its session value. A connection
 *     of (a) or (b) that the daemon closes is opened again; one of (c) or (d) is not (the
 *     count closed by the daemon is reported). The victim is measured once every connection
 *     of (c) and (d) is open and written, and --settle s (default 1) more have passed, while
 *     (a) and (b) go on. --size-rate 0, --tricklers 0, --half-open 0 or --stalled 0 turns
 *     that attack off.
 *   - hold (when H > 0): only (c), with no victim: the daemon tree's RSS idle, at its peak (VmHWM) and once
 *     the daemon has read everything (its CPU time unchanged and its main thread asleep for
 *     0.5 s, at most --hold-max s, default 10), and how many of the H connections the daemon
 *     closed (with the default tlsmgr_input_buffer_limit, 64 MB: those past the bound).
 *   Attack connections are spread over as many processes as the soft RLIMIT_NOFILE needs
 *   (Node raises it to the hard limit at start). Prints every run, then the medians with the
 *   machine and the method; --json prints one JSON document instead. --bin runs another
 *   build's bin/tlsmgr (e.g. a worktree of an older commit, built with `npm run build`).
 * LIMITS
 *   Two-core machines share their cores between the daemon, the victim and the attackers:
 *   the victim's latency then includes waiting for a core. The daemon's fd limit must admit
 *   H + K + T + 2 connections (it is started from this process, which inherits Node's raised
 *   limit). The victim client times out a request after 10 s (counted as an error).
 * DIAGNOSTICS
 *   Exits 1 when the victim sees an error in a baseline run (a wrong or missing reply from an
 *   unattacked daemon), 2 on a bad option; errors under attack are reported, not fatal.
 * SEE ALSO
 *   bench/loadgen.ts, bench/daemon.ts, server/guard.ts, test/integration/hostile-clients.test.ts
 */

import { execFileSync, fork, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createConnection, type Socket } from 'node:net';
import { cpus, loadavg, release, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Attr0Reader } from '../src/attr/reader.js';
import { REPO, startDaemon } from './daemon.js';
import { procStats, runLoad, type LoadReport, type Op } from './loadgen.js';

const SELF = fileURLToPath(import.meta.url);

/** What one attacker process does. A count of 0 turns that attack off. */
interface AttackPlan {
  socket: string;
  sizeDigits: number;
  sizeRate: number;
  sizeClients: number;
  tricklers: number;
  valueBytes: number;
  trickleBytes: number;
  halfOpen: number;
  halfOpenBytes: number;
  stalled: number;
}

interface AttackStats {
  setup_s: number;
  cpu_s: number;
  size_sent: number;
  size_replies: number;
  size_closed: number;
  trickle_bytes: number;
  trickle_values: number;
  trickle_replies: number;
  trickle_closed: number;
  half_open_opened: number;
  half_open_failed: number;
  half_open_closed: number;
  stalled_opened: number;
  stalled_failed: number;
  stalled_closed: number;
}

type ToAttacker = { type: 'start'; plan: AttackPlan } | { type: 'stop' };
type FromAttacker = { type: 'ready'; setup_s: number } | { type: 'stats'; stats: AttackStats } | { type: 'error'; message: string };

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/* ------------------------------------------------------------------ attacker process */

let stopping = false;
const live = new Set<Socket>();

/* openSocket - connect, retrying while the listen queue is full (EAGAIN on a UNIX socket) */
async function openSocket(path: string): Promise<Socket> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await new Promise<Socket>((res, rej) => {
        const s = createConnection(path);
        s.once('connect', () => {
          s.removeListener('error', rej);
          res(s);
        });
        s.once('error', rej);
      });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if ((code !== 'EAGAIN' && code !== 'ECONNREFUSED') || attempt >= 500 || stopping) throw err;
      await sleep(10);
    }
  }
}

/* A connection that reads replies (attr0 lists) and writes with backpressure. */
class Conn {
  private readonly reader = new Attr0Reader({ nameLimit: 256, valueLimit: 1 << 20, countLimit: 16 }, false);
  private lists = 0;
  private wake: (() => void) | null = null;
  closed = false;

  constructor(readonly sock: Socket) {
    live.add(sock);
    sock.on('data', (chunk: Buffer) => {
      this.reader.push(chunk);
      while (this.reader.next() !== null) this.lists++;
      this.poke();
    });
    sock.on('error', () => undefined);
    sock.on('close', () => {
      live.delete(sock);
      this.closed = true;
      this.poke();
    });
  }

  private poke(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  /** The next reply list; false when the connection closed first. */
  async nextList(): Promise<boolean> {
    while (this.lists === 0 && !this.closed) await new Promise<void>((r) => (this.wake = r));
    if (this.lists === 0) return false;
    this.lists--;
    return true;
  }

  /** Write, waiting for the socket to drain when it is full; false when it closed. */
  async write(b: Buffer): Promise<boolean> {
    if (this.closed) return false;
    if (!this.sock.write(b)) {
      await new Promise<void>((r) => {
        const done = (): void => {
          this.sock.removeListener('drain', done);
          this.sock.removeListener('close', done);
          r();
        };
        this.sock.once('drain', done);
        this.sock.once('close', done);
      });
    }
    return !this.closed;
  }
}

const HEAD = Buffer.from('request\0update\0cache_type\0smtpd\0cache_id\0', 'latin1');

function updateHead(id: string): Buffer {
  return Buffer.concat([HEAD, Buffer.from(`${id}\0session\0`, 'latin1')]);
}

/* (a): seed requests whose size has sizeDigits digits, sizeRate per second, strict request/reply */
async function sizeClient(plan: AttackPlan, st: AttackStats): Promise<void> {
  const req = Buffer.concat([Buffer.from('request\0seed\0size\0', 'latin1'), Buffer.alloc(plan.sizeDigits, 0x39), Buffer.from('\0\0', 'latin1')]);
  const gap = 1000 / plan.sizeRate;
  while (!stopping) {
    const c = new Conn(await openSocket(plan.socket));
    if (!(await c.nextList())) continue; // the greeting
    while (!stopping) {
      const t = performance.now();
      st.size_sent++;
      if (!(await c.write(req)) || !(await c.nextList())) break;
      st.size_replies++;
      const rest = t + gap - performance.now();
      if (rest > 0) await sleep(rest);
    }
    if (!stopping) st.size_closed++;
    c.sock.destroy();
  }
}

/* (b): update requests with a valueBytes session value written trickleBytes at a time */
async function trickler(plan: AttackPlan, n: number, st: AttackStats): Promise<void> {
  const value = Buffer.alloc(plan.valueBytes, 0x41);
  const end = Buffer.from('\0\0', 'latin1');
  let serial = 0;
  while (!stopping) {
    const c = new Conn(await openSocket(plan.socket));
    if (!(await c.nextList())) continue;
    let ok = true;
    while (ok && !stopping) {
      ok = await c.write(updateHead(`trickle-${process.pid}-${n}-${serial++}`));
      for (let off = 0; ok && off < value.length && !stopping; off += plan.trickleBytes) {
        const piece = value.subarray(off, Math.min(value.length, off + plan.trickleBytes));
        ok = await c.write(piece);
        if (ok) st.trickle_bytes += piece.length;
      }
      if (!ok || stopping) break;
      st.trickle_values++;
      ok = (await c.write(end)) && (await c.nextList());
      if (ok) st.trickle_replies++;
    }
    if (!stopping) st.trickle_closed++;
    c.sock.destroy();
  }
}

/* (c), (d): `count` connections, each writes `bytes` once and then holds; closes are counted */
async function holders(plan: AttackPlan, count: number, bytes: Buffer, st: AttackStats, kind: 'half_open' | 'stalled'): Promise<void> {
  const key = {
    half_open: { opened: 'half_open_opened', failed: 'half_open_failed', closed: 'half_open_closed' },
    stalled: { opened: 'stalled_opened', failed: 'stalled_failed', closed: 'stalled_closed' },
  } as const satisfies Record<string, Record<string, keyof AttackStats>>;
  const k = key[kind];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count && !stopping) {
      next++;
      let sock: Socket;
      try {
        sock = await openSocket(plan.socket);
      } catch {
        st[k.failed]++;
        continue;
      }
      live.add(sock);
      st[k.opened]++;
      sock.on('data', () => undefined); // the greeting; reading also sees the daemon's close
      sock.on('error', () => undefined);
      sock.on('close', () => {
        live.delete(sock);
        if (!stopping) st[k.closed]++;
      });
      await new Promise<void>((r) => sock.write(bytes, () => r()));
    }
  };
  await Promise.all(Array.from({ length: Math.min(64, count) }, worker));
}

function attackerMain(): void {
  const st: AttackStats = {
    setup_s: 0,
    cpu_s: 0,
    size_sent: 0,
    size_replies: 0,
    size_closed: 0,
    trickle_bytes: 0,
    trickle_values: 0,
    trickle_replies: 0,
    trickle_closed: 0,
    half_open_opened: 0,
    half_open_failed: 0,
    half_open_closed: 0,
    stalled_opened: 0,
    stalled_failed: 0,
    stalled_closed: 0,
  };
  const send = (m: FromAttacker): void => void process.send?.(m);
  const fail = (err: unknown): void => {
    if (stopping) return;
    send({ type: 'error', message: (err as Error).message });
    process.exit(1);
  };
  process.on('disconnect', () => process.exit(0));
  process.on('message', (m: ToAttacker) => {
    if (m.type === 'stop') {
      stopping = true;
      for (const s of live) s.destroy();
      const u = process.cpuUsage();
      st.cpu_s = (u.user + u.system) / 1e6;
      process.send?.({ type: 'stats', stats: st } satisfies FromAttacker, () => process.disconnect());
      return;
    }
    const plan = m.plan;
    const t0 = performance.now();
    for (let i = 0; i < plan.sizeClients; i++) sizeClient(plan, st).catch(fail);
    for (let i = 0; i < plan.tricklers; i++) trickler(plan, i, st).catch(fail);
    const halfOpen = Buffer.concat([updateHead('half-open'), Buffer.alloc(plan.halfOpenBytes, 0x41)]);
    const stalled = Buffer.concat([updateHead('stalled'), Buffer.from('QUJD', 'latin1')]);
    holders(plan, plan.halfOpen, halfOpen, st, 'half_open')
      .then(() => holders(plan, plan.stalled, stalled, st, 'stalled'))
      .then(() => {
        st.setup_s = (performance.now() - t0) / 1000;
        send({ type: 'ready', setup_s: st.setup_s });
      })
      .catch(fail);
  });
}

/* ------------------------------------------------------------------ driver */

/** The soft RLIMIT_NOFILE of this process (children inherit it), from /proc. */
function openFileLimit(): number {
  try {
    const m = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'latin1'));
    if (m) return Number(m[1]);
  } catch {
    /* not Linux */
  }
  return 1024;
}

/* sleeping - whether the main thread of pid is asleep (state S: in epoll_wait, nothing left to read) */
function sleeping(pid: number): boolean {
  const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  return stat.charAt(stat.lastIndexOf(')') + 2) === 'S';
}

interface Attackers {
  readonly setup_s: number;
  stop(): Promise<AttackStats>;
}

/*
 * startAttackers - fork as many attacker processes as the fd limit needs: the first runs
 * (a), (b), (d) and its share of (c); the others a share of (c). Resolves once all are ready.
 */
async function startAttackers(plan: AttackPlan): Promise<Attackers> {
  const perProc = Math.max(16, openFileLimit() - 64);
  const fixed = plan.sizeClients + plan.tricklers + plan.stalled;
  const procs = Math.max(1, Math.ceil((plan.halfOpen + fixed) / perProc));
  const plans: AttackPlan[] = [];
  let left = plan.halfOpen;
  for (let i = 0; i < procs; i++) {
    const room = i === 0 ? perProc - fixed : perProc;
    const share = Math.min(left, Math.max(0, room));
    left -= share;
    plans.push(i === 0 ? { ...plan, halfOpen: share } : { ...plan, halfOpen: share, sizeClients: 0, tricklers: 0, stalled: 0 });
  }
  const children: ChildProcess[] = [];
  const t0 = performance.now();
  const kill = (): void => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  };
  try {
    await Promise.all(
      plans.map(
        (p) =>
          new Promise<void>((res, rej) => {
            const c = fork(SELF, ['--attacker'], { execArgv: [], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
            children.push(c);
            c.on('message', (m: FromAttacker) => {
              if (m.type === 'ready') res();
              else if (m.type === 'error') rej(new Error(`attacker: ${m.message}`));
            });
            c.once('exit', (code) => rej(new Error(`attacker exited ${code} before it was ready`)));
            c.send({ type: 'start', plan: p } satisfies ToAttacker);
          }),
      ),
    );
  } catch (err) {
    kill();
    throw err;
  }
  const setup_s = (performance.now() - t0) / 1000;
  return {
    setup_s,
    async stop() {
      const all = await Promise.all(
        children.map(
          (c) =>
            new Promise<AttackStats>((res, rej) => {
              const t = setTimeout(() => rej(new Error('attacker did not report')), 10000);
              c.on('message', (m: FromAttacker) => {
                if (m.type === 'stats') {
                  clearTimeout(t);
                  res(m.stats);
                }
              });
              c.send({ type: 'stop' } satisfies ToAttacker);
            }),
        ),
      ).finally(kill);
      const sum = { ...all[0] };
      for (const s of all.slice(1)) for (const k of Object.keys(sum) as (keyof AttackStats)[]) sum[k] += s[k];
      sum.setup_s = setup_s;
      return sum;
    },
  };
}

interface VictimRun {
  ops: Partial<Record<Op, { p50_us: number; p99_us: number; max_us: number; count: number }>>;
  requests_per_s: number;
  errors: number;
  daemon_cpu_s: number;
  daemon_peak_rss_mb: number;
  attack?: AttackStats;
}

interface HoldRun {
  rss_idle_mb: number;
  rss_peak_mb: number;
  rss_held_mb: number;
  closed: number;
  failed: number;
  daemon_cpu_s: number;
  setup_s: number;
}

function victimRun(r: LoadReport, pid: number, attack?: AttackStats): VictimRun {
  const ops: VictimRun['ops'] = {};
  for (const [o, s] of Object.entries(r.ops)) if (s.count > 0) ops[o as Op] = { p50_us: s.p50_us, p99_us: s.p99_us, max_us: s.max_us, count: s.count };
  return { ops, requests_per_s: r.requests_per_s, errors: r.errors, daemon_cpu_s: r.daemon_cpu_s ?? 0, daemon_peak_rss_mb: procStats(pid).peakRssMb, attack };
}

function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 === 1 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/* parseOptions - the command line; exits 2 on an unknown option */
function parseOptions() {
  try {
    return parseArgs({
      options: {
        runs: { type: 'string', default: '3' },
        seconds: { type: 'string', default: '5' },
        warmup: { type: 'string', default: '1' },
        settle: { type: 'string', default: '1' },
        lookups: { type: 'boolean', default: false },
        'size-digits': { type: 'string', default: '1000000' },
        'size-rate': { type: 'string', default: '3' },
        tricklers: { type: 'string', default: '4' },
        'value-bytes': { type: 'string', default: '1400000' },
        'trickle-bytes': { type: 'string', default: '100' },
        'half-open': { type: 'string', default: '3000' },
        'half-open-bytes': { type: 'string', default: '100000' },
        stalled: { type: 'string', default: '100' },
        'hold-max': { type: 'string', default: '10' },
        bin: { type: 'string' },
        set: { type: 'string', multiple: true, default: [] as string[] },
        json: { type: 'boolean', default: false },
      },
    }).values;
  } catch (err) {
    console.error(`bench:attack: ${(err as Error).message}`);
    process.exit(2);
  }
}

async function driverMain(): Promise<void> {
  const values = parseOptions();
  const num = (name: keyof typeof values, min: number): number => {
    const v = Number(values[name]);
    if (!Number.isFinite(v) || v < min) {
      console.error(`bench:attack: bad --${name}: ${String(values[name])}`);
      process.exit(2);
    }
    return v;
  };
  const runs = num('runs', 1);
  const seconds = num('seconds', 0.1);
  const warmup = num('warmup', 0);
  const settle = num('settle', 0);
  const holdMax = num('hold-max', 1);
  const attack: Omit<AttackPlan, 'socket'> = {
    sizeDigits: num('size-digits', 1),
    sizeRate: num('size-rate', 0),
    sizeClients: num('size-rate', 0) > 0 ? 1 : 0,
    tricklers: num('tricklers', 0),
    valueBytes: num('value-bytes', 1),
    trickleBytes: num('trickle-bytes', 1),
    halfOpen: num('half-open', 0),
    halfOpenBytes: num('half-open-bytes', 1),
    stalled: num('stalled', 0),
  };
  const mainCf: Record<string, string> = {};
  for (const kv of values.set) {
    const eq = kv.indexOf('=');
    if (eq <= 0) {
      console.error(`bench:attack: --set wants name=value, not "${kv}"`);
      process.exit(2);
    }
    mainCf[kv.slice(0, eq).trim()] = kv.slice(eq + 1).trim();
  }
  const bin = values.bin === undefined ? join(REPO, 'bin/tlsmgr') : resolve(values.bin);
  let commit = 'unknown commit';
  try {
    commit = execFileSync('git', ['-C', dirname(bin), 'log', '-1', '--format=%h %s'], { encoding: 'utf8' }).trim();
  } catch {
    /* not a git checkout */
  }
  const mix: Record<Op, number> = { seed: 1, update: 0, lookup_hit: values.lookups ? 1 : 0, lookup_miss: 0, delete: 0 };
  const log = (m: string): void => {
    if (values.json) process.stderr.write(`${m}\n`);
    else console.log(m);
  };
  const machine = `${cpus()[0]?.model.trim() ?? 'cpu'}, ${cpus().length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB, Linux ${release()}, node ${process.version}`;
  const settings = Object.entries(mainCf).map(([k, v]) => `${k} = ${v}`).join(', ') || 'default limits';
  const load = (): string => loadavg().map((x) => x.toFixed(1)).join(' ');
  const loadStart = load();
  log(`machine: ${machine}, load average ${loadStart}`);
  log(`daemon: ${bin} (${commit}), ${settings}`);

  const baseline: VictimRun[] = [];
  const attacked: VictimRun[] = [];
  const holds: HoldRun[] = [];
  const fmtRun = (r: VictimRun): string =>
    Object.entries(r.ops)
      .map(([o, s]) => `${o} p50/p99/max ${s.p50_us.toFixed(0)}/${s.p99_us.toFixed(0)}/${s.max_us.toFixed(0)} us`)
      .join(', ') + `, ${r.requests_per_s.toFixed(0)} req/s, errors ${r.errors}, daemon CPU ${r.daemon_cpu_s.toFixed(2)} s, peak RSS ${r.daemon_peak_rss_mb.toFixed(0)} MB`;

  for (let i = 1; i <= runs; i++) {
    // baseline
    {
      const d = await startDaemon({ mainCf, bin });
      try {
        const pid = d.proc.pid ?? 0;
        if (warmup > 0) await runLoad({ socket: d.socket, connections: 1, durationMs: warmup * 1000, mix });
        const r = victimRun(await runLoad({ socket: d.socket, connections: 1, durationMs: seconds * 1000, mix, pid }), pid);
        baseline.push(r);
        log(`run ${i} baseline: ${fmtRun(r)}`);
      } finally {
        await d.stop();
      }
    }
    // attack
    {
      const d = await startDaemon({ mainCf, bin });
      try {
        const pid = d.proc.pid ?? 0;
        if (warmup > 0) await runLoad({ socket: d.socket, connections: 1, durationMs: warmup * 1000, mix });
        const a = await startAttackers({ socket: d.socket, ...attack });
        let r: LoadReport;
        let st: AttackStats;
        try {
          await sleep(settle * 1000);
          r = await runLoad({ socket: d.socket, connections: 1, durationMs: seconds * 1000, mix, pid });
        } finally {
          st = await a.stop();
        }
        const v = victimRun(r, pid, st);
        attacked.push(v);
        log(
          `run ${i} attack:   ${fmtRun(v)}; setup ${st.setup_s.toFixed(1)} s, (a) ${st.size_replies} replies/${st.size_sent} sent, ${st.size_closed} closed; ` +
            `(b) ${st.trickle_values} values, ${(st.trickle_bytes / 1e6).toFixed(1)} MB, ${st.trickle_closed} closed; ` +
            `(c) ${st.half_open_closed} of ${st.half_open_opened} closed (${st.half_open_failed} not opened); (d) ${st.stalled_closed} of ${st.stalled_opened} closed; attackers' CPU ${st.cpu_s.toFixed(1)} s`,
        );
      } finally {
        await d.stop();
      }
    }
    // hold: only the half-open connections, no victim
    if (attack.halfOpen > 0) {
      const d = await startDaemon({ mainCf, bin });
      try {
        const pid = d.proc.pid ?? 0;
        const idle = procStats(pid);
        const a = await startAttackers({ socket: d.socket, ...attack, sizeClients: 0, tricklers: 0, stalled: 0 });
        let st: AttackStats;
        let last = procStats(pid);
        try {
          const until = performance.now() + holdMax * 1000;
          let quietSince = performance.now();
          while (performance.now() < until && performance.now() - quietSince < 500) {
            await sleep(100);
            const now = procStats(pid);
            // A daemon starved of a core is runnable (R) with its CPU time unchanged: not quiet.
            if (now.cpuS !== last.cpuS || !sleeping(pid)) quietSince = performance.now();
            last = now;
          }
        } finally {
          st = await a.stop();
        }
        const h: HoldRun = {
          rss_idle_mb: idle.rssMb,
          rss_peak_mb: last.peakRssMb,
          rss_held_mb: last.rssMb,
          closed: st.half_open_closed,
          failed: st.half_open_failed,
          daemon_cpu_s: last.cpuS - idle.cpuS,
          setup_s: st.setup_s,
        };
        holds.push(h);
        log(
          `run ${i} hold:     RSS idle ${h.rss_idle_mb.toFixed(0)} MB, peak ${h.rss_peak_mb.toFixed(0)} MB, held ${h.rss_held_mb.toFixed(0)} MB; ` +
            `${h.closed} of ${attack.halfOpen} closed by the daemon (${h.failed} not opened); daemon CPU ${h.daemon_cpu_s.toFixed(2)} s; setup ${h.setup_s.toFixed(1)} s`,
        );
      } finally {
        await d.stop();
      }
    }
  }

  // The request types of the mix (the one update that stores the session a lookup finds is not one).
  const ops = (Object.keys(mix) as Op[]).filter((o) => mix[o] > 0);
  const med = (rs: VictimRun[], f: (r: VictimRun) => number | undefined): number => median(rs.map(f).filter((x): x is number => x !== undefined));
  const atk = (f: (s: AttackStats) => number): number => median(attacked.map((r) => (r.attack ? f(r.attack) : 0)));
  const summary = {
    machine,
    load_average: { start: loadStart, end: load() },
    daemon: { bin, commit, settings },
    parameters: { runs, seconds, warmup, settle, lookups: values.lookups, ...attack, holdMax },
    median: {
      baseline: {
        ops: Object.fromEntries(ops.map((o) => [o, { p50_us: med(baseline, (r) => r.ops[o]?.p50_us), p99_us: med(baseline, (r) => r.ops[o]?.p99_us), max_us: med(baseline, (r) => r.ops[o]?.max_us) }])),
        requests_per_s: med(baseline, (r) => r.requests_per_s),
        errors: med(baseline, (r) => r.errors),
        daemon_cpu_s: med(baseline, (r) => r.daemon_cpu_s),
        daemon_peak_rss_mb: med(baseline, (r) => r.daemon_peak_rss_mb),
      },
      attack: {
        ops: Object.fromEntries(ops.map((o) => [o, { p50_us: med(attacked, (r) => r.ops[o]?.p50_us), p99_us: med(attacked, (r) => r.ops[o]?.p99_us), max_us: med(attacked, (r) => r.ops[o]?.max_us) }])),
        requests_per_s: med(attacked, (r) => r.requests_per_s),
        errors: med(attacked, (r) => r.errors),
        daemon_cpu_s: med(attacked, (r) => r.daemon_cpu_s),
        daemon_peak_rss_mb: med(attacked, (r) => r.daemon_peak_rss_mb),
        size_replies: atk((s) => s.size_replies),
        size_closed: atk((s) => s.size_closed),
        trickle_values: atk((s) => s.trickle_values),
        trickle_mb: atk((s) => s.trickle_bytes / 1e6),
        trickle_closed: atk((s) => s.trickle_closed),
        half_open_closed: atk((s) => s.half_open_closed),
        stalled_closed: atk((s) => s.stalled_closed),
        attacker_cpu_s: atk((s) => s.cpu_s),
        setup_s: atk((s) => s.setup_s),
      },
      hold:
        holds.length === 0
          ? null
          : {
              rss_idle_mb: median(holds.map((h) => h.rss_idle_mb)),
              rss_peak_mb: median(holds.map((h) => h.rss_peak_mb)),
              rss_held_mb: median(holds.map((h) => h.rss_held_mb)),
              closed: median(holds.map((h) => h.closed)),
              daemon_cpu_s: median(holds.map((h) => h.daemon_cpu_s)),
              setup_s: median(holds.map((h) => h.setup_s)),
            },
    },
    runs: { baseline, attack: attacked, hold: holds },
  };

  if (values.json) {
    console.log(JSON.stringify(summary, null, 2));
  } else {
    const n = (x: number, digits = 0): string => (Number.isNaN(x) ? '-' : x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits }));
    const row = (label: string, b: string, a: string): string => `${label.padEnd(48)}${b.padStart(12)}${a.padStart(14)}`;
    const mb = summary.median.baseline;
    const ma = summary.median.attack;
    const out: string[] = [''];
    out.push(`machine: ${machine}; load average ${loadStart} at the start, ${load()} at the end`);
    out.push(`daemon: ${bin} (${commit}), ${settings}`);
    out.push(
      `method: victim = 1 connection of strict request/reply ${values.lookups ? 'seed(32) and lookup (half each)' : 'seed(32)'} requests (bench/loadgen.ts), ` +
        `${warmup} s warm-up then ${seconds} s measured; baseline and attack alternate, a fresh daemon each; medians of ${runs} run${runs === 1 ? '' : 's'}. ` +
        `Attackers in processes of their own, all at once: (a) ${attack.sizeClients} connection, seed with a ${n(attack.sizeDigits)}-digit size, ` +
        `${attack.sizeRate}/s; (b) ${attack.tricklers} connections trickling ${n(attack.valueBytes)}-byte session values in ${attack.trickleBytes}-byte writes; ` +
        `(c) ${n(attack.halfOpen)} connections each holding ${n(attack.halfOpenBytes)} bytes of an unfinished session value; (d) ${attack.stalled} requests stalled halfway. ` +
        `The victim is measured once (c) and (d) are in place, ${settle} s later.`,
    );
    out.push('');
    out.push(row('victim (medians)', 'baseline', 'attack'));
    for (const o of ops) {
      const label = o === 'lookup_hit' ? 'lookup' : o;
      const b = mb.ops[o];
      const a = ma.ops[o];
      out.push(row(`${label} p50 (us)`, n(b.p50_us), n(a.p50_us)));
      out.push(row(`${label} p99 (us)`, n(b.p99_us), n(a.p99_us)));
      out.push(row(`${label} max (us)`, n(b.max_us), n(a.max_us)));
    }
    out.push(row('victim requests/s', n(mb.requests_per_s), n(ma.requests_per_s)));
    out.push(row('victim errors', n(mb.errors), n(ma.errors)));
    out.push(row(`daemon CPU s in the ${seconds} s window`, n(mb.daemon_cpu_s, 2), n(ma.daemon_cpu_s, 2)));
    out.push(row('daemon tree peak RSS (MB)', n(mb.daemon_peak_rss_mb), n(ma.daemon_peak_rss_mb)));
    out.push(row('(a) big-size seeds answered', '-', n(ma.size_replies)));
    out.push(row('(a) connections closed by the daemon', '-', n(ma.size_closed)));
    out.push(row('(b) trickled values sent whole', '-', n(ma.trickle_values)));
    out.push(row('(b) MB trickled', '-', n(ma.trickle_mb, 1)));
    out.push(row('(b) connections closed by the daemon', '-', n(ma.trickle_closed)));
    out.push(row(`(c) half-open closed by the daemon (of ${n(attack.halfOpen)})`, '-', n(ma.half_open_closed)));
    out.push(row(`(d) stalled closed by the daemon (of ${attack.stalled})`, '-', n(ma.stalled_closed)));
    out.push(row('attack setup s', '-', n(ma.setup_s, 1)));
    out.push(row("attackers' CPU s (whole attack)", '-', n(ma.attacker_cpu_s, 1)));
    const h = summary.median.hold;
    if (h !== null) {
      out.push('');
      out.push(`hold (medians): ${n(attack.halfOpen)} connections each holding ${n(attack.halfOpenBytes)} bytes of an unfinished session value, no other client`);
      out.push(row('daemon tree RSS idle (MB)', '', n(h.rss_idle_mb)));
      out.push(row('daemon tree RSS peak (MB)', '', n(h.rss_peak_mb)));
      out.push(row('daemon tree RSS held (MB)', '', n(h.rss_held_mb)));
      out.push(row(`closed by the daemon (of ${n(attack.halfOpen)})`, '', n(h.closed)));
      out.push(row('daemon CPU s', '', n(h.daemon_cpu_s, 2)));
      out.push(row('setup s', '', n(h.setup_s, 1)));
    }
    console.log(out.join('\n'));
  }
  if (baseline.some((r) => r.errors > 0)) process.exitCode = 1;
}

if (process.argv.includes('--attacker')) attackerMain();
else await driverMain();
