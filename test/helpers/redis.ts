/*
 * NAME
 *   redis - throw-away real redis-server processes for the cluster tests (single, TLS,
 *   Sentinel, Redis Cluster), test certificates, and cluster files
 * SYNOPSIS
 *   redisAvailability(): { ok, reason }      skipWithoutRedis(): skip option for node:test
 *   startRedis(opts?): Promise<RedisServer>  on 127.0.0.1:<free port> and a UNIX socket;
 *                                            opts.tls: TLS only on that port; opts.args
 *   server.stop() / server.start() (same port again) / server.pause() / server.resume()
 *   server.command(...args): Promise<RespValue>      a raw RESP client, for inspection
 *   startSentinel(master, name, opts?): Promise<SentinelServer>
 *   startRedisCluster(n): Promise<RedisServer[]>     n masters, slots split, no replicas
 *   makeTestPki(dir): Promise<TestPki>       a CA, server and client certificates, another CA
 *   redisCli(server, tls, ...args)           redis-cli over TCP (--tls with the test CA)
 *   writeClusterFiles(dir, server, opts): { cf, keyFile }
 *   clusterKeyLine(id, keyHex?)   freePorts(n)   waitFor(check, tries, ms)   linkReady(link)
 * DESCRIPTION
 *   Servers run with no persistence (--save '' --appendonly no) in a mkdtemp() directory,
 *   on free ports found by the tests; start() waits (bounded) for PING on the UNIX socket,
 *   which never has TLS, so command() inspects a TLS server too. stop() is SIGTERM then
 *   SIGKILL after 3 s, bounded; pause()/resume() are SIGSTOP/SIGCONT (a hung server). The
 *   raw client speaks enough RESP2 to read replies as Buffers, so tests look at what is
 *   stored without going through the code under test.
 *   A Sentinel gets its own writable configuration file (it rewrites it) and a quorum of 1.
 *   Cluster nodes get their own bus port (--cluster-port), so no port + 10000 guess.
 *   Every instance is killed at process exit if a test forgot to stop it.
 * LIMITS
 *   Needs Debian's redis-server at /usr/bin/redis-server; CI=true makes its absence a failure.
 *   makeTestPki and redisCli need the openssl and redis-cli programs (Debian's openssl and
 *   redis-tools, which redis-server pulls in). Every wait is bounded; free ports are probed,
 *   so another process could take one between the probe and the server's bind (rare).
 * DIAGNOSTICS
 *   Errors thrown: a server that exits or does not answer PING within 5 s (with its stderr),
 *   a Sentinel that does not name its master, a cluster whose nodes do not agree within 10 s,
 *   an openssl command that fails (with its stderr).
 */

import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants as fsConstants, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { RedisLink } from '../../src/cluster/link.js';
import { freePort, runCommand, sleep } from './postfix.js';

export const REDIS_BIN = '/usr/bin/redis-server';

export function redisAvailability(): { ok: boolean; reason: string } {
  try {
    accessSync(REDIS_BIN, fsConstants.X_OK);
    return { ok: true, reason: '' };
  } catch {
    return { ok: false, reason: `${REDIS_BIN} is missing (apt-get install -y redis-server)` };
  }
}

/** Skip option for node:test: skip outside CI when redis-server is missing; in CI, run (and fail). */
export function skipWithoutRedis(): string | false {
  const a = redisAvailability();
  return a.ok || process.env.CI === 'true' ? false : a.reason;
}

export type RespValue = Buffer | number | null | RespValue[] | Error;

export interface RedisServer {
  readonly port: number;
  readonly socket: string;
  readonly dir: string;
  start(): Promise<void>;
  stop(): Promise<void>;
  pause(): void;
  resume(): void;
  command(...args: Array<string | Buffer>): Promise<RespValue>;
  /** Every key and its value (SCAN + GET), for inspection. */
  dump(): Promise<Map<string, Buffer>>;
  destroy(): Promise<void>;
}

const live = new Set<ChildProcess>();
let hooked = false;

/* encode - a RESP2 array of bulk strings */
function encode(args: ReadonlyArray<string | Buffer>): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)];
  for (const a of args) {
    const b = typeof a === 'string' ? Buffer.from(a) : a;
    parts.push(Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n'));
  }
  return Buffer.concat(parts);
}

