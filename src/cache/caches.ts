/*
 * NAME
 *   cache/caches - the per-type cache table: timeouts, enabling, stores, cleanup passes,
 *   statistics
 * SYNOPSIS
 *   new CacheTable(config, deps)
 *   table.get(cacheType) / table.timeout(cacheType) / table.startCleanup() / table.stats()
 *   table.logStats(info) / table.runPass(cacheType, cache) / table.close()
 * DESCRIPTION
 *   tlsmgr.c's cache_table and tlsmgr_pre_init() (spec 3.2): for each of smtpd, smtp, lmtp the
 *   configured timeout is sanitised (> 0 and < 120 becomes 120; <= 0 becomes 0), and the cache
 *   is enabled only when the timeout is > 0 and the database parameter is non-empty. Two
 *   enabled types naming the same database (compared as written) are a fatal error, unless
 *   deps.sharedByTypes says that database's store keys its entries by cache type (the store
 *   kind's trait, cache/open.ts). Every start begins with an empty cache (Postfix opens with
 *   O_TRUNC). Each enabled cache is the one engine (cache/scache.ts) over the store that
 *   deps.openStore makes for its database (cache/open.ts in the daemon; memory by default),
 *   with the limits of the *_tls_session_cache_max_* parameters; records are sealed with one
 *   per-process key (util/seal.ts) unless the store brings its group's ring.
 *   Cleanup (spec 3.5): a pass per enabled cache right at start and then every `timeout`
 *   seconds; a pass removes expired entries in batches of CLEANUP_BATCH through the store's
 *   stamp index, yielding to the event loop (setImmediate) between batches so that requests
 *   are never held up by a whole pass; a timer firing while a pass still runs starts no
 *   second pass. When the cache's *_tls_loglevel includes "cache" (2 and up, or the word),
 *   each pass logs Postfix's start line and an end line with the count and duration.
 *   Statistics: startCleanup() also logs one line per enabled cache (cache/stats.ts), then
 *   the caller's own lines (deps.statsLines: e.g. the Redis links'), through deps.info every
 *   tlsmgr_stats_interval seconds (0: never); stats() returns the same figures for an
 *   exporter.
 *   Timers (deps.timers, util/timer.ts runEvery: periods of any length) and the monotonic
 *   clock that times a pass (deps.monotonic, ms) are injected, so tests drive them.
 * LIMITS
 *   The timers are unref()ed (util/timer.ts): the table keeps no process alive on its own.
 * DIAGNOSTICS
 *   The constructor throws FatalError for the same-database error and for any store that
 *   cannot be opened (the stores already opened are closed first).
 * SEE ALSO
 *   tlsmgr/tlsmgr.c tlsmgr_pre_init(), tlsmgr_cache_run_event()
 */

import type { Clock } from '../util/clock.js';
import { CACHE_TYPES, type CacheType, type TlsmgrConfig } from '../config/types.js';
import { FatalError } from '../util/errors.js';
import { Sealer } from '../util/seal.js';
import { realTimers, runEvery, type Cancel, type TimerApi } from '../util/timer.js';
import type { CacheLimits } from './limits.js';
import { TlsScache } from './scache.js';
import type { SessionCache } from './session-cache.js';
import { formatStats, type CacheStats } from './stats.js';
import type { SessionStore } from './store.js';
import { MemoryStore } from './stores/memory.js';

/** TLS_SESSION_LIFEMIN: the shortest session cache timeout tlsmgr accepts. */
export const TLS_SESSION_LIFEMIN = 120;

/**
 * Entries removed per event-loop turn by a cleanup pass. Measured on the SQLite store holding a
 * million 1,500-byte entries: a batch of 64 takes about 0.16 ms (p99 0.6 ms, at most 2.5 ms when
 * a WAL checkpoint falls in it); 128 doubles that for a pass only 15% shorter. A request waits
 * at most one batch for cleanup.
 */
export const CLEANUP_BATCH = 64;

export function sanitiseTimeout(t: number): number {
  if (t <= 0) return 0;
  return t < TLS_SESSION_LIFEMIN ? TLS_SESSION_LIFEMIN : t;
}

/** Whether a *_tls_loglevel value includes TLS_LOG_CACHE (tls/tls_misc.c tls_log_table). */
export function logsCache(loglevel: string): boolean {
  return loglevel
    .split(/[,\s]+/)
    .some((w) => /^[2-9]$/.test(w) || ['debug', 'ssl-expert', 'ssl-developer', 'cache'].includes(w.toLowerCase()));
}

/** "type:path" as dict_open() names a map; no type means $default_database_type. */
export function dictName(database: string, defaultType: string): string {
  return /^[A-Za-z0-9_-]+:/.test(database) ? database : `${defaultType}:${database}`;
}

/** What a store is opened for: the cache's sanitised timeout and its limits. */
export interface StoreUse {
  readonly timeout: number;
  readonly limits: CacheLimits;
}

/** Makes the store of an enabled cache from its dict name ("type:name"). */
export type OpenStore = (cacheType: CacheType, dict: string, use?: StoreUse) => SessionStore;

export interface CacheDeps {
  readonly clock: Clock;
  readonly warn: (msg: string) => void;
  /** Receives the statistics and cleanup lines (info level); without it none are logged. */
  readonly info?: (msg: string) => void;
  /** Make the store for an enabled cache (default: memory). */
  readonly openStore?: OpenStore;
  /** Whether two cache types may name this dict: its store keys entries by type (default: no). */
  readonly sharedByTypes?: (dict: string) => boolean;
  /** Seals records of stores without a ring of their own (default: Sealer.fresh()). */
  readonly sealer?: Sealer;
  /** The caller's extra statistics lines, logged after the caches' at every interval. */
  readonly statsLines?: () => readonly string[];
  /** Timers for the cleanup and statistics periods (default: Node's, unref()ed). */
  readonly timers?: TimerApi;
  /** Monotonic milliseconds, to time a cleanup pass (default: performance.now()). */
  readonly monotonic?: () => number;
}

