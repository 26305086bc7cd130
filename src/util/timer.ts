/*
 * NAME
 *   util/timer - timers of any length in whole seconds, injectable for tests
 * SYNOPSIS
 *   runAfter(seconds, fn, timers?): Cancel     runEvery(seconds, fn, timers?): Cancel
 *   interface TimerApi { setTimeout clearTimeout }     realTimers
 * DESCRIPTION
 *   Node caps a timer at TIMER_MAX_MS = 2^31-1 ms (about 24.8 days): a longer delay fires
 *   after 1 ms with a warning, so a 100-day cache timeout or a 97-day PRNG period would
 *   otherwise run every millisecond. runAfter() chains timers past the cap; runEvery()
 *   re-arms runAfter() after each run, so a period of any length is honoured exactly.
 *   Every timer is unref()ed: none keeps a process alive on its own (the daemon's listener
 *   does). The result of both cancels what is pending; cancelling twice is harmless.
 * LIMITS
 *   Seconds below 0 count as 0 (the next timer turn).
 */

/** The longest delay one Node timer can take, in ms. */
export const TIMER_MAX_MS = 2 ** 31 - 1;

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

/** Call fn every `seconds` (any length) until the result is called. */
export function runEvery(seconds: number, fn: () => void, timers: TimerApi = realTimers): Cancel {
  let cancel: Cancel = () => undefined;
  let stopped = false;
  const arm = (): void => {
    cancel = runAfter(
      seconds,
      () => {
        if (stopped) return;
        arm();
        fn();
      },
      timers,
    );
  };
  arm();
  return () => {
    stopped = true;
    cancel();
  };
}
