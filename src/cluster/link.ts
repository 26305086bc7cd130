/*
 * NAME
 *   cluster/link - one Redis connection (single server, Sentinel or Cluster) with a hard
 *   deadline on every call, fail-fast when down, counters and rate-limited warnings
 * SYNOPSIS
 *   const link = RedisLink.open(config, deps)
 *   await link.run(op, (redis) => redis.getrangeBuffer(key, 0, max)) throws RemoteError
 *   link.ready  link.closed  link.counters  link.statsLine()  link.close()
 *   link.onReady(listener)            called each time the connection is (again) ready
 * DESCRIPTION
 *   smtpd and smtp wait for tlsmgr synchronously, so Redis must never hold a request up:
 *   - a call made while the connection is not ready fails at once (no offline queue);
 *   - a call that has no reply within config.timeout fails with a timeout; after
 *     TIMEOUTS_BEFORE_RESET timeouts in a row the connection is dropped and made again, so
 *     that a hung server does not collect a queue of calls;
 *   - reconnection is ioredis's, with exponential backoff from 50 ms up to
 *     config.retry_max_delay.
 *   Every failure is counted and reported to the caller as a RemoteError, which then falls
 *   back (a miss, a dropped update, a local ticket key): `fallbacks` counts those. One
 *   warning per kind (unavailable, timeout, error) per minute at most; an info line when the
 *   connection is ready again after a failure. onReady() listeners run on every 'ready' (the
 *   first connection and each reconnection), so that a user can re-read state it may have
 *   missed while the connection was down (tickets/shared.ts re-reads the ticket key
 *   generation).
 *   The client library is ioredis: in a sequential GET/SET test with 32 concurrent callers
 *   on one connection it did 114-126k operations/s against node-redis's 55-57k, p99 0.6-1.8
 *   ms against 11.6-12.3 ms (bench/redis-clients.ts); it also has Sentinel and Cluster
 *   support, per-connection TLS and a connect timeout in one client.
 * DIAGNOSTICS
 *   Warnings "redis <source>: <op>: <reason> -- <what happens instead>"; no key or value is
 *   ever part of a message. Connection errors reported by ioredis go through the same
 *   limiter (an unhandled 'error' event would otherwise end the process).
 *   The password never is either: the connection handshake sends it (HELLO 3 AUTH, then
 *   AUTH), and a server that does not know the command (an old Redis, or one with AUTH or
 *   HELLO renamed away) answers "ERR unknown command 'AUTH', with args beginning with:
 *   '<password>'". The reason is cut before "with args beginning with" and any copy of the
 *   password left is replaced by "(hidden)", before errorReason() shortens it (a cut could
 *   otherwise leave part of it).
 */

import { createRequire } from 'node:module';
import type { Cluster, ClusterOptions, Redis, RedisOptions } from 'ioredis';
import type { Clock } from '../util/clock.js';
import { TlsmgrError } from '../util/errors.js';
import { WarnLimiter } from '../util/ratelimit.js';
import { errorReason } from '../util/printable.js';
import { redact, type RedisConfig } from './config.js';

/*
 * The commands tlsmgr uses; both Redis and Cluster provide them. No command that names
 * several keys (MGET, EXISTS or DEL of more than one key) unless RedisLink.cluster is false:
 * Redis Cluster refuses keys in different hash slots with CROSSSLOT, and tlsmgr's keys are
 * keyed hashes, in unrelated slots (cache/stores/redis.ts, RedisStore.del). Values are read
 * with GETRANGE up to the longest acceptable record, never GET: a reply is read whole into
 * memory (even after the call timed out) before any length check could refuse it, and
 * whoever can write to Redis can store 512 MB under a key. EVAL runs only scripts that name
 * one key (tickets/shared.ts: the ticket key generation) and answer a short string.
 */
export type RedisClient = Pick<Redis, 'getrangeBuffer' | 'set' | 'del' | 'pexpire' | 'scan' | 'unlink' | 'eval'>;

/** Timeouts in a row after which the connection is dropped and made again. */
export const TIMEOUTS_BEFORE_RESET = 3;
/** Calls in flight at most; more fail at once (a slow server must not make a queue). */
export const MAX_IN_FLIGHT = 4096;

