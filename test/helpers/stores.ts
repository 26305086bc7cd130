/*
 * NAME
 *   test/helpers/stores - the session stores under test, each made fresh
 * SYNOPSIS
 *   STORE_KINDS: readonly StoreKindUnderTest[]    memory and sqlite (answer now)
 *   kind.make(): { store, dir, cleanup() }
 *   ALL_STORE_KINDS: readonly AnyStoreKind[]      memory, sqlite and redis
 *   kind.start() / kind.stop()                    around a suite (a redis-server)
 *   kind.open(): Promise<StoreSet>                set.store(cacheType, limits?)  set.close()
 *   scacheOver(store, opts?): { cache, clock, warnings }   a TlsScache on that store
 *   now(m): T                                      the value of a Maybe that must answer now
 * DESCRIPTION
 *   The shared suites loop over these lists so that every store passes the same behaviour
 *   tests (style.md habit 7): store-conformance and cache-behaviour over ALL_STORE_KINDS,
 *   scache-limits and seal (synchronous, over the stores with a stamp index) over
 *   STORE_KINDS. The sqlite store lives in a fresh mkdtemp() directory that cleanup()
 *   removes. The redis kind runs one real redis-server per suite (test/helpers/redis.ts, a
 *   free port and a UNIX socket; stopped by stop()); each StoreSet gets its own key_prefix,
 *   connection and cluster key, so sets never see each other's entries. A new store kind is
 *   one entry in ALL_STORE_KINDS.
 * LIMITS
 *   The redis kind is skipped where redis-server is missing (a failure under CI=true).
 */

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CacheLimits } from '../../src/cache/limits.js';
import { TlsScache } from '../../src/cache/scache.js';
import { Sealer } from '../../src/util/seal.js';
import type { SessionStore } from '../../src/cache/store.js';
import { MemoryStore } from '../../src/cache/stores/memory.js';
import { RedisStore } from '../../src/cache/stores/redis.js';
import { SqliteStore } from '../../src/cache/stores/sqlite.js';
import { readRedisConfig } from '../../src/cluster/config.js';
import { parseClusterKeys } from '../../src/cluster/keyfile.js';
import { RedisLink } from '../../src/cluster/link.js';
import { FakeClock } from '../../src/util/clock.js';
import type { CacheType } from '../../src/config/types.js';
import { isPromise, type Maybe } from '../../src/util/maybe.js';
import { T0 } from './harness.js';
import { clusterKeyLine, linkReady, skipWithoutRedis, startRedis, writeClusterFiles, type RedisServer, type RespValue } from './redis.js';

/** A store that answers now (memory, SQLite): SessionStore with plain results. */
export interface StoreNow extends SessionStore {
  get(key: string): Buffer | undefined;
  put(key: string, record: Buffer, stamp: number, ttl?: number): void;
  delete(key: string): boolean;
  sweep(cutoff: number, max: number): number;
}

export interface MadeStore {
  readonly store: StoreNow;
  readonly dir: string;
  cleanup(): void;
}

export interface StoreKindUnderTest {
  readonly name: string;
  make(): MadeStore;
}

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'tlsmgr-store-'));
}

export const STORE_KINDS: readonly StoreKindUnderTest[] = [
  {
    name: 'memory',
    make() {
      const dir = tempDir();
      const store = new MemoryStore();
      return { store, dir, cleanup: () => (store.close(), rmSync(dir, { recursive: true, force: true })) };
    },
  },
  {
    name: 'sqlite',
    make() {
      const dir = tempDir();
      const store = SqliteStore.create(join(dir, 'scache.sqlite'));
      return { store, dir, cleanup: () => (store.close(), rmSync(dir, { recursive: true, force: true })) };
    },
  },
];

/** The stores of one cache table: one per cache type, sharing what the kind shares. */
export interface StoreSet {
  /** The store of a cache type (the cache's limits bound what a shared store reads). */
  store(cacheType: CacheType, limits?: CacheLimits): SessionStore;
  /** A raw command to the server behind the stores, for inspection (redis only). */
  readonly raw?: (...args: Array<string | Buffer>) => Promise<RespValue>;
  close(): Promise<void>;
}