/* parse - one RESP2 value at buf[at..]; null when incomplete */
function parse(buf: Buffer, at: number): { v: RespValue; end: number } | null {
  const nl = buf.indexOf('\r\n', at);
  if (nl < 0) return null;
  const line = buf.toString('latin1', at + 1, nl);
  switch (String.fromCharCode(buf[at])) {
    case '+':
      return { v: Buffer.from(line), end: nl + 2 };
    case '-':
      return { v: new Error(line), end: nl + 2 };
    case ':':
      return { v: Number(line), end: nl + 2 };
    case '$': {
      const n = Number(line);
      if (n < 0) return { v: null, end: nl + 2 };
      if (buf.length < nl + 2 + n + 2) return null;
      return { v: buf.subarray(nl + 2, nl + 2 + n), end: nl + 2 + n + 2 };
    }
    case '*': {
      const n = Number(line);
      if (n < 0) return { v: null, end: nl + 2 };
      const out: RespValue[] = [];
      let end = nl + 2;
      for (let i = 0; i < n; i++) {
        const r = parse(buf, end);
        if (r === null) return null;
        out.push(r.v);
        end = r.end;
      }
      return { v: out, end };
    }
    default:
      throw new Error(`bad RESP reply byte ${buf[at]}`);
  }
}

/** One command on a fresh connection to the UNIX socket; bounded by 2 s. */
function rawCommand(socket: string, args: ReadonlyArray<string | Buffer>): Promise<RespValue> {
  return new Promise((resolve, reject) => {
    const c = connect(socket);
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => {
      c.destroy();
      reject(new Error(`redis ${args[0]}: no reply within 2 s`));
    }, 2000);
    c.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    c.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      const r = parse(buf, 0);
      if (r === null) return;
      clearTimeout(timer);
      c.destroy();
      resolve(r.v);
    });
    c.write(encode(args));
  });
}

/** TLS on the server's TCP port (`--port 0 --tls-port <port>`); PEM file paths. */
export interface RedisTlsFiles {
  readonly cert: string;
  readonly key: string;
  readonly ca: string;
  /** Require a client certificate signed by `ca` (--tls-auth-clients yes). */
  readonly authClients: boolean;
}

export interface StartRedisOptions {
  /** TLS only on TCP (the UNIX socket stays clear, for inspection). */
  readonly tls?: RedisTlsFiles;
  /** More redis-server arguments, e.g. ['--replicaof', '127.0.0.1', '6379']. */
  readonly args?: readonly string[];
}

function tlsArgs(tls: RedisTlsFiles | undefined, port: number): string[] {
  if (tls === undefined) return ['--port', String(port)];
  return ['--port', '0', '--tls-port', String(port), '--tls-cert-file', tls.cert, '--tls-key-file', tls.key,
    '--tls-ca-cert-file', tls.ca, '--tls-auth-clients', tls.authClients ? 'yes' : 'no'];
}

/** n distinct free TCP ports on 127.0.0.1 (at most 10 n probes). */
export async function freePorts(n: number): Promise<number[]> {
  const got = new Set<number>();
  for (let i = 0; i < 10 * n && got.size < n; i++) got.add(await freePort());
  if (got.size < n) throw new Error(`found only ${got.size} of ${n} free ports`);
  return [...got];
}

/*
 * managed - a redis-server process (plain or --sentinel) with start/stop/pause/resume; start
 * waits (bounded: 5 s) for PING on the UNIX socket.
 */
function managed(
  argv: () => string[],
  socket: string,
): Pick<RedisServer, 'start' | 'stop' | 'pause' | 'resume'> {
  let child: ChildProcess | null = null;
  if (!hooked) {
    hooked = true;
    process.on('exit', () => {
      for (const c of live) c.kill('SIGKILL');
    });
  }
  return {
    async start() {
      const c = spawn(REDIS_BIN, argv(), { stdio: ['ignore', 'ignore', 'pipe'] });
      child = c;
      live.add(c);
      let err = '';
      c.stderr?.on('data', (d: Buffer) => (err += d.toString()));
      for (let i = 0; i < 100; i++) {
        if (c.exitCode !== null) throw new Error(`redis-server exited ${c.exitCode}: ${err}`);
        try {
          const pong = await rawCommand(socket, ['PING']);
          if (Buffer.isBuffer(pong) && pong.toString() === 'PONG') return;
        } catch {
          /* not up yet */
        }
        await sleep(50);
      }
      throw new Error(`redis-server did not answer PING within 5 s: ${err}`);
    },
    async stop() {
      const c = child;
      if (c === null || c.exitCode !== null || c.signalCode !== null) return;
      c.kill('SIGCONT');
      c.kill('SIGTERM');
      const gone = new Promise<void>((resolve) => c.once('exit', () => resolve()));
      const timer = setTimeout(() => c.kill('SIGKILL'), 3000);
      await gone;
      clearTimeout(timer);
      live.delete(c);
      child = null;
    },
    pause() {
      child?.kill('SIGSTOP');
    },
    resume() {
      child?.kill('SIGCONT');
    },
  };
}

