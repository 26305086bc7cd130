/*
 * NAME
 *   metrics/meter - the request path's own counters: plain numbers, read at scrape time
 * SYNOPSIS
 *   const meter = new ServiceMeter()
 *   new MeteredDispatcher(deps, meter)          requests and their durations
 *   meter.countSeed(seed)                       seed requests answered, seed bytes
 *   new MeteredTicketKeys(source, meter)        ticket key lookups: current, previous, unknown
 *   REQUEST_NAMES, DURATION_BUCKETS, BucketCounts
 * DESCRIPTION
 *   Counting must not slow the request path (issue 15: at most 3% of requests/s), so the
 *   request path only adds to numbers here; metrics/registry.ts turns them into Prometheus
 *   metrics when someone asks (tlsmgr-ctl metrics, GET /metrics). Nothing here calls
 *   prom-client. Every counter is cumulative since start.
 *   - MeteredDispatcher is the dispatcher (server/dispatch.ts) with one performance.now()
 *     before and one after each request: per request name (REQUEST_NAMES) the count, the
 *     sum of durations and a histogram over DURATION_BUCKETS (BucketCounts). A request is
 *     counted when its reply is ready: at once for a local cache, when Redis answers for a
 *     shared one (a promise that settles, fulfilled or not). The duration is the dispatcher's
 *     work (cache or key lookup, sealing, reply encoding); reading and scanning the request,
 *     writing the reply and the SQLite commit at the end of the event-loop turn are not in
 *     it. Requests refused before the dispatcher (malformed, unknown names) are not counted.
 *   - countSeed() wraps the PRNG's seed function: a seed request that got its bytes counts
 *     once in seedRequests and its size in seedBytes (a bogus size or a failing PRNG: not).
 *   - MeteredTicketKeys wraps the ticket key source (local ring or Redis group): a lookup
 *     answered with the current key counts as "current", with an older key still decrypting
 *     as "previous", a name not found as "unknown" (timeout 0, keys disabled: not counted).
 *     The current key is the one this daemon last handed out for encryption (a lookup
 *     without a name) or made current by rotate; before any such lookup, and after revoke,
 *     a key that may still encrypt (tout > now) is taken as current. Its name is kept for
 *     the comparison only, never shown, and wiped on revoke.
 *   DURATION_BUCKETS, seconds: 10 us, 25 us, 50 us, 100 us, 250 us, 500 us, 1 ms, 2.5 ms,
 *   5 ms, 10 ms, 25 ms, 50 ms, 100 ms, 250 ms, 500 ms, 1 s (and +Inf): a local request takes
 *   a few microseconds to tens of microseconds, a Redis round trip a fraction of a
 *   millisecond up to the link's timeout.
 * LIMITS
 *   Counts are doubles: exact up to 2^53.
 * SEE ALSO
 *   metrics/registry.ts, metrics/histogram.ts, server/dispatch.ts, tickets/keys.ts
 */

import { REQ, type RequestName } from '../protocol/names.js';
import type { Request } from '../protocol/requests.js';
import { Dispatcher, type DispatchDeps } from '../server/dispatch.js';
import type { TicketKeyInfo, TicketKeyResult } from '../tickets/keys.js';
import type { TicketKeySource } from '../tickets/shared.js';
import { then, type Maybe } from '../util/maybe.js';
import { TICKET } from '../util/tktkey.js';

/** The request names, in the order of the metric series. */
export const REQUEST_NAMES: readonly RequestName[] = [REQ.SEED, REQ.POLICY, REQ.LOOKUP, REQ.UPDATE, REQ.DELETE, REQ.TKTKEY];

/** Upper bounds of the request duration histogram, in seconds (see DESCRIPTION). */
export const DURATION_BUCKETS: readonly number[] = [
  0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
];

/*
 * BucketCounts - a fixed histogram per series: counts (not cumulative) per bucket, the
 * last bucket past the highest bound (+Inf), the sum of the observed values and their count.
 */
export class BucketCounts {
  /** series * (bounds.length + 1) counts; [s * stride + b]. */
  readonly counts: Float64Array;
  readonly sums: Float64Array;
  readonly totals: Float64Array;
  private readonly stride: number;

  constructor(
    readonly bounds: readonly number[],
    readonly series: number,
  ) {
    this.stride = bounds.length + 1;
    this.counts = new Float64Array(series * this.stride);
    this.sums = new Float64Array(series);
    this.totals = new Float64Array(series);
  }

  observe(series: number, value: number): void {
    const bounds = this.bounds;
    let b = 0;
    while (b < bounds.length && value > bounds[b]) b++;
    this.counts[series * this.stride + b]++;
    this.sums[series] += value;
    this.totals[series]++;
  }

