/*
 * NAME
 *   util/ratelimit - at most one warning of a kind per interval
 * SYNOPSIS
 *   const w = new WarnLimiter(warn, clock, intervalSeconds?); w.warn(kind, text)
 * DESCRIPTION
 *   A client that keeps sending oversize sessions, or a store whose records keep failing
 *   authentication, would otherwise write one log line per request. The first warning of a
 *   kind is logged; later ones within `interval` seconds (default 60) are only counted, and
 *   the count is appended to the next warning that is logged: "(N similar warnings
 *   suppressed)". The cache counters (cache/stats.ts) keep the exact totals.
 */

import type { Clock } from './clock.js';

/** Default seconds between two warnings of one kind. */
export const WARN_INTERVAL = 60;

export class WarnLimiter {
  private readonly last = new Map<string, { at: number; suppressed: number }>();

  constructor(
    private readonly sink: (msg: string) => void,
    private readonly clock: Clock,
    private readonly interval = WARN_INTERVAL,
  ) {}

  warn(kind: string, text: string): void {
    const now = this.clock.now();
    const s = this.last.get(kind);
    if (s !== undefined && now - s.at < this.interval) {
      s.suppressed++;
      return;
    }
    const extra = s !== undefined && s.suppressed > 0 ? ` (${s.suppressed} similar warnings suppressed)` : '';
    this.last.set(kind, { at: now, suppressed: 0 });
    this.sink(text + extra);
  }
}