export async function startRedis(opts: StartRedisOptions = {}): Promise<RedisServer> {
  const dir = mkdtempSync(join(tmpdir(), 'tlsmgr-redis-'));
  const socket = join(dir, 'redis.sock');
  const port = await freePort();
  const proc = managed(
    () => [...tlsArgs(opts.tls, port), '--bind', '127.0.0.1', '--unixsocket', socket, '--unixsocketperm', '700',
      '--save', '', '--appendonly', 'no', '--dir', dir, '--loglevel', 'warning', ...(opts.args ?? [])],
    socket,
  );

  const server: RedisServer = {
    port,
    socket,
    dir,
    ...proc,
    command: (...args) => rawCommand(socket, args),
    async dump() {
      const out = new Map<string, Buffer>();
      let cursor = '0';
      for (let i = 0; i < 10_000; i++) {
        const r = (await rawCommand(socket, ['SCAN', cursor, 'COUNT', '1000'])) as RespValue[];
        cursor = (r[0] as Buffer).toString();
        for (const k of r[1] as Buffer[]) {
          const v = await rawCommand(socket, ['GET', k]);
          if (Buffer.isBuffer(v)) out.set(k.toString('latin1'), v);
        }
        if (cursor === '0') return out;
      }
      throw new Error('SCAN did not finish');
    },
    async destroy() {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  await server.start();
  return server;
}

/** Poll until check() is true: at most `tries` times, `ms` apart; false if it never was. */
export async function waitFor(check: () => Promise<boolean> | boolean, tries: number, ms: number): Promise<boolean> {
  for (let i = 0; i < tries; i++) {
    try {
      if (await check()) return true;
    } catch {
      /* not yet */
    }
    await sleep(ms);
  }
  return false;
}

export interface SentinelServer {
  readonly port: number;
  readonly socket: string;
  readonly dir: string;
  command(...args: Array<string | Buffer>): Promise<RespValue>;
  stop(): Promise<void>;
  destroy(): Promise<void>;
}

/**
 * A Redis Sentinel (`redis-server <conf> --sentinel`) watching `master` under `name`, with a
 * quorum of 1 (a single Sentinel decides alone). With `tls`, it listens on TLS only and
 * reaches the servers over TLS (tls-replication yes); `master.port` is then a TLS port. It is
 * ready when it names the master (bounded: 5 s).
 */
export async function startSentinel(
  master: { readonly port: number },
  name: string,
  opts: { tls?: RedisTlsFiles; downAfterMs?: number } = {},
): Promise<SentinelServer> {
  const dir = mkdtempSync(join(tmpdir(), 'tlsmgr-sentinel-'));
  const socket = join(dir, 'sentinel.sock');
  const port = await freePort();
  const conf = join(dir, 'sentinel.conf');
  const tls = opts.tls;
  // Sentinel rewrites its configuration file (state): it must be its own, and writable.
  writeFileSync(
    conf,
    [
      ...(tls === undefined
        ? [`port ${port}`]
        : ['port 0', `tls-port ${port}`, `tls-cert-file ${tls.cert}`, `tls-key-file ${tls.key}`, `tls-ca-cert-file ${tls.ca}`,
          `tls-auth-clients ${tls.authClients ? 'yes' : 'no'}`, 'tls-replication yes']),
      'bind 127.0.0.1',
      `unixsocket ${socket}`,
      'unixsocketperm 700',
      `dir ${dir}`,
      `sentinel monitor ${name} 127.0.0.1 ${master.port} 1`,
      `sentinel down-after-milliseconds ${name} ${opts.downAfterMs ?? 1000}`,
      `sentinel failover-timeout ${name} 5000`,
      '',
    ].join('\n'),
  );
  const proc = managed(() => [conf, '--sentinel', '--loglevel', 'warning'], socket);
  const sentinel: SentinelServer = {
    port,
    socket,
    dir,
    command: (...args) => rawCommand(socket, args),
    stop: () => proc.stop(),
    async destroy() {
      await proc.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    await proc.start();
    const named = await waitFor(async () => {
      const r = await sentinel.command('SENTINEL', 'get-master-addr-by-name', name);
      return Array.isArray(r) && String(r[1]) === String(master.port);
    }, 100, 50);
    if (!named) throw new Error(`the Sentinel does not name master ${name} within 5 s`);
  } catch (err) {
    await sentinel.destroy();
    throw err;
  }
  return sentinel;
}

/** "cluster_state:ok" in CLUSTER INFO, and CLUSTER SLOTS lists every one of n masters. */
async function clusterOk(node: RedisServer, n: number): Promise<boolean> {
  const info = await node.command('CLUSTER', 'INFO');
  const slots = await node.command('CLUSTER', 'SLOTS');
  return Buffer.isBuffer(info) && info.toString().includes('cluster_state:ok') && Array.isArray(slots) && slots.length === n;
}

/**
 * A Redis Cluster of n masters and no replicas: n servers with cluster-enabled (each its own
 * bus port, --cluster-port), the 16384 slots split in n ranges (CLUSTER ADDSLOTSRANGE), joined
 * by CLUSTER MEET. Resolves when every node says cluster_state:ok and lists n slot ranges
 * (bounded: 10 s); throws (after stopping them) otherwise.
 */
export async function startRedisCluster(n: number): Promise<RedisServer[]> {
  const nodes: RedisServer[] = [];
  try {
    const busPorts = await freePorts(n);
    // Started together: a master turns "ok" only 2 s after its start (CLUSTER_WRITABLE_DELAY).
    const started = await Promise.allSettled(busPorts.map((bus) => startRedis({
      args: ['--cluster-enabled', 'yes', '--cluster-port', String(bus), '--cluster-config-file', 'nodes.conf',
        '--cluster-node-timeout', '5000'],
    })));
    for (const r of started) if (r.status === 'fulfilled') nodes.push(r.value);
    for (const r of started) if (r.status === 'rejected') throw r.reason;
    for (let i = 0; i < n; i++) {
      const from = Math.floor((i * 16384) / n);
      const to = Math.floor(((i + 1) * 16384) / n) - 1;
      const r = await nodes[i].command('CLUSTER', 'ADDSLOTSRANGE', String(from), String(to));
      if (r instanceof Error) throw r;
    }
    for (let i = 1; i < n; i++) {
      const r = await nodes[0].command('CLUSTER', 'MEET', '127.0.0.1', String(nodes[i].port), String(busPorts[i]));
      if (r instanceof Error) throw r;
    }
    const ok = await waitFor(async () => (await Promise.all(nodes.map((s) => clusterOk(s, n)))).every(Boolean), 200, 50);
    if (!ok) throw new Error(`the ${n} Redis Cluster nodes did not agree on the slots within 10 s`);
    return nodes;
  } catch (err) {
    for (const s of nodes) await s.destroy();
    throw err;
  }
}

/** "id hexkey" with a fresh random key unless one is given. */
export function clusterKeyLine(id: number, keyHex = randomBytes(32).toString('hex')): string {
  return `${id} ${keyHex}`;
}

export interface ClusterFiles {
  readonly cf: string;
  readonly keyFile: string;
}

/**
 * A redis: configuration file and its key file (mode 0600) in dir. `via` picks the port or
 * the UNIX socket, `endpoints` replaces that line; `keys` are key-file lines (default: one
 * fresh key); `extra` lines are appended (tls = yes, key_prefix, ...).
 */
export function writeClusterFiles(
  dir: string,
  server: RedisServer,
  opts: {
    name?: string;
    via?: 'tcp' | 'unix';
    /** Lines instead of the "hosts = <server>" line (cluster seeds, sentinels). */
    endpoints?: readonly string[];
    keys?: readonly string[];
    timeout?: string;
    extra?: readonly string[];
  } = {},
): ClusterFiles {
  const name = opts.name ?? 'tlsmgr-redis';
  const keyFile = join(dir, `${name}.key`);
  writeFileSync(keyFile, `# test cluster keys\n${(opts.keys ?? [clusterKeyLine(1)]).join('\n')}\n`, { mode: 0o600 });
  const cf = join(dir, `${name}.cf`);
  writeFileSync(
    cf,
    [
      ...(opts.endpoints ?? [`hosts = ${opts.via === 'unix' ? `unix:${server.socket}` : `127.0.0.1:${server.port}`}`]),
      `key_file = ${keyFile}`,
      `timeout = ${opts.timeout ?? '200ms'}`,
      'connect_timeout = 500ms',
      'retry_max_delay = 200ms',
      ...(opts.extra ?? []),
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
  return { cf, keyFile };
}

/** Wait (bounded: 5 s) until a link is connected; throws if it does not. */
export async function linkReady(link: RedisLink, ms = 5000): Promise<void> {
  for (let i = 0; i < ms / 50 && !link.ready; i++) await sleep(50);
  if (!link.ready) throw new Error(`the Redis link did not connect within ${ms} ms`);
}

export interface TestPki {
  /** The CA that signed the server and client certificates. */
  readonly ca: string;
  readonly serverCert: string;
  readonly serverKey: string;
  readonly clientCert: string;
  readonly clientKey: string;
  /** Another self-signed CA, which signed nothing here. */
  readonly otherCa: string;
}

async function openssl(dir: string, args: readonly string[]): Promise<void> {
  const r = await runCommand('openssl', args, { timeoutMs: 10_000, cwd: dir });
  if (r.code !== 0) throw new Error(`openssl ${args[0]} failed (${r.code ?? r.signal}): ${r.stderr}`);
}

/**
 * Throw-away P-256 certificates in dir, valid for 2 days: a CA, a server certificate for the
 * name localhost only (subjectAltName DNS:localhost, no IP: a client that connects to
 * 127.0.0.1 must be told the name), a client certificate, and an unrelated CA. The server
 * certificate has no extendedKeyUsage, as Redis also shows it as a client (replication,
 * Sentinel to server).
 */
export async function makeTestPki(dir: string): Promise<TestPki> {
  const p = (f: string): string => join(dir, f);
  const newKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  const serial = (): string[] => ['-set_serial', `0x${randomBytes(8).toString('hex')}`];
  writeFileSync(p('server.ext'), 'subjectAltName = DNS:localhost\n');
  writeFileSync(p('client.ext'), 'extendedKeyUsage = clientAuth\n');
  for (const ca of ['ca', 'other-ca']) {
    await openssl(dir, ['req', '-x509', ...newKey, '-keyout', p(`${ca}.key`), '-out', p(`${ca}.crt`), '-days', '2',
      '-subj', `/CN=tlsmgr test ${ca}`]);
  }
  for (const leaf of ['server', 'client']) {
    await openssl(dir, ['req', ...newKey, '-keyout', p(`${leaf}.key`), '-out', p(`${leaf}.csr`),
      '-subj', `/CN=${leaf === 'server' ? 'localhost' : 'tlsmgr test client'}`]);
    await openssl(dir, ['x509', '-req', '-in', p(`${leaf}.csr`), '-CA', p('ca.crt'), '-CAkey', p('ca.key'), ...serial(),
      '-days', '2', '-extfile', p(`${leaf}.ext`), '-out', p(`${leaf}.crt`)]);
  }
  return {
    ca: p('ca.crt'),
    serverCert: p('server.crt'),
    serverKey: p('server.key'),
    clientCert: p('client.crt'),
    clientKey: p('client.key'),
    otherCa: p('other-ca.crt'),
  };
}

/**
 * redis-cli against server's TCP port (bounded: 5 s): with pki, over TLS, checking the server
 * against pki.ca and showing the client certificate. Returns stdout; throws on failure.
 */
export async function redisCli(server: { readonly port: number }, pki: TestPki | null, ...args: string[]): Promise<string> {
  const tls = pki === null ? [] : ['--tls', '--cacert', pki.ca, '--cert', pki.clientCert, '--key', pki.clientKey];
  const r = await runCommand('redis-cli', ['-h', '127.0.0.1', '-p', String(server.port), ...tls, ...args], { timeoutMs: 5000 });
  if (r.code !== 0 || r.timedOut) throw new Error(`redis-cli ${args.join(' ')}: ${r.code ?? r.signal}: ${r.stderr}`);
  return r.stdout;
}
