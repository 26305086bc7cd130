/*
 * NAME
 *   cache/session-cache - what dispatch and the cache table need of one session cache
 * SYNOPSIS
 *   interface SessionCache { cacheType timeout limits size shared lookup update delete sweep clear stats close }
 * DESCRIPTION
 *   TlsScache (cache/scache.ts) implements it over any SessionStore: it answers at once over
 *   an embedded store and returns promises over a network store (cache/stores/redis.ts).
 *   Dispatch treats both alike: a plain value is replied at once, a promise when it settles.
 *   Neither ever rejects: store failures are already turned into a miss or a claimed success.
 *   update() must have sealed (copied) the session before it returns, so that the caller
 *   may wipe its buffer at once even when the store call is still under way.
 */

import type { CacheType } from '../config/types.js';
import type { Maybe } from '../util/maybe.js';
import type { CacheLimits } from './limits.js';
import type { CacheStats } from './stats.js';

export interface SessionCache {
  readonly cacheType: CacheType;
  readonly timeout: number;
  readonly limits: CacheLimits;
  /** Entries held; -1 when not known here (a shared cache's size is the group's). */
  readonly size: number;
  /** The live session (a buffer the caller owns and wipes), or null. */
  lookup(cacheId: Buffer): Maybe<Buffer | null>;
  update(cacheId: Buffer, session: Uint8Array): Maybe<void>;
  /** True if an entry existed. */
  delete(cacheId: Buffer): Maybe<boolean>;
  /** Remove up to max expired entries; 0 for a store that expires records itself. */
  sweep(max: number): Maybe<number>;
  /** True when the entries are a group's (a shared store), not this host's own. */
  readonly shared: boolean;
  /** Remove every entry (the group's when shared); resolves to how many were removed. */
  clear(): Promise<number>;
  stats(): CacheStats;
  close(): void;
}
