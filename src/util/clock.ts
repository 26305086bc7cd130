/*
 * NAME
 *   util/clock - injectable wall-clock time in whole Unix seconds
 * DESCRIPTION
 *   Cache timestamps and ticket-key `tout` are time(0) values in Postfix. Modules take a Clock
 *   so that tests can drive expiry and key rotation without sleeping.
 */

export interface Clock {
  /** Current Unix time in whole seconds. */
  now(): number;
}

export const systemClock: Clock = {
  now: () => Math.floor(Date.now() / 1000),
};

/** A clock that moves only when told to (tests). */
export class FakeClock implements Clock {
  constructor(private t: number) {}
  now(): number {
    return this.t;
  }
  set(t: number): void {
    this.t = t;
  }
  advance(seconds: number): void {
    this.t += seconds;
  }
}
