/*
 * fake-timers - a TimerApi (src/util/timer.ts) whose timers fire only when the test says so.
 * Every requested delay is recorded; fireAll() runs everything pending (and returns how many);
 * advance(ms) moves a virtual clock and runs, in due order, every timer due by then
 * (including timers armed by those it runs), and returns how many ran.
 */

import { type TimerApi } from '../../src/util/timer.js';

export class FakeTimers implements TimerApi {
  readonly delays: number[] = [];
  private readonly pending = new Map<number, { fn: () => void; due: number }>();
  private id = 0;
  /** Virtual milliseconds since the start (advance()). */
  now = 0;

  setTimeout(fn: () => void, ms: number): { unref(): void } {
    this.delays.push(ms);
    const id = ++this.id;
    this.pending.set(id, { fn, due: this.now + ms });
    return Object.assign({ id }, { unref: (): void => undefined });
  }

  clearTimeout(t: unknown): void {
    this.pending.delete((t as { id: number }).id);
  }

  fireAll(): number {
    const fns = [...this.pending.values()];
    this.pending.clear();
    for (const f of fns) f.fn();
    return fns.length;
  }

  advance(ms: number): number {
    const until = this.now + ms;
    let ran = 0;
    // Bounded: a timer that re-arms itself with a delay of 0 cannot loop here for ever.
    for (let i = 0; i < 1_000_000; i++) {
      let next: [number, { fn: () => void; due: number }] | undefined;
      for (const e of this.pending) if (e[1].due <= until && (next === undefined || e[1].due < next[1].due)) next = e;
      if (next === undefined) break;
      this.pending.delete(next[0]);
      this.now = next[1].due;
      next[1].fn();
      ran++;
    }
    this.now = until;
    return ran;
  }

  get size(): number {
    return this.pending.size;
  }
}
