/*
 * fake-timers - a TimerApi (src/util/timer.ts) whose timers fire only when the test says so.
 * Every requested delay is recorded; fireAll() runs everything pending (and returns how many).
 */

import { type TimerApi } from '../../src/util/timer.js';

export class FakeTimers implements TimerApi {
  readonly delays: number[] = [];
  private readonly pending = new Map<number, () => void>();
  private id = 0;

  setTimeout(fn: () => void, ms: number): { unref(): void } {
    this.delays.push(ms);
    const id = ++this.id;
    this.pending.set(id, fn);
    return Object.assign({ id }, { unref: (): void => undefined });
  }

  clearTimeout(t: unknown): void {
    this.pending.delete((t as { id: number }).id);
  }

  fireAll(): number {
    const fns = [...this.pending.values()];
    this.pending.clear();
    for (const f of fns) f();
    return fns.length;
  }

  get size(): number {
    return this.pending.size;
  }
}
