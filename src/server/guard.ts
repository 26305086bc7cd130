/*
 * NAME
 *   server/guard - process-wide bounds on clients: connections, buffered input, request time
 * SYNOPSIS
 *   const guard = new ConnectionGuard(limits, { warn, where })
 *   const slot = guard.admit(close)         null: over tlsmgr_connection_limit, refuse
 *   guard.account(slot, buffered, idle)     after every served read
 *   guard.release(slot)                     when the connection is gone
 *   guard.stop()
 * DESCRIPTION
 *   One tlsmgr serves every smtpd, smtp and tlsproxy of the host through one thread, so one
 *   client's input must not cost the others memory or time. Per connection the attr0
 *   reader already bounds each token and list (attr/reader.ts); this bounds the whole:
 *   - at most limits.connectionLimit connections at once (tlsmgr_connection_limit); one
 *     more is closed at once, without a greeting;
 *   - at most limits.inputBufferLimit bytes kept alive by unfinished requests of all
 *     connections together (tlsmgr_input_buffer_limit; per connection the reader's `held`:
 *     received chunks, collecting buffers and the complete values of an open list); past it
 *     the connection holding the most is closed, then the next, until the total is under
 *     the bound again. Postfix's clients hold a few kB between reads at most (a request over
 *     their 4 kB write buffer arrives in parts), so hostile holders go first; only when a
 *     hostile client spreads the bound thinly over thousands of connections can a large
 *     legitimate request be the biggest one;
 *   - a request that was started must be finished within limits.requestDeadline seconds
 *     (Postfix's ipc_timeout): it is counted from the read that left the request
 *     unfinished, and the connection is closed when it passes. A connection that is idle
 *     between requests has no deadline: smtpd keeps its connection for its whole life.
 *   Each of the three logs one warning per minute at most (util/ratelimit.ts), with the
 *   count of the ones suppressed. The deadline is checked by one timer for the whole
 *   process, which runs only while some request is unfinished, every quarter of the deadline
 *   (at least every 250 ms, at most every 10 s).
 * LIMITS
 *   The limits object is read at each check, so a reload that changes it applies at once
 *   (a lower connection limit closes no connection that is already open).
 * DIAGNOSTICS
 *   Warnings through deps.warn; nothing is thrown.
 * SEE ALSO
 *   server/connection.ts, master/multi_server.c (ipc_timeout), util/vstream.c (timeouts)
 */

import { systemClock, type Clock } from '../util/clock.js';
import { WarnLimiter } from '../util/ratelimit.js';

export interface GuardLimits {
  /** tlsmgr_connection_limit: connections served at once. */
  connectionLimit: number;
  /** tlsmgr_input_buffer_limit: bytes kept alive by unfinished requests of all connections. */
  inputBufferLimit: number;
  /** ipc_timeout, in seconds: the time a started request has to be finished. */
  requestDeadline: number;
}

export interface GuardDeps {
  readonly warn: (msg: string) => void;
  /** The socket's name in warnings ("tlsmgr socket"). */
  readonly where: string;
  /** Monotonic milliseconds (default performance.now). */
  readonly nowMs?: () => number;
  /** For the warning rate limit (default the system clock). */
  readonly clock?: Clock;
}

/** One admitted connection's share. */
export interface GuardSlot {
  /** Bytes its unfinished request keeps alive (the reader's held). */
  buffered: number;
  /** When its unfinished request started (monotonic ms), 0 when idle. */
  startedAt: number;
  /** Closes the connection now (it was chosen to go). */
  readonly close: () => void;
}

const MIN_TICK_MS = 250;
const MAX_TICK_MS = 10_000;

export class ConnectionGuard {
  private connections = 0;
  private total = 0;
  /** Connections that hold bytes or an unfinished request. */
  private readonly holding = new Set<GuardSlot>();
  private timer: NodeJS.Timeout | null = null;
  private readonly limiter: WarnLimiter;
  private readonly nowMs: () => number;

  constructor(
    private readonly limits: Readonly<GuardLimits>,
    private readonly deps: GuardDeps,
  ) {
    this.limiter = new WarnLimiter(deps.warn, deps.clock ?? systemClock);
    this.nowMs = deps.nowMs ?? (() => performance.now());
  }

  /** Connections open now. */
  get open(): number {
    return this.connections;
  }

  /** Bytes kept alive by unfinished requests of all connections now. */
  get buffered(): number {
    return this.total;
  }

  /** A new connection: its slot, or null when it is one too many (close it). */
  admit(close: () => void): GuardSlot | null {
    if (this.connections >= this.limits.connectionLimit) {
      this.limiter.warn(
        'connections',
        `${this.deps.where}: ${this.connections} connections reach tlsmgr_connection_limit = ${this.limits.connectionLimit} -- refusing a new connection`,
      );
      return null;
    }
    this.connections++;
    return { buffered: 0, startedAt: 0, close };
  }

  /*
   * account - after a read was served: `buffered` bytes of an unfinished request are held,
   * `idle` when none is pending. Cheap when idle (the common case for Postfix's clients).
   */
  account(slot: GuardSlot, buffered: number, idle: boolean): void {
    if (idle && slot.startedAt === 0 && slot.buffered === 0) return;
    this.total += buffered - slot.buffered;
    slot.buffered = buffered;
    if (idle) {
      slot.startedAt = 0;
      if (buffered === 0) this.holding.delete(slot);
    } else {
      if (slot.startedAt === 0) slot.startedAt = this.nowMs();
      this.holding.add(slot);
      this.arm();
    }
    if (this.total > this.limits.inputBufferLimit) this.shed();
  }

  /** The connection is gone (closed by either side). */
  release(slot: GuardSlot): void {
    if (this.holding.delete(slot)) this.total -= slot.buffered;
    slot.buffered = 0;
    slot.startedAt = 0;
    this.connections--;
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  /* shed - close the biggest holders until the total is within the bound */
  private shed(): void {
    while (this.total > this.limits.inputBufferLimit && this.holding.size > 0) {
      let biggest: GuardSlot | null = null;
      for (const s of this.holding) if (biggest === null || s.buffered > biggest.buffered) biggest = s;
      if (biggest === null) break;
      this.limiter.warn(
        'buffer',
        `${this.deps.where}: unfinished requests hold ${this.total} bytes, over tlsmgr_input_buffer_limit = ${this.limits.inputBufferLimit} -- closing the connection that holds the most (${biggest.buffered} bytes)`,
      );
      this.drop(biggest);
    }
  }

  private drop(slot: GuardSlot): void {
    if (this.holding.delete(slot)) this.total -= slot.buffered;
    slot.buffered = 0;
    slot.startedAt = 0;
    slot.close();
  }

  /* arm - the deadline timer runs while some request is unfinished */
  private arm(): void {
    if (this.timer !== null) return;
    const tick = Math.min(MAX_TICK_MS, Math.max(MIN_TICK_MS, (this.limits.requestDeadline * 1000) / 4));
    this.timer = setInterval(() => this.expire(), tick);
    this.timer.unref();
  }

  private expire(): void {
    const cutoff = this.nowMs() - this.limits.requestDeadline * 1000;
    for (const s of this.holding) {
      if (s.startedAt !== 0 && s.startedAt <= cutoff) {
        this.limiter.warn(
          'deadline',
          `${this.deps.where}: request not completed within ipc_timeout = ${this.limits.requestDeadline}s -- closing connection`,
        );
        this.drop(s);
      }
    }
    if (this.holding.size === 0) this.stop();
  }
}