export class RemoteError extends TlsmgrError {
  constructor(
    readonly kind: 'unavailable' | 'timeout' | 'error',
    message: string,
    options?: { cause?: unknown },
  ) {
    super('TLSMGR_STORE', message, options);
    this.name = 'RemoteError';
  }
}

export interface LinkCounters {
  /** Calls sent to Redis. */
  roundtrips: number;
  /** Calls that Redis or the connection failed. */
  errors: number;
  /** Calls without a reply within the timeout. */
  timeouts: number;
  /** Calls not made or not answered: the caller fell back (miss, dropped, local key). */
  fallbacks: number;
}

export interface LinkDeps {
  readonly clock: Clock;
  readonly warn: (msg: string) => void;
  readonly info?: (msg: string) => void;
}

type Client = Redis | Cluster;

/* safeReason - errorReason() of a client error, without echoed arguments or the password */
export function safeReason(err: unknown, password: string): string {
  if (!(err instanceof Error)) return errorReason(err);
  let text = err.message;
  // Redis echoes the arguments of a command it does not know (server.c, processCommand).
  const echo = /,?\s*with args beginning with:/i.exec(text);
  if (echo !== null) text = `${text.slice(0, echo.index)} (arguments not shown)`;
  const clean = new Error(redact(text, password));
  const code = (err as NodeJS.ErrnoException).code;
  if (typeof code === 'string') Object.assign(clean, { code: redact(code, password) });
  return errorReason(clean);
}

function options(cfg: RedisConfig): RedisOptions {
  return {
    username: cfg.user || undefined,
    password: cfg.password || undefined,
    db: cfg.database,
    tls: cfg.tls ? { ...cfg.tls } : undefined,
    connectTimeout: cfg.connectTimeout,
    enableOfflineQueue: false,
    // Calls are never retried: a retry would outlive the caller's deadline.
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    connectionName: 'tlsmgr',
    retryStrategy: (times: number) => Math.min(50 * 2 ** Math.min(times, 16), cfg.retryMaxDelay),
  };
}

/*
 * ioredis is loaded the first time a link is opened, not when the daemon starts: loading it
 * costs 13-17 MB of memory (its command tables), measured with /proc/self/status RssAnon
 * before and after the import, and a daemon without a `redis:` table never needs it. Links
 * are opened before the chroot (with the caches), where node_modules is still reachable.
 */
let ioredis: typeof import('ioredis') | undefined;

function loadIoredis(): typeof import('ioredis') {
  ioredis ??= createRequire(import.meta.url)('ioredis') as typeof import('ioredis');
  return ioredis;
}

/* makeClient - the ioredis client for the configured mode; it connects in the background */
function makeClient(cfg: RedisConfig): Client {
  const { Cluster, Redis } = loadIoredis();
  const base = options(cfg);
  if (cfg.mode === 'cluster') {
    const opts: ClusterOptions = {
      redisOptions: base,
      enableOfflineQueue: false,
      clusterRetryStrategy: (times: number) => Math.min(50 * 2 ** Math.min(times, 16), cfg.retryMaxDelay),
    };
    return new Cluster(cfg.hosts.map((h) => ({ host: h.host, port: h.port })), opts);
  }
  if (cfg.mode === 'sentinel') {
    return new Redis({
      ...base,
      sentinels: cfg.sentinels.map((s) => ({ host: s.host, port: s.port })),
      name: cfg.sentinelMaster,
      // With sentinels, ioredis ignores `tls` unless enableTLSForSentinelMode is set (it would
      // reach the master in clear), and reaches the Sentinels with sentinelTLS only: tls = yes
      // means TLS to both, with the same files (a Sentinel of a TLS deployment listens on TLS).
      ...(cfg.tls ? { enableTLSForSentinelMode: true, sentinelTLS: { ...cfg.tls } } : {}),
      sentinelRetryStrategy: (times: number) => Math.min(50 * 2 ** Math.min(times, 16), cfg.retryMaxDelay),
    });
  }
  const h = cfg.hosts[0];
  return new Redis(h.path !== undefined ? { ...base, path: h.path } : { ...base, host: h.host, port: h.port });
}

