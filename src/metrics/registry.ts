/*
 * NAME
 *   metrics/registry - tlsmgr's Prometheus metrics, read from the running service's parts
 * SYNOPSIS
 *   const metrics = new TlsmgrMetrics(sources, { processMetrics })
 *   await metrics.text()          metrics.contentType          METRIC_PREFIX
 * DESCRIPTION
 *   One prom-client Registry with the metrics of issue 15, all named postfix_tlsmgr_*,
 *   counters ending in _total, in base units (seconds, bytes). Every value is read from
 *   the service when the registry is asked (prom-client collect() callbacks and
 *   metrics/histogram.ts): the request path never calls prom-client. Counters are
 *   cumulative since the daemon started.
 *     cache_lookups_total{cache,result="hit|miss"}     cache/stats.ts hits, misses
 *     cache_updates_total{cache}                       stores
 *     cache_deletes_total{cache}                       deletes ("delete" requests)
 *     cache_removed_total{cache,reason="expired|evicted|corrupt|refused"}
 *                                                      entries removed for that reason
 *                                                      (refused: updates not stored, oversize)
 *     cache_entries{cache}, cache_bytes{cache}         gauges; not given for a shared (redis:)
 *                                                      cache, whose size is the group's
 *     ticket_key_lookups_total{result="current|previous|unknown"}   metrics/meter.ts
 *     ticket_keys_created_total                        keys made by this daemon's own ring
 *                                                      (tickets/keys.ts created)
 *     seed_requests_total, seed_bytes_total            seed requests answered with bytes
 *     connections                                      client connections open now
 *     requests_total{request}                          requests served, per request name
 *     request_duration_seconds{request}                histogram (metrics/meter.ts buckets)
 *     redis_roundtrips_total{link}, redis_errors_total{link}, redis_timeouts_total{link},
 *     redis_fallbacks_total{link}                      per Redis connection (link: its
 *                                                      redis: configuration file)
 *   and, with processMetrics, prom-client's default process and Node.js metrics with the
 *   same prefix (postfix_tlsmgr_process_cpu_seconds_total, ..._resident_memory_bytes,
 *   ..._nodejs_eventloop_lag_seconds, ...). Caches appear only when enabled (cache is
 *   smtpd, smtp or lmtp); every request name always appears.
 * SECURITY
 *   Labels are fixed names (cache types, request names, results, reasons) and the Redis
 *   configuration file's path: never a cache_id, a session, a key or key name, a seed.
 * LIMITS
 *   After chroot (-c) /proc is out of reach by path. The memory gauges (resident, virtual,
 *   heap) are read from a descriptor of /proc/self/status opened when the registry is made,
 *   before the chroot, so they keep working; the open and maximum file descriptors, which
 *   prom-client reads by path, then stay 0. CPU time and the Node.js heap and event loop
 *   figures come from Node.js itself.
 * SEE ALSO
 *   metrics/meter.ts, metrics/histogram.ts, daemon/control-answers.ts (the metrics command),
 *   daemon/metrics-http.ts (GET /metrics)
 */

import { openSync, readSync } from 'node:fs';
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { CacheTable } from '../cache/caches.js';
import type { CacheStats } from '../cache/stats.js';
import type { LinkInfo } from '../cluster/members.js';
import type { CacheType } from '../config/types.js';
import { CountedHistogram } from './histogram.js';
import { REQUEST_NAMES, type ServiceMeter } from './meter.js';

export const METRIC_PREFIX = 'postfix_tlsmgr_';

/** What the metrics are read from: the service's parts. */
export interface MetricSources {
  /** The caches' counters and sizes (cache/caches.ts). */
  readonly caches: Pick<CacheTable, 'stats'>;
  readonly meter: ServiceMeter;
  /** Ticket keys created by this daemon's own ring. */
  readonly ticketKeysCreated: () => number;
  /** Client connections open now. */
  readonly connections: () => number;
  /** The Redis connections and their counters. */
  readonly links: () => readonly LinkInfo[];
}

export interface TlsmgrMetricsOptions {
  /** prom-client's default process and Node.js metrics (default true). */
  readonly processMetrics?: boolean;
}

const REMOVED_REASONS = ['expired', 'evicted', 'corrupt', 'refused'] as const;

/** prom-client's memory gauges, with the /proc/self/status field (kB) each is read from. */
const PROC_STATUS_GAUGES = [
  ['process_resident_memory_bytes', 'VmRSS', 'Resident memory size in bytes.'],
  ['process_virtual_memory_bytes', 'VmSize', 'Virtual memory size in bytes.'],
  ['process_heap_bytes', 'VmData', 'Process heap size in bytes.'],
] as const;

/* ProcStatus - /proc/self/status, opened once, read again from offset 0 at each scrape */
class ProcStatus {
  /** The file is about 1.5 kB; what does not fit is not read. */
  private readonly buf = Buffer.alloc(8192);

  private constructor(private readonly fd: number) {}

  static open(): ProcStatus | null {
    try {
      return new ProcStatus(openSync('/proc/self/status', 'r'));
    } catch {
      return null;
    }
  }

  /** A "<field>:  <n> kB" line's n, or null. */
  field(name: string): number | null {
    let n: number;
    try {
      n = readSync(this.fd, this.buf, 0, this.buf.length, 0);
    } catch {
      return null;
    }
    const m = new RegExp(`^${name}:\\s+(\\d+) kB$`, 'm').exec(this.buf.toString('latin1', 0, n));
    return m === null ? null : Number(m[1]);
  }
}

