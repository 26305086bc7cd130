/*
 * NAME
 *   test/helpers/harness - the real request path with injected clock, randomness and warnings
 * SYNOPSIS
 *   makeHarness(opts?): Harness        caches + tickets + dispatcher + connection context
 *   h.serve(bytes): Reply | null       one request through reader, scanner and dispatcher
 *   startServer(h, ctx?): Promise<TestServer>  createTlsmgrServer on a temp UNIX socket
 *   s.reads; await s.readsServed(n)    reads the server has served (its onRequest brackets)
 *   TestClient.connect(path, opts?)    a net client with bounded waits
 *   until(fn, ms, what)                poll a condition nothing signals (bounded)
 * DESCRIPTION
 *   Nothing is mocked below the dispatcher: Attr0Reader, scanRequest, Dispatcher, CacheTable
 *   (with a MemoryStore the test can reach), TicketKeyRing. The clock is a FakeClock; seed
 *   bytes are deterministic unless opts.realRandom is set; warnings are collected in
 *   h.warnings (text without the "warning: " prefix, as the modules pass it).
 *   A TestServer counts the reads its connections have served (ctx.onRequest(false), which
 *   also still reaches the ctx's own onRequest): a test that must know a write was read on
 *   its own (a request that gets no reply, the first half of a split token) waits for that
 *   instead of sleeping, so the next write is a separate read.
 * LIMITS
 *   Every wait in TestClient and TestServer has a timeout (default 2 s) and fails the test
 *   when it expires; TestClient waits for its socket's events (test/helpers/signal.ts), never
 *   for a fixed time. until() polls, with a bounded number of probes.
 */

import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CacheTable } from '../../src/cache/caches.js';
import { MemoryStore } from '../../src/cache/stores/memory.js';
import { FakeClock } from '../../src/util/clock.js';
import type { CacheType, TlsmgrConfig } from '../../src/config/types.js';
import { serveBytes, type ConnectionContext } from '../../src/server/connection.js';
import { Dispatcher } from '../../src/server/dispatch.js';
import { createTlsmgrServer } from '../../src/server/server.js';
import { TicketKeyRing } from '../../src/tickets/keys.js';
import { listLength, parseReply, show, testConfig, type Reply } from './attr.js';
import { Signal } from './signal.js';

/** 2023-11-14 22:13:20 UTC: an arbitrary fixed start time for the fake clock. */
export const T0 = 1_700_000_000;

export interface HarnessOptions {
  readonly config?: TlsmgrConfig;
  readonly now?: number;
  /** Use crypto.randomBytes for seeds and keys instead of the deterministic counter bytes. */
  readonly realRandom?: boolean;
  /** Stream name in warnings (default "tlsmgr socket"). */
  readonly path?: string;
  /** Replace the seed byte source (e.g. one that throws). */
  readonly seed?: (n: number) => Buffer;
}

export interface Harness {
  readonly config: TlsmgrConfig;
  readonly clock: FakeClock;
  readonly caches: CacheTable;
  readonly tickets: TicketKeyRing;
  readonly dispatcher: Dispatcher;
  readonly ctx: ConnectionContext;
  /** The store behind each enabled cache. */
  readonly stores: Map<CacheType, MemoryStore>;
  readonly warnings: string[];
  /** Serve one request (serveBytes, the -S path): the parsed reply, or null when none. */
  serve(bytes: Buffer): Reply | null;
  /** Serve one request and return the raw reply bytes. */
  serveRaw(bytes: Buffer): Buffer;
  /** Warnings logged so far, and clear the list. */
  takeWarnings(): string[];
}

/** Deterministic "random" bytes: a running counter, so consecutive calls differ. */
function counterBytes(): (n: number) => Buffer {
  let k = 0;
  return (n) => {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = (k++ * 7 + 1) & 0xff;
    return b;
  };
}

export function makeHarness(opts: HarnessOptions = {}): Harness {
  const config = opts.config ?? testConfig();
  const clock = new FakeClock(opts.now ?? T0);
  const warnings: string[] = [];
  const warn = (m: string): void => {
    warnings.push(m);
  };
  const stores = new Map<CacheType, MemoryStore>();
  const caches = new CacheTable(config, {
    clock,
    warn,
    openStore: (type) => {
      const s = new MemoryStore();
      stores.set(type, s);
      return s;
    },
  });
  const random = opts.realRandom ? randomBytes : counterBytes();
  const tickets = new TicketKeyRing(random);
  const dispatcher = new Dispatcher({ caches, tickets, seed: opts.seed ?? random, clock, warn });
  const ctx: ConnectionContext = {
    dispatcher,
    limits: { nameLimit: config.attrNameLimit, valueLimit: config.attrValueLimit, countLimit: config.attrCountLimit },
    scan: { path: opts.path ?? 'tlsmgr socket', cacheIdLimit: config.cacheIdLimit, sessionLimit: config.sessionLimit, warn },
  };
  const serveRaw = (bytes: Buffer): Buffer => {
    const reply = serveBytes(bytes, ctx);
    if (reply instanceof Promise) throw new Error('a local cache answered later: the harness serves synchronously');
    return reply;
  };
  return {
    config,
    clock,
    caches,
    tickets,
    dispatcher,
    ctx,
    stores,
    warnings,
    serveRaw,
    serve(bytes) {
      const out = serveRaw(bytes);
      return out.length === 0 ? null : parseReply(out);
    },
    takeWarnings() {
      return warnings.splice(0, warnings.length);
    },
  };
}

