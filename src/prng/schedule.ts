/*
 * NAME
 *   prng/schedule - pseudo-random intervals for the reseed and exchange-file timers
 * SYNOPSIS
 *   clampPeriod(seconds): number
 *   nextInterval(period, randomByte): number
 *   runAfter(seconds, fn, timers?): Cancel
 * DESCRIPTION
 *   tlsmgr_reseed_event() and tlsmgr_prng_exch_event() re-arm themselves after
 *   floor(period * r / 255) seconds, r being one random byte from the pool, so outsiders
 *   cannot predict when the pool is reseeded or the exchange file is written (spec 4.4). The
 *   period is clamped once to INT_MAX / 255 = 8421504 s so that the product fits an int.
 *   So the next run is in [0, period] in steps of period/255; 0 means "on the next turn".
 *   runAfter() is setTimeout for whole seconds of any size: Node caps a timer at 2^31-1 ms
 *   (about 24.8 days; a longer delay fires after 1 ms with a warning), and the clamped period
 *   is 97 days, so long waits are chained. Its timers are unref()ed: they never keep a
 *   process alive on their own (the daemon's listener does).
 * SEE ALSO
 *   tlsmgr/tlsmgr.c tlsmgr_post_init(), tlsmgr_reseed_event(), tlsmgr_prng_exch_event()
 */

/** INT_MAX / UCHAR_MAX in C integer arithmetic. */
export const PERIOD_MAX = Math.floor(2147483647 / 255); // 8421504
/** The longest delay one Node timer can take, in ms. */
export const TIMER_MAX_MS = 2 ** 31 - 1;

export function clampPeriod(seconds: number): number {
  return Math.min(seconds, PERIOD_MAX);
}

/** Seconds until the next run: floor(period * r / 255), period clamped, r in 0..255. */
export function nextInterval(period: number, randomByte: number): number {
  if (!Number.isInteger(randomByte) || randomByte < 0 || randomByte > 255) throw new RangeError(`bad random byte ${randomByte}`);
  return Math.floor((clampPeriod(period) * randomByte) / 255);
}

export interface TimerApi {
  setTimeout(fn: () => void, ms: number): { unref?(): unknown };
  clearTimeout(t: unknown): void;
}

export const realTimers: TimerApi = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (t) => clearTimeout(t as NodeJS.Timeout),
};

export type Cancel = () => void;

/** Call fn after `seconds` (chained timers past TIMER_MAX_MS); the result cancels it. */
export function runAfter(seconds: number, fn: () => void, timers: TimerApi = realTimers): Cancel {
  let remaining = Math.max(0, seconds) * 1000;
  let handle: unknown = null;
  let cancelled = false;
  const arm = (): void => {
    const step = Math.min(remaining, TIMER_MAX_MS);
    remaining -= step;
    const t = timers.setTimeout(() => {
      handle = null;
      if (cancelled) return;
      if (remaining > 0) arm();
      else fn();
    }, step);
    t.unref?.();
    handle = t;
  };
  arm();
  return () => {
    cancelled = true;
    if (handle !== null) timers.clearTimeout(handle);
    handle = null;
  };
}