export interface AnyStoreKind {
  readonly name: string;
  /** Why this kind cannot run here (a missing server), or false. */
  readonly skip: string | false;
  /** Start what the kind needs, once before its suite (before()); stop() after. */
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Fresh, empty stores. */
  open(): Promise<StoreSet>;
}

/* embedded - a kind of STORE_KINDS as an AnyStoreKind: one store per cache type */
function embedded(kind: StoreKindUnderTest): AnyStoreKind {
  return {
    name: kind.name,
    skip: false,
    start: async () => undefined,
    stop: async () => undefined,
    async open() {
      const made = new Map<CacheType, MadeStore>();
      return {
        store(cacheType) {
          let m = made.get(cacheType);
          if (m === undefined) {
            m = kind.make();
            made.set(cacheType, m);
          }
          return m.store;
        },
        async close() {
          for (const m of made.values()) m.cleanup();
        },
      };
    },
  };
}

/* redisKind - stores of a Redis group on a real redis-server, one key_prefix per set */
function redisKind(): AnyStoreKind {
  let server: RedisServer | undefined;
  let dir = '';
  let sets = 0;
  return {
    name: 'redis',
    skip: skipWithoutRedis(),
    async start() {
      server = await startRedis();
      dir = mkdtempSync(join(tmpdir(), 'tlsmgr-store-redis-'));
    },
    async stop() {
      await server?.destroy();
      if (dir !== '') rmSync(dir, { recursive: true, force: true });
    },
    async open() {
      const srv = server;
      if (srv === undefined) throw new Error('the redis kind was not started');
      const n = ++sets;
      const keyLine = clusterKeyLine(n);
      const files = writeClusterFiles(dir, srv, {
        name: `set${n}`, via: 'unix', keys: [keyLine], extra: [`key_prefix = set${n}:`],
        // Generous: a loaded machine must not turn a slow reply into a failure here.
        timeout: '10s',
      });
      const link = RedisLink.open(readRedisConfig(files.cf), { clock: new FakeClock(T0), warn: () => undefined });
      await linkReady(link);
      const keys = parseClusterKeys(keyLine, 'test keys');
      return {
        store: (cacheType, limits) => new RedisStore({ cacheType, link, keys, limits }),
        raw: (...args) => srv.command(...args),
        async close() {
          link.close();
        },
      };
    },
  };
}

/** Every store kind: the conformance and cache-behaviour suites run once over each. */
export const ALL_STORE_KINDS: readonly AnyStoreKind[] = [...STORE_KINDS.map(embedded), redisKind()];

/** The value of a Maybe that must answer now: a store or cache that answers now returns no promise. */
export function now<T>(m: Maybe<T>): T {
  if (isPromise(m)) throw new Error('answered with a promise where a plain value was due');
  return m;
}

export interface ScacheUnderTest {
  readonly cache: TlsScache;
  readonly clock: FakeClock;
  readonly warnings: string[];
  readonly sealer: Sealer;
}

/** A TlsScache (smtpd, timeout 120 s unless given) over `store`, with a FakeClock at T0. */
export function scacheOver(
  store: SessionStore,
  opts: { limits?: CacheLimits; timeout?: number; cacheType?: CacheType; smtputf8?: boolean } = {},
): ScacheUnderTest {
  const clock = new FakeClock(T0);
  const warnings: string[] = [];
  const sealer = Sealer.fresh();
  const cache = new TlsScache({
    cacheType: opts.cacheType ?? 'smtpd',
    dictName: 'btree:/test/smtpd_scache',
    timeout: opts.timeout ?? 120,
    store,
    sealer,
    clock,
    smtputf8: opts.smtputf8 ?? true,
    warn: (m) => warnings.push(m),
    limits: opts.limits,
  });
  return { cache, clock, warnings, sealer };
}

/** Wrap a test body: make a store of `kind`, run `fn` on it, always clean up. */
export function withStoreOf(kind: StoreKindUnderTest, fn: (s: StoreNow) => void): () => void {
  return () => {
    const m = kind.make();
    try {
      fn(m.store);
    } finally {
      m.cleanup();
    }
  };
}