  /** Observations of `series` at or under bounds[b] (b = bounds.length: all of them). */
  cumulative(series: number, b: number): number {
    let n = 0;
    const base = series * this.stride;
    for (let i = 0; i <= b; i++) n += this.counts[base + i];
    return n;
  }
}

/* requestIndex - the series of a request name (REQUEST_NAMES order) */
function requestIndex(name: RequestName): number {
  switch (name) {
    case REQ.SEED:
      return 0;
    case REQ.POLICY:
      return 1;
    case REQ.LOOKUP:
      return 2;
    case REQ.UPDATE:
      return 3;
    case REQ.DELETE:
      return 4;
    default:
      return 5;
  }
}

export class ServiceMeter {
  /** Per request name (REQUEST_NAMES): served requests and their durations in seconds. */
  readonly requests = new BucketCounts(DURATION_BUCKETS, REQUEST_NAMES.length);
  seedRequests = 0;
  seedBytes = 0;
  ticketCurrent = 0;
  ticketPrevious = 0;
  ticketUnknown = 0;

  /** A request of series i that started at t0 (performance.now()) is answered now. */
  done(i: number, t0: number): void {
    this.requests.observe(i, (performance.now() - t0) / 1000);
  }

  /** The seed function, counting the requests it answers and the bytes it gives. */
  countSeed(seed: (n: number) => Buffer): (n: number) => Buffer {
    return (n) => {
      const bytes = seed(n);
      if (bytes.length === n) {
        this.seedRequests++;
        this.seedBytes += n;
      }
      return bytes;
    };
  }
}

/* MeteredDispatcher - the dispatcher, timing and counting every request it serves */
export class MeteredDispatcher extends Dispatcher {
  constructor(
    deps: DispatchDeps,
    private readonly meter: ServiceMeter,
  ) {
    super(deps);
  }

  override handle(req: Request): Maybe<Buffer> {
    const i = requestIndex(req.request);
    const t0 = performance.now();
    let reply: Maybe<Buffer>;
    try {
      reply = super.handle(req);
    } catch (err) {
      this.meter.done(i, t0);
      throw err;
    }
    if (reply instanceof Promise) return reply.finally(() => this.meter.done(i, t0));
    this.meter.done(i, t0);
    return reply;
  }
}

/* MeteredTicketKeys - a ticket key source that counts its lookups' results */
export class MeteredTicketKeys implements TicketKeySource {
  /** The name of the key last handed out for encryption (valid while `known`). */
  private readonly currentName = Buffer.alloc(TICKET.NAMELEN);
  private known = false;

  constructor(
    private readonly source: TicketKeySource,
    private readonly meter: ServiceMeter,
  ) {}

  key(keyname: Buffer | null, now: number, timeout: number): Maybe<TicketKeyResult> {
    const r = this.source.key(keyname, now, timeout);
    if (r instanceof Promise) return then(r, (res) => this.count(keyname, res, now));
    return this.count(keyname, r, now);
  }

  clear(): void {
    this.forget();
    this.source.clear();
  }

  info(now: number, timeout: number): TicketKeyInfo {
    return this.source.info(now, timeout);
  }

  async rotate(now: number, timeout: number): Promise<void> {
    await this.source.rotate(now, timeout);
    this.forget();
    // The new key is current now (a source that can rotate has it at hand: no key is made).
    const r = this.source.key(null, now, timeout);
    if (!(r instanceof Promise)) this.remember(r);
  }

  async revoke(now: number, timeout: number): Promise<void> {
    await this.source.revoke(now, timeout);
    this.forget();
  }

  private forget(): void {
    this.known = false;
    this.currentName.fill(0);
  }

  /* remember - the key handed out for encryption, by name */
  private remember(r: TicketKeyResult): void {
    if (r.status !== 'ok') return;
    const record = r.key.record;
    if (this.known && record.compare(this.currentName, 0, TICKET.NAMELEN, 0, TICKET.NAMELEN) === 0) return;
    record.copy(this.currentName, 0, 0, TICKET.NAMELEN);
    this.known = true;
  }

  private count(keyname: Buffer | null, r: TicketKeyResult, now: number): TicketKeyResult {
    const m = this.meter;
    if (r.status === 'nokey') {
      m.ticketUnknown++;
    } else if (r.status === 'ok') {
      const record = r.key.record;
      if (keyname === null || keyname.length === 0) {
        m.ticketCurrent++;
        this.remember(r);
      } else if (this.known ? record.compare(this.currentName, 0, TICKET.NAMELEN, 0, TICKET.NAMELEN) === 0 : r.key.tout > now) {
        m.ticketCurrent++;
      } else {
        m.ticketPrevious++;
      }
    }
    return r;
  }
}