export interface TestServer {
  readonly path: string;
  readonly server: Server;
  /** Connections open on the server side now. */
  readonly connections: number;
  /** Reads served so far, by every connection. */
  readonly reads: number;
  /** Wait (bounded) until the server has served n reads in all. */
  readsServed(n: number, ms?: number): Promise<void>;
  stop(): Promise<void>;
}

/** createTlsmgrServer(ctx ?? h.ctx) listening on a fresh temp UNIX socket. */
export async function startServer(h: Harness, ctx?: ConnectionContext): Promise<TestServer> {
  const dir = mkdtempSync(join(tmpdir(), 'tlsmgr-test-'));
  const path = join(dir, 'tlsmgr');
  const base = ctx ?? h.ctx;
  let reads = 0;
  const served = new Signal();
  const server = createTlsmgrServer({
    ...base,
    onRequest: (busy) => {
      base.onRequest?.(busy);
      if (busy) return;
      reads++;
      served.wake();
    },
  });
  const open = new Set<Socket>();
  server.on('connection', (s) => {
    open.add(s);
    s.on('close', () => open.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    path,
    server,
    get connections() {
      return open.size;
    },
    get reads() {
      return reads;
    },
    readsServed(n, ms = WAIT_MS) {
      return served.until(() => reads >= n, ms, () => `${n} reads served (${reads} so far)`);
    },
    async stop() {
      for (const s of open) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export const WAIT_MS = 2000;

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Poll fn until it returns true, at most `ms` and a bounded number of probes; else reject
 * naming `what`. For conditions no event announces (a file's contents, another process's
 * state); the first probes come quickly (1, 2, 4 ... ms), then every 25 ms.
 */
export async function until(fn: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  const probes = Math.ceil(ms / 25) + 8;
  for (let i = 0, wait = 1; i < probes; i++, wait = Math.min(25, wait * 2)) {
    if (fn()) return;
    if (Date.now() > end) break;
    await sleep(wait);
  }
  if (!fn()) throw new Error(`timed out waiting for ${what}`);
}

/** A client that buffers everything it receives; reads wait (bounded) for enough bytes. */
export class TestClient {
  private buf = Buffer.alloc(0);
  private gotEnd = false;
  private gotClose = false;
  private readonly changed = new Signal();

  private constructor(readonly sock: Socket) {
    sock.on('data', (c: Buffer) => {
      this.buf = Buffer.concat([this.buf, c]);
      this.changed.wake();
    });
    sock.on('end', () => {
      this.gotEnd = true;
      this.changed.wake();
    });
    sock.on('close', () => {
      this.gotClose = true;
      this.changed.wake();
    });
    sock.on('error', () => {
      /* reported through 'close' */
    });
  }

  static connect(path: string, opts: { allowHalfOpen?: boolean } = {}): Promise<TestClient> {
    return new Promise((resolve, reject) => {
      const s = createConnection({ path, allowHalfOpen: opts.allowHalfOpen ?? false });
      s.once('connect', () => {
        s.off('error', reject);
        resolve(new TestClient(s));
      });
      s.once('error', reject);
    });
  }

  /** Connect and consume the greeting (waiting up to opts.ms), checking its exact bytes. */
  static async open(path: string, opts: { allowHalfOpen?: boolean; ms?: number } = {}): Promise<TestClient> {
    const c = await TestClient.connect(path, opts);
    const g = await c.readList(opts.ms);
    if (show(g) !== show(Buffer.from('protocol\0tlsmgr_protocol\0\0', 'latin1'))) throw new Error(`bad greeting ${show(g)}`);
    return c;
  }

  /** Resolve when cond() holds; reject after ms. */
  private until(cond: () => boolean, what: string, ms: number): Promise<void> {
    return this.changed.until(cond, ms, () => `${what}; have ${show(this.buf)}`);
  }

  send(bytes: Buffer): void {
    this.sock.write(bytes);
  }

  /** Half-close: no more bytes from us. */
  end(): void {
    this.sock.end();
  }

  /** The bytes received and not yet consumed. */
  get pending(): Buffer {
    return this.buf;
  }

  get ended(): boolean {
    return this.gotEnd || this.gotClose;
  }

  /** Consume exactly one complete attr0 list. */
  async readList(ms = WAIT_MS): Promise<Buffer> {
    await this.until(() => listLength(this.buf) >= 0 || this.gotEnd || this.gotClose, 'a complete list', ms);
    const n = listLength(this.buf);
    if (n < 0) throw new Error(`connection ended before a complete list: ${show(this.buf)}`);
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return Buffer.from(out);
  }

  /** Consume one reply and parse it. */
  async reply(ms = WAIT_MS): Promise<Reply> {
    return parseReply(await this.readList(ms));
  }

  /** Send one request (in one write) and read its reply. */
  async request(bytes: Buffer, ms = WAIT_MS): Promise<Reply> {
    this.send(bytes);
    return this.reply(ms);
  }

  /** Wait until the server closed its side; returns the bytes received meanwhile. */
  async waitEnd(ms = WAIT_MS): Promise<Buffer> {
    await this.until(() => this.gotEnd || this.gotClose, 'end of connection', ms);
    const out = this.buf;
    this.buf = Buffer.alloc(0);
    return out;
  }

  destroy(): void {
    this.sock.destroy();
  }
}
