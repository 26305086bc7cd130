/*
 * NAME
 *   test/helpers/signal - wait for a condition that events make true, without polling
 * SYNOPSIS
 *   const s = new Signal()
 *   s.wake()                            something changed (data arrived, a record was logged)
 *   await s.until(cond, ms, what)       cond() now, or at a later wake(); else reject
 * DESCRIPTION
 *   The test wires wake() to the events that can change what it waits for (a socket's data,
 *   a child's stderr, a datagram, a server callback); until() checks cond() at once and
 *   after every wake(), and resolves the first time it holds. Nothing sleeps: a wait ends
 *   as soon as its event arrives, however slow the machine.
 * LIMITS
 *   Every wait has a timeout (ms); when it expires the promise rejects with "timed out after
 *   <ms> ms waiting for <what>" (what may be a function, called then, to show the state).
 */

export class Signal {
  private readonly waiters = new Set<() => void>();

  /** Re-check every pending wait. */
  wake(): void {
    for (const w of [...this.waiters]) w();
  }

  /** Resolve when cond() holds: now, or at a later wake(); reject after ms. */
  until(cond: () => boolean, ms: number, what: string | (() => string)): Promise<void> {
    return new Promise((resolve, reject) => {
      if (cond()) return resolve();
      const check = (): void => {
        if (!cond()) return;
        this.waiters.delete(check);
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`timed out after ${ms} ms waiting for ${typeof what === 'string' ? what : what()}`));
      }, ms);
      this.waiters.add(check);
    });
  }
}
