/*
 * NAME
 *   cache/limits - the size limits of one session cache
 * SYNOPSIS
 *   interface CacheLimits { maxEntries maxSize maxEntrySize }     NO_LIMITS
 * DESCRIPTION
 *   The *_tls_session_cache_max_entries, _max_size and _max_entry_size parameters (extensions
 *   to Postfix), in entries and bytes; 0 means no limit. The cache engine (cache/scache.ts)
 *   enforces them, the cache table (cache/caches.ts) reads them from the configuration, and
 *   a shared store (cache/stores/redis.ts) bounds what it reads by them.
 */

/** Limits of one cache, in entries and bytes; 0 means no limit. */
export interface CacheLimits {
  readonly maxEntries: number;
  readonly maxSize: number;
  readonly maxEntrySize: number;
}

export const NO_LIMITS: CacheLimits = Object.freeze({ maxEntries: 0, maxSize: 0, maxEntrySize: 0 });
