/*
 * NAME
 *   cache/stats - per-cache counters and their log line
 * SYNOPSIS
 *   COUNTER_NAMES; newCounters(): CacheCounters
 *   formatStats(cacheType, stats: CacheStats): string
 * DESCRIPTION
 *   Counters are cumulative since start (never reset by logging), so that a metrics exporter
 *   can read them as monotonic counters; `entries` and `bytes` are gauges read from the
 *   store (-1 for a shared remote cache, whose size is the group's; then not logged). Meaning:
 *     hits, misses   lookups answered OK / not found (miss includes expired, corrupt, non-UTF-8)
 *     stores         updates stored; replaced: of those, updates that replaced an entry
 *     deletes        entries removed by "delete" requests
 *     expired        entries removed because their timeout passed (cleanup, lookup, room)
 *     evicted        live entries removed to make room under a limit (before expiry)
 *     refused        updates refused as oversize (answered OK, as Postfix answers updates)
 *     corrupt        records that failed authentication or decoding (removed)
 *   The line never contains cache ids or session data.
 */

import type { CacheType } from '../config/types.js';

export const COUNTER_NAMES = ['hits', 'misses', 'stores', 'replaced', 'deletes', 'expired', 'evicted', 'refused', 'corrupt'] as const;
export type CounterName = (typeof COUNTER_NAMES)[number];
export type CacheCounters = Record<CounterName, number>;

export interface CacheStats extends Readonly<CacheCounters> {
  readonly entries: number;
  readonly bytes: number;
}

export function newCounters(): CacheCounters {
  return { hits: 0, misses: 0, stores: 0, replaced: 0, deletes: 0, expired: 0, evicted: 0, refused: 0, corrupt: 0 };
}

/** "statistics: smtpd TLS session cache: entries=.. bytes=.. hits=.. ..." */
export function formatStats(cacheType: CacheType, s: CacheStats): string {
  // A shared (remote) cache does not know the group's entries and bytes: it reports -1.
  const gauges = s.entries < 0 ? [] : [`entries=${s.entries}`, `bytes=${s.bytes}`];
  const fields = [...gauges, ...COUNTER_NAMES.map((n) => `${n}=${s[n]}`)];
  return `statistics: ${cacheType} TLS session cache: ${fields.join(' ')}`;
}
