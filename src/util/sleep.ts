/*
 * NAME
 *   util/sleep - block the process for a while (Postfix's sleep() before exit and between
 *   lock attempts)
 * SYNOPSIS
 *   sleepSync(ms)
 * DESCRIPTION
 *   Used only where Postfix itself blocks: the 1 s pause of msg_fatal() before exit (so that
 *   master(8) does not respawn a failing daemon in a tight loop) and the back-off between
 *   attempts to lock the PRNG exchange file. Nothing else may block the event loop.
 */

const cell = new Int32Array(new SharedArrayBuffer(4));

export function sleepSync(ms: number): void {
  Atomics.wait(cell, 0, 0, ms);
}
