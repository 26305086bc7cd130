/*
 * NAME
 *   prng/schedule - pseudo-random intervals for the reseed and exchange-file timers
 * SYNOPSIS
 *   clampPeriod(seconds): number
 *   nextInterval(period, randomByte): number
 * DESCRIPTION
 *   tlsmgr_reseed_event() and tlsmgr_prng_exch_event() re-arm themselves after
 *   floor(period * r / 255) seconds, r being one random byte from the pool, so outsiders
 *   cannot predict when the pool is reseeded or the exchange file is written (spec 4.4). The
 *   period is clamped once to INT_MAX / 255 = 8421504 s so that the product fits an int.
 *   So the next run is in [0, period] in steps of period/255; 0 means "on the next turn".
 *   The clamped period is 97 days, past Node's timer cap: the timers are util/timer.ts's.
 * SEE ALSO
 *   tlsmgr/tlsmgr.c tlsmgr_post_init(), tlsmgr_reseed_event(), tlsmgr_prng_exch_event()
 */

/** INT_MAX / UCHAR_MAX in C integer arithmetic. */
export const PERIOD_MAX = Math.floor(2147483647 / 255); // 8421504

export function clampPeriod(seconds: number): number {
  return Math.min(seconds, PERIOD_MAX);
}

/** Seconds until the next run: floor(period * r / 255), period clamped, r in 0..255. */
export function nextInterval(period: number, randomByte: number): number {
  if (!Number.isInteger(randomByte) || randomByte < 0 || randomByte > 255) throw new RangeError(`bad random byte ${randomByte}`);
  return Math.floor((clampPeriod(period) * randomByte) / 255);
}
