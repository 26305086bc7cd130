/*
 * NAME
 *   daemon/control-answers - what the control socket's commands do and answer
 * SYNOPSIS
 *   answerControl(request: unknown, d: DaemonControl, about: DaemonAbout): Promise<ControlReply>
 *   type ControlRequest, ControlReply, StatusReply, FlushReply
 * DESCRIPTION
 *   One JSON request object in, one JSON reply object out (daemon/control.ts carries them as
 *   lines). Requests:
 *     {"cmd":"ping"}                          -> {"ok":true}
 *     {"cmd":"status"}                        -> {"ok":true, version, pid, mode, started,
 *                                                 uptime, caches, ticketKeys, prng, redis}
 *     {"cmd":"flush","cache":"smtpd|smtp|lmtp|all","cluster":false}
 *                                             -> {"ok":true,"flushed":[{"cache","removed"}]}
 *     {"cmd":"keys","action":"rotate|revoke"} -> {"ok":true, "ticketKeys": {...}}
 *     {"cmd":"metrics"}                       -> {"ok":true, "contentType": "<type>",
 *                                                 "text": "<Prometheus text exposition>"}
 *   Any failure is {"ok":false,"error":"<text>"}.
 *   status: per cache type its database and timeout, and for an enabled cache whether it is
 *   shared (redis:), its entries and bytes (-1: a shared cache's are the group's), limits
 *   and counters (cache/stats.ts: hits + misses are the lookups, stores the updates); the
 *   ticket keys' count and the current key's age and seconds left to encrypt and decrypt
 *   (tickets/keys.ts info()), and for shared keys the Redis group's generation (null before
 *   it was read); the PRNG's source and the times of the last reseed and
 *   exchange-file save (prng/manager.ts info(); Unix seconds, null: never since start);
 *   each Redis connection's state and counters (cluster/members.ts links()). Times are
 *   Unix seconds.
 *   flush: empties the named cache, or every enabled cache for "all" (cache/scache.ts
 *   clear(); counters kept). A shared (redis:) cache is the group's: it is emptied only
 *   with "cluster":true, and the request is refused otherwise, before any cache is touched.
 *   keys rotate: a new current ticket key now, the old one decrypts until it expires;
 *   keys revoke: every ticket key dropped, no ticket issued before resumes (tickets/keys.ts).
 *   With ticket keys shared through Redis both are group-wide (tickets/shared.ts): the
 *   group's generation is raised, every member follows within a second, and ticketKeys
 *   then also carries "generation"; they fail when Redis does not take the change.
 *   metrics: every metric of metrics/registry.ts in the Prometheus text format (0.0.4),
 *   the same text GET /metrics serves (daemon/metrics-http.ts).
 *   flush and keys are logged ("control: ...") with what they did (for shared keys, "of the
 *   Redis group (generation N)").
 * SECURITY
 *   No reply carries a cache_id, a session, a ticket key (not even its name) or PRNG bytes:
 *   only configuration, counters and times (the metrics' labels are fixed names and Redis
 *   configuration file names).
 * DIAGNOSTICS
 *   Errors (ok false): "request is not a JSON object", "unknown command <cmd>", "flush:
 *   cache must be one of smtpd, smtp, lmtp, all", "flush: the <type> TLS session cache is
 *   not enabled", "flush: the <type> TLS session cache <db> is shared by the Redis group --
 *   use --cluster to empty it for every member", "keys: action must be rotate or revoke",
 *   "metrics: this daemon collects no metrics" (-S),
 *   and the message of what failed (made printable and cut).
 * SEE ALSO
 *   daemon/control.ts, ctl/status.ts, ctl/flush.ts, ctl/keys.ts, ctl/metrics.ts
 */

import { CACHE_TYPES, type CacheType } from '../config/types.js';
import { msgInfo } from '../log/msg.js';
import type { LinkInfo } from '../cluster/members.js';
import type { TicketKeyInfo } from '../tickets/keys.js';
import { systemClock } from '../util/clock.js';
import { errorReason } from '../util/printable.js';
import type { DaemonControl, DaemonMode } from './part.js';

