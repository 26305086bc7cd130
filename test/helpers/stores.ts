/*
 * NAME
 *   test/helpers/stores - the session stores under test, each made fresh in a temp directory
 * SYNOPSIS
 *   STORE_KINDS: readonly StoreKindUnderTest[]    memory and sqlite
 *   kind.make(): { store, dir, cleanup() }
 *   scacheOver(store, opts?): { cache, clock, warnings }   a TlsScache on that store
 * DESCRIPTION
 *   The shared suites (store-conformance, scache-limits, seal) loop over STORE_KINDS so that
 *   every store passes the same behaviour tests (style.md habit 7). The sqlite store lives in
 *   a fresh mkdtemp() directory that cleanup() removes.
 */

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TlsScache, type CacheLimits } from '../../src/cache/scache.js';
import { Sealer } from '../../src/util/seal.js';
import type { SessionStore } from '../../src/cache/store.js';
import { MemoryStore } from '../../src/cache/stores/memory.js';
import { SqliteStore } from '../../src/cache/stores/sqlite.js';
import { FakeClock } from '../../src/util/clock.js';
import type { CacheType } from '../../src/config/types.js';
import { T0 } from './harness.js';

export interface MadeStore {
  readonly store: SessionStore;
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
export function withStoreOf(kind: StoreKindUnderTest, fn: (s: SessionStore) => void): () => void {
  return () => {
    const m = kind.make();
    try {
      fn(m.store);
    } finally {
      m.cleanup();
    }
  };
}