export class RedisLink {
  readonly counters: LinkCounters = { roundtrips: 0, errors: 0, timeouts: 0, fallbacks: 0 };
  private readonly limited: WarnLimiter;
  private timeoutsInARow = 0;
  private inFlight = 0;
  private failedSinceReady = false;
  private isClosed = false;
  private readonly readyListeners: Array<() => void> = [];

  private constructor(
    readonly config: RedisConfig,
    private readonly client: Client,
    private readonly deps: LinkDeps,
  ) {
    this.limited = new WarnLimiter(deps.warn, deps.clock);
    client.on('error', (err: Error) => this.failed('unavailable', `connection: ${safeReason(err, config.password)}`));
    client.on('ready', () => {
      if (this.failedSinceReady) this.deps.info?.(`redis ${this.config.source}: connection ready again -- sharing resumes`);
      this.failedSinceReady = false;
      this.timeoutsInARow = 0;
      for (const l of this.readyListeners) l();
    });
  }

  /** Start connecting (in the background); calls fail fast until the connection is ready. */
  static open(config: RedisConfig, deps: LinkDeps): RedisLink {
    return new RedisLink(config, makeClient(config), deps);
  }

  get ready(): boolean {
    return !this.isClosed && this.client.status === 'ready';
  }

  /** close() was called: no call will ever be made again. */
  get closed(): boolean {
    return this.isClosed;
  }

  /** Call `listener` each time the connection becomes ready (first connection and reconnections). */
  onReady(listener: () => void): void {
    this.readyListeners.push(listener);
  }

  /** Redis Cluster: a command may only name keys of one hash slot. */
  get cluster(): boolean {
    return this.config.mode === 'cluster';
  }

  /** The prefix of every key (key_prefix). */
  get prefix(): string {
    return this.config.keyPrefix;
  }

  /** Run one call with the deadline; any failure is a RemoteError (already counted and logged). */
  run<T>(op: string, call: (redis: RedisClient) => Promise<T>): Promise<T> {
    if (!this.ready) return Promise.reject(this.fail('unavailable', `${op}: not connected`));
    if (this.inFlight >= MAX_IN_FLIGHT) return Promise.reject(this.fail('unavailable', `${op}: ${MAX_IN_FLIGHT} calls in flight`));
    this.counters.roundtrips++;
    this.inFlight++;
    const ms = this.config.timeout;
    return new Promise<T>((resolve, reject) => {
      let done = false;
      const timer = setTimeout(() => {
        if (done) return;
        done = true;
        this.inFlight--;
        this.counters.timeouts++;
        if (++this.timeoutsInARow >= TIMEOUTS_BEFORE_RESET && !this.isClosed) {
          this.timeoutsInARow = 0;
          this.client.disconnect(true); // a hung server: drop its queue and connect again
        }
        reject(this.fail('timeout', `${op}: no reply within ${ms} ms`));
      }, ms);
      call(this.client).then(
        (v) => {
          if (done) return;
          done = true;
          clearTimeout(timer);
          this.inFlight--;
          this.timeoutsInARow = 0;
          resolve(v);
        },
        (err: unknown) => {
          if (done) return;
          done = true;
          clearTimeout(timer);
          this.inFlight--;
          this.counters.errors++;
          reject(this.fail('error', `${op}: ${safeReason(err, this.config.password)}`, err));
        },
      );
    });
  }

  /** "statistics: redis <source>: roundtrips=.. errors=.. timeouts=.. fallbacks=.." */
  statsLine(): string {
    const c = this.counters;
    return `statistics: redis ${this.config.source}: roundtrips=${c.roundtrips} errors=${c.errors} timeouts=${c.timeouts} fallbacks=${c.fallbacks}`;
  }

  close(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.client.disconnect(false);
  }

  private fail(kind: RemoteError['kind'], text: string, cause?: unknown): RemoteError {
    this.counters.fallbacks++;
    this.failed(kind, text);
    return new RemoteError(kind, text, { cause });
  }

  private failed(kind: RemoteError['kind'], text: string): void {
    if (this.isClosed) return;
    this.failedSinceReady = true;
    this.limited.warn(kind, `redis ${this.config.source}: ${text} -- serving without Redis`);
  }
}