/** What the control part knows of the daemon besides DaemonControl. */
export interface DaemonAbout {
  /** package.json's version. */
  readonly version: string;
  /** Start time, Unix seconds. */
  readonly started: number;
}

export type ControlRequest =
  | { readonly cmd: 'ping' }
  | { readonly cmd: 'status' }
  | { readonly cmd: 'flush'; readonly cache: FlushTarget; readonly cluster?: boolean }
  | { readonly cmd: 'keys'; readonly action: 'rotate' | 'revoke' }
  | { readonly cmd: 'metrics' };

export const FLUSH_TARGETS = ['smtpd', 'smtp', 'lmtp', 'all'] as const;
export type FlushTarget = (typeof FLUSH_TARGETS)[number];

export interface CacheStatus {
  readonly database: string;
  readonly timeout: number;
  readonly enabled: boolean;
  readonly shared?: boolean;
  readonly entries?: number;
  readonly bytes?: number;
  readonly limits?: { readonly maxEntries: number; readonly maxSize: number; readonly maxEntrySize: number };
  readonly lookups?: number;
  readonly hits?: number;
  readonly misses?: number;
  readonly updates?: number;
  readonly replaced?: number;
  readonly deletes?: number;
  readonly expired?: number;
  readonly evicted?: number;
  readonly refused?: number;
  readonly corrupt?: number;
}

export interface PrngStatus {
  readonly source: string;
  readonly sourceOpen: boolean;
  readonly exchangeFile: string | null;
  readonly lastReseed: number | null;
  readonly lastExchangeSave: number | null;
}

export interface StatusReply {
  readonly ok: true;
  readonly version: string;
  readonly pid: number;
  readonly mode: DaemonMode;
  readonly started: number;
  readonly uptime: number;
  readonly caches: Readonly<Record<CacheType, CacheStatus>>;
  readonly ticketKeys: TicketKeyInfo & { readonly enabled: boolean };
  readonly prng: PrngStatus;
  readonly redis: readonly LinkInfo[];
}

export interface FlushReply {
  readonly ok: true;
  readonly flushed: readonly { readonly cache: CacheType; readonly removed: number }[];
}

export interface MetricsReply {
  readonly ok: true;
  /** The Content-Type of the text (prom-client's registry.contentType). */
  readonly contentType: string;
  /** The Prometheus text exposition. */
  readonly text: string;
}

export type ControlReply =
  | StatusReply
  | FlushReply
  | MetricsReply
  | { readonly ok: true; readonly ticketKeys?: TicketKeyInfo }
  | { readonly ok: false; readonly error: string };

/** A refusal whose message is the reply's error. */
class Refused extends Error {}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const toSeconds = (ms: number | null): number | null => (ms === null ? null : Math.floor(ms / 1000));

function ticketInfo(d: DaemonControl, now: number): TicketKeyInfo & { readonly enabled: boolean } {
  const timeout = d.service.caches.timeout('smtpd');
  return { enabled: timeout > 0, ...d.service.tickets.info(now, timeout) };
}

export function statusOf(d: DaemonControl, about: DaemonAbout): StatusReply {
  const now = systemClock.now();
  const { caches, prng, cluster } = d.service;
  const stats = caches.stats();
  const table = {} as Record<CacheType, CacheStatus>;
  for (const type of CACHE_TYPES) {
    const p = d.config.cache[type];
    const cache = caches.get(type);
    const s = stats.get(type);
    if (cache === undefined || s === undefined) {
      table[type] = { database: p.database, timeout: caches.timeout(type), enabled: false };
      continue;
    }
    table[type] = {
      database: p.database,
      timeout: cache.timeout,
      enabled: true,
      shared: cache.shared,
      entries: s.entries,
      bytes: s.bytes,
      limits: { maxEntries: cache.limits.maxEntries, maxSize: cache.limits.maxSize, maxEntrySize: cache.limits.maxEntrySize },
      lookups: s.hits + s.misses,
      hits: s.hits,
      misses: s.misses,
      updates: s.stores,
      replaced: s.replaced,
      deletes: s.deletes,
      expired: s.expired,
      evicted: s.evicted,
      refused: s.refused,
      corrupt: s.corrupt,
    };
  }
  const pi = prng.info();
  return {
    ok: true,
    version: about.version,
    pid: process.pid,
    mode: d.mode,
    started: about.started,
    uptime: Math.max(0, now - about.started),
    caches: table,
    ticketKeys: ticketInfo(d, now),
    prng: {
      source: pi.source,
      sourceOpen: pi.sourceOpen,
      exchangeFile: pi.exchangeFile,
      lastReseed: toSeconds(pi.lastReseed),
      lastExchangeSave: toSeconds(pi.lastExchangeSave),
    },
    redis: cluster.links(),
  };
}