export class CacheTable {
  private readonly timeouts: Record<CacheType, number>;
  private readonly caches = new Map<CacheType, SessionCache>();
  private readonly cancels: Cancel[] = [];
  private readonly running = new Set<CacheType>();
  private closed = false;
  private readonly statsInterval: number;
  private readonly info: ((msg: string) => void) | undefined;
  private readonly passLog = new Set<CacheType>();
  private readonly statsLines: (() => readonly string[]) | undefined;
  private readonly timers: TimerApi;
  private readonly monotonic: () => number;

  constructor(config: TlsmgrConfig, deps: CacheDeps) {
    this.statsInterval = config.statsInterval;
    this.info = deps.info;
    this.statsLines = deps.statsLines;
    this.timers = deps.timers ?? realTimers;
    this.monotonic = deps.monotonic ?? (() => performance.now());
    for (const type of CACHE_TYPES) if (logsCache(config.cache[type].loglevel)) this.passLog.add(type);
    this.timeouts = { smtpd: 0, smtp: 0, lmtp: 0 };
    const enabledBy = new Map<string, CacheType>();
    for (const type of CACHE_TYPES) {
      const p = config.cache[type];
      const timeout = sanitiseTimeout(p.timeout);
      this.timeouts[type] = timeout;
      if (timeout <= 0 || p.database === '') continue;
      const other = enabledBy.get(p.database);
      const shared = deps.sharedByTypes?.(dictName(p.database, config.defaultDatabaseType)) === true;
      if (other !== undefined && !shared) {
        throw new FatalError(`do not use the same TLS cache file ${p.database} for ${other} and ${type}`);
      }
      enabledBy.set(shared ? `${type}\0${p.database}` : p.database, type);
    }
    const sealer = deps.sealer ?? Sealer.fresh();
    try {
      for (const type of enabledBy.values()) {
        const p = config.cache[type];
        const dict = dictName(p.database, config.defaultDatabaseType);
        const use: StoreUse = {
          timeout: this.timeouts[type],
          limits: { maxEntries: p.maxEntries, maxSize: p.maxSize, maxEntrySize: p.maxEntrySize },
        };
        const store = deps.openStore ? deps.openStore(type, dict, use) : new MemoryStore();
        this.caches.set(type, new TlsScache({
          cacheType: type,
          dictName: dict,
          store,
          sealer,
          clock: deps.clock,
          smtputf8: config.smtputf8Enable,
          warn: deps.warn,
          ...use,
        }));
      }
    } catch (err) {
      this.close();
      throw err;
    }
  }

  /** The enabled cache of a type, or undefined when disabled. */
  get(type: CacheType): SessionCache | undefined {
    return this.caches.get(type);
  }

  /** The sanitised timeout of a type (reported by "policy" even when disabled). */
  timeout(type: CacheType): number {
    return this.timeouts[type];
  }

  /**
   * Start the periodic work: a cleanup pass per enabled cache now, then every timeout; and
   * the statistics lines every tlsmgr_stats_interval.
   */
  startCleanup(): void {
    for (const [type, cache] of this.caches) {
      void this.runPass(type, cache);
      this.cancels.push(runEvery(cache.timeout, () => void this.runPass(type, cache), this.timers));
    }
    const info = this.info;
    if (info !== undefined && this.statsInterval > 0 && (this.caches.size > 0 || this.statsLines !== undefined)) {
      this.cancels.push(runEvery(this.statsInterval, () => this.logStats(info), this.timers));
    }
  }

  /** Counters and gauges of each enabled cache (for the log line and a metrics exporter). */
  stats(): ReadonlyMap<CacheType, CacheStats> {
    const out = new Map<CacheType, CacheStats>();
    for (const [type, cache] of this.caches) out.set(type, cache.stats());
    return out;
  }

  /** One statistics line per enabled cache, then the caller's lines. */
  logStats(info: (msg: string) => void): void {
    for (const [type, s] of this.stats()) info(formatStats(type, s));
    for (const line of this.statsLines?.() ?? []) info(line);
  }

  /** One cleanup pass, in batches; resolves with the number of entries removed. */
  runPass(type: CacheType, cache: SessionCache): Promise<number> {
    if (this.running.has(type)) return Promise.resolve(0);
    this.running.add(type);
    const log = this.passLog.has(type) ? this.info : undefined;
    log?.(`tlsmgr_cache_run_event: start TLS ${type} session cache cleanup`);
    const t0 = this.monotonic();
    let total = 0;
    return new Promise((resolve) => {
      const done = (): void => {
        this.running.delete(type);
        const ms = (this.monotonic() - t0).toFixed(1);
        log?.(`tlsmgr_cache_run_event: TLS ${type} session cache cleanup: ${total} expired entries removed in ${ms} ms`);
        resolve(total);
      };
      const swept = (n: number): void => {
        total += n;
        if (n < CLEANUP_BATCH) done();
        else setImmediate(step);
      };
      const step = (): void => {
        if (this.closed) {
          done();
          return;
        }
        const n = cache.sweep(CLEANUP_BATCH);
        if (n instanceof Promise) void n.then(swept);
        else swept(n);
      };
      step();
    });
  }

  close(): void {
    this.closed = true;
    for (const cancel of this.cancels) cancel();
    for (const c of this.caches.values()) c.close();
    this.caches.clear();
    this.cancels.length = 0;
  }
}
