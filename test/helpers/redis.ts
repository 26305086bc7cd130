/*
 * NAME
 *   redis - a throw-away real redis-server for the cluster tests, and cluster files
 * SYNOPSIS
 *   redisAvailability(): { ok, reason }
 *   startRedis(): Promise<RedisServer>     on 127.0.0.1:<free port> and a UNIX socket
 *   server.stop() / server.start() (same port again) / server.pause() / server.resume()
 *   server.command(...args): Promise<RespValue>      a raw RESP client, for inspection
 *   writeClusterFiles(dir, server, opts): { cf, keyFile }
 *   clusterKeyLine(id, keyHex?)
 * DESCRIPTION
 *   The server runs with no persistence (--save '' --appendonly no) in a mkdtemp()
 *   directory, found by the tests on a free port; start() waits (bounded) for PING. stop()
 *   is SIGTERM then SIGKILL after 3 s, bounded; pause()/resume() are SIGSTOP/SIGCONT (a hung
 *   server). The raw client speaks enough RESP2 to read replies as Buffers, so tests look
 *   at what is stored without going through the code under test.
 *   Every instance is killed at process exit if a test forgot to stop it.
 * LIMITS
 *   Needs Debian's redis-server at /usr/bin/redis-server; CI=true makes its absence a failure.
 */

import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants as fsConstants, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { RedisLink } from '../../src/cluster/link.js';
import { freePort, sleep } from './postfix.js';

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

export async function startRedis(): Promise<RedisServer> {
  const dir = mkdtempSync(join(tmpdir(), 'tlsmgr-redis-'));
  const socket = join(dir, 'redis.sock');
  const port = await freePort();
  let child: ChildProcess | null = null;
  if (!hooked) {
    hooked = true;
    process.on('exit', () => {
      for (const c of live) c.kill('SIGKILL');
    });
  }

  const server: RedisServer = {
    port,
    socket,
    dir,
    async start() {
      child = spawn(
        REDIS_BIN,
        ['--port', String(port), '--bind', '127.0.0.1', '--unixsocket', socket, '--unixsocketperm', '700',
          '--save', '', '--appendonly', 'no', '--dir', dir, '--loglevel', 'warning'],
        { stdio: ['ignore', 'ignore', 'pipe'] },
      );
      live.add(child);
      let err = '';
      child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
      for (let i = 0; i < 100; i++) {
        if (child.exitCode !== null) throw new Error(`redis-server exited ${child.exitCode}: ${err}`);
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
 * the UNIX socket; `keys` are key-file lines (default: one fresh key).
 */
export function writeClusterFiles(
  dir: string,
  server: RedisServer,
  opts: { name?: string; via?: 'tcp' | 'unix'; keys?: readonly string[]; timeout?: string; extra?: readonly string[] } = {},
): ClusterFiles {
  const name = opts.name ?? 'tlsmgr-redis';
  const keyFile = join(dir, `${name}.key`);
  writeFileSync(keyFile, `# test cluster keys\n${(opts.keys ?? [clusterKeyLine(1)]).join('\n')}\n`, { mode: 0o600 });
  const cf = join(dir, `${name}.cf`);
  writeFileSync(
    cf,
    [
      `hosts = ${opts.via === 'unix' ? `unix:${server.socket}` : `127.0.0.1:${server.port}`}`,
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