async function flush(d: DaemonControl, target: unknown, cluster: unknown): Promise<FlushReply> {
  if (typeof target !== 'string' || !(FLUSH_TARGETS as readonly string[]).includes(target)) {
    throw new Refused(`flush: cache must be one of ${FLUSH_TARGETS.join(', ')}`);
  }
  const caches = d.service.caches;
  const types = target === 'all' ? CACHE_TYPES.filter((t) => caches.get(t) !== undefined) : [target as CacheType];
  // Every check before the first cache is emptied: a refusal changes nothing.
  for (const type of types) {
    const cache = caches.get(type);
    if (cache === undefined) throw new Refused(`flush: the ${type} TLS session cache is not enabled`);
    if (cache.shared && cluster !== true) {
      throw new Refused(
        `flush: the ${type} TLS session cache ${d.config.cache[type].database} is shared by the Redis group -- use --cluster to empty it for every member`,
      );
    }
  }
  const flushed: { cache: CacheType; removed: number }[] = [];
  for (const type of types) {
    const cache = caches.get(type);
    if (cache === undefined) continue;
    const removed = await cache.clear();
    msgInfo(`control: flush: ${type} TLS session cache emptied (${removed} entries removed${cache.shared ? ' from the Redis group' : ''})`);
    flushed.push({ cache: type, removed });
  }
  return { ok: true, flushed };
}

async function keys(d: DaemonControl, action: unknown): Promise<{ ok: true; ticketKeys: TicketKeyInfo }> {
  const now = systemClock.now();
  const timeout = d.service.caches.timeout('smtpd');
  const tickets = d.service.tickets;
  if (action !== 'rotate' && action !== 'revoke') throw new Refused('keys: action must be rotate or revoke');
  if (action === 'rotate') await tickets.rotate(now, timeout);
  else await tickets.revoke(now, timeout);
  const info = ticketInfo(d, now);
  const group = info.shared ? ` of the Redis group (generation ${String(info.generation)})` : '';
  msgInfo(action === 'rotate'
    ? `control: keys rotate: new current session ticket key${group}; the previous one decrypts until it expires`
    : `control: keys revoke: every session ticket key${group} dropped`);
  return { ok: true, ticketKeys: info };
}

async function metrics(d: DaemonControl): Promise<MetricsReply> {
  const m = d.service.metrics;
  if (m === undefined) throw new Refused('metrics: this daemon collects no metrics');
  return { ok: true, contentType: m.contentType, text: await m.text() };
}

/** answerControl - one request, parsed from JSON; never rejects. */
export async function answerControl(request: unknown, d: DaemonControl, about: DaemonAbout): Promise<ControlReply> {
  try {
    if (!isObject(request) || typeof request.cmd !== 'string') throw new Refused('request is not a JSON object with a "cmd" string');
    switch (request.cmd) {
      case 'ping':
        return { ok: true };
      case 'status':
        return statusOf(d, about);
      case 'flush':
        return await flush(d, request.cache, request.cluster);
      case 'keys':
        return await keys(d, request.action);
      case 'metrics':
        return await metrics(d);
      default:
        throw new Refused(`unknown command ${request.cmd}`);
    }
  } catch (err) {
    return { ok: false, error: errorReason(err, 300) };
  }
}