export class TlsmgrMetrics {
  readonly registry = new Registry();

  constructor(sources: MetricSources, opts: TlsmgrMetricsOptions = {}) {
    const registers = [this.registry];
    const p = METRIC_PREFIX;
    const { caches, meter } = sources;
    // A counter set from a cumulative figure: reset, then its value added per label set.
    type Fill<L extends string> = (add: (labels: Partial<Record<L, string>>, value: number) => void) => void;
    const counter = <L extends string>(name: string, help: string, labelNames: readonly L[], fill: Fill<L>): void => {
      new Counter<L>({
        name: p + name,
        help,
        labelNames,
        registers,
        collect() {
          this.reset();
          fill((labels, value) => this.inc(labels, value));
        },
      });
    };
    const gauge = <L extends string>(name: string, help: string, labelNames: readonly L[], fill: Fill<L>): void => {
      new Gauge<L>({
        name: p + name,
        help,
        labelNames,
        registers,
        collect() {
          this.reset();
          fill((labels, value) => this.set(labels, value));
        },
      });
    };
    const cacheStats = (): [CacheType, CacheStats][] => [...caches.stats()];

    counter('cache_lookups_total', 'TLS session cache lookups, by result (hit: found and valid).', ['cache', 'result'], (add) => {
      for (const [cache, s] of cacheStats()) {
        add({ cache, result: 'hit' }, s.hits);
        add({ cache, result: 'miss' }, s.misses);
      }
    });
    counter('cache_updates_total', 'TLS session cache updates stored.', ['cache'], (add) => {
      for (const [cache, s] of cacheStats()) add({ cache }, s.stores);
    });
    counter('cache_deletes_total', 'TLS session cache entries removed by delete requests.', ['cache'], (add) => {
      for (const [cache, s] of cacheStats()) add({ cache }, s.deletes);
    });
    counter(
      'cache_removed_total',
      'TLS session cache entries removed (expired, evicted under a limit, corrupt) or updates refused as oversize.',
      ['cache', 'reason'],
      (add) => {
        for (const [cache, s] of cacheStats()) for (const reason of REMOVED_REASONS) add({ cache, reason }, s[reason]);
      },
    );
    gauge('cache_entries', 'TLS session cache entries now (not given for a cache shared through Redis).', ['cache'], (set) => {
      for (const [cache, s] of cacheStats()) if (s.entries >= 0) set({ cache }, s.entries);
    });
    gauge('cache_bytes', 'TLS session cache size now in bytes (not given for a cache shared through Redis).', ['cache'], (set) => {
      for (const [cache, s] of cacheStats()) if (s.entries >= 0) set({ cache }, s.bytes);
    });
    counter('ticket_key_lookups_total', 'Session ticket key lookups, by the key found (current, previous) or unknown.', ['result'], (add) => {
      add({ result: 'current' }, meter.ticketCurrent);
      add({ result: 'previous' }, meter.ticketPrevious);
      add({ result: 'unknown' }, meter.ticketUnknown);
    });
    counter('ticket_keys_created_total', "Session ticket keys created by this daemon's own key ring.", [], (add) => add({}, sources.ticketKeysCreated()));
    counter('seed_requests_total', 'Seed requests answered with random bytes.', [], (add) => add({}, meter.seedRequests));
    counter('seed_bytes_total', 'Random seed bytes handed out.', [], (add) => add({}, meter.seedBytes));
    gauge('connections', 'Client connections open now.', [], (set) => set({}, sources.connections()));
    counter('requests_total', 'Requests served, by request name.', ['request'], (add) => {
      REQUEST_NAMES.forEach((request, i) => add({ request }, meter.requests.totals[i]));
    });
    new CountedHistogram({
      name: `${p}request_duration_seconds`,
      help: 'Time to serve a request, from the dispatcher taking it to its reply being ready, in seconds.',
      label: 'request',
      values: REQUEST_NAMES,
      counts: meter.requests,
      registers,
    });
    const redis = (name: 'roundtrips' | 'errors' | 'timeouts' | 'fallbacks', help: string): void => {
      counter(`redis_${name}_total`, help, ['link'], (add) => {
        for (const l of sources.links()) add({ link: l.source }, l.counters[name]);
      });
    };
    redis('roundtrips', 'Calls sent to Redis, per Redis connection (link: its redis: configuration file).');
    redis('errors', 'Redis calls that the server or the connection failed.');
    redis('timeouts', 'Redis calls without a reply within the timeout.');
    redis('fallbacks', 'Redis calls not made or not answered: tlsmgr served without Redis.');
    if (opts.processMetrics !== false) {
      collectDefaultMetrics({ register: this.registry, prefix: p });
      // prom-client reads these by path, which a chroot hides: read them from a descriptor
      // opened now, before the chroot, instead.
      const status = ProcStatus.open();
      if (status !== null) {
        for (const [name, field, help] of PROC_STATUS_GAUGES) {
          this.registry.removeSingleMetric(p + name);
          gauge(name, help, [], (set) => {
            const kb = status.field(field);
            if (kb !== null) set({}, kb * 1024);
          });
        }
      }
    }
  }

  /** The Content-Type of text(): the Prometheus text format 0.0.4. */
  get contentType(): string {
    return this.registry.contentType;
  }

  /** The text exposition of every metric. */
  text(): Promise<string> {
    return this.registry.metrics();
  }
}
