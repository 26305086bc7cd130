/*
 * NAME
 *   cache/caches - the per-type cache table: timeouts, enabling, stores, cleanup passes
 * SYNOPSIS
 *   openCaches(config, deps): CacheTable
 *   table.get(cacheType) / table.timeout(cacheType) / table.startCleanup() / table.close()
 * DESCRIPTION
 *   tlsmgr.c's cache_table and tlsmgr_pre_init() (spec 3.2): for each of smtpd, smtp, lmtp the
 *   configured timeout is sanitised (> 0 and < 120 becomes 120; <= 0 becomes 0), and the cache
 *   is enabled only when the timeout is > 0 and the database parameter is non-empty. Two
 *   enabled types naming the same database (compared as written) are a fatal error. Every
 *   start begins with an empty cache (Postfix opens with O_TRUNC).
 *   Cleanup (spec 3.5): a pass per enabled cache right at start and then every `timeout`
 *   seconds; a pass removes expired entries in batches of CLEANUP_BATCH, yielding to the event
 *   loop (setImmediate) between batches so that requests are never held up by a whole pass;
 *   a timer firing while a pass still runs starts no second pass.
 * DIAGNOSTICS
 *   openCaches() throws FatalError for the same-database error.
 * SEE ALSO
 *   tlsmgr/tlsmgr.c tlsmgr_pre_init(), tlsmgr_cache_run_event()
 */

import type { Clock } from '../clock.js';
import { CACHE_TYPES, type CacheType, type TlsmgrConfig } from '../config/types.js';
import { FatalError } from '../errors.js';
import { TlsScache } from './scache.js';
import type { SessionStore } from './store.js';
import { MemoryStore } from './stores/memory.js';

/** TLS_SESSION_LIFEMIN: the shortest session cache timeout tlsmgr accepts. */
export const TLS_SESSION_LIFEMIN = 120;

/** Entries removed per event-loop turn by a cleanup pass. */
export const CLEANUP_BATCH = 256;

export function sanitiseTimeout(t: number): number {
  if (t <= 0) return 0;
  return t < TLS_SESSION_LIFEMIN ? TLS_SESSION_LIFEMIN : t;
}

/** "type:path" as dict_open() names a map; no type means $default_database_type. */
export function dictName(database: string, defaultType: string): string {
  return /^[A-Za-z0-9_-]+:/.test(database) ? database : `${defaultType}:${database}`;
}

export interface CacheDeps {
  readonly clock: Clock;
  readonly warn: (msg: string) => void;
  /** Make the store for an enabled cache (default: memory). */
  readonly openStore?: (cacheType: CacheType, dict: string) => SessionStore;
}

export class CacheTable {
  private readonly timeouts: Record<CacheType, number>;
  private readonly caches = new Map<CacheType, TlsScache>();
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly running = new Set<CacheType>();
  private closed = false;

  constructor(config: TlsmgrConfig, deps: CacheDeps) {
    this.timeouts = { smtpd: 0, smtp: 0, lmtp: 0 };
    const enabledBy = new Map<string, CacheType>();
    for (const type of CACHE_TYPES) {
      const p = config.cache[type];
      const timeout = sanitiseTimeout(p.timeout);
      this.timeouts[type] = timeout;
      if (timeout <= 0 || p.database === '') continue;
      const other = enabledBy.get(p.database);
      if (other !== undefined) {
        throw new FatalError(`do not use the same TLS cache file ${p.database} for ${other} and ${type}`);
      }
      enabledBy.set(p.database, type);
    }
    for (const [database, type] of enabledBy) {
      const dict = dictName(database, config.defaultDatabaseType);
      const store = deps.openStore ? deps.openStore(type, dict) : new MemoryStore();
      this.caches.set(
        type,
        new TlsScache({
          cacheType: type,
          dictName: dict,
          timeout: this.timeouts[type],
          store,
          clock: deps.clock,
          smtputf8: config.smtputf8Enable,
          warn: deps.warn,
        }),
      );
    }
  }

  /** The enabled cache of a type, or undefined when disabled. */
  get(type: CacheType): TlsScache | undefined {
    return this.caches.get(type);
  }

  /** The sanitised timeout of a type (reported by "policy" even when disabled). */
  timeout(type: CacheType): number {
    return this.timeouts[type];
  }

  /** Start the periodic cleanup: one pass per enabled cache now, then every timeout. */
  startCleanup(): void {
    for (const [type, cache] of this.caches) {
      this.runPass(type, cache);
      const t = setInterval(() => this.runPass(type, cache), cache.timeout * 1000);
      this.timers.push(t);
    }
  }

  /** One cleanup pass, in batches; resolves with the number of entries removed. */
  runPass(type: CacheType, cache: TlsScache): Promise<number> {
    if (this.running.has(type)) return Promise.resolve(0);
    this.running.add(type);
    let total = 0;
    return new Promise((resolve) => {
      const step = (): void => {
        if (this.closed) {
          this.running.delete(type);
          resolve(total);
          return;
        }
        const n = cache.sweep(CLEANUP_BATCH);
        total += n;
        if (n < CLEANUP_BATCH) {
          this.running.delete(type);
          resolve(total);
        } else {
          setImmediate(step);
        }
      };
      step();
    });
  }

  close(): void {
    this.closed = true;
    for (const t of this.timers) clearInterval(t);
    for (const c of this.caches.values()) c.close();
    this.caches.clear();
  }
}
