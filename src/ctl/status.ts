/*
 * NAME
 *   ctl/status - tlsmgr-ctl status: what the running daemon is doing
 * SYNOPSIS
 *   tlsmgr-ctl [-c config_dir] status [--json]
 *   formatStatus(reply): string[]          ticketKeysLine(ticketKeys): string
 * DESCRIPTION
 *   Asks the daemon for {"cmd":"status"} (daemon/control-answers.ts) and prints it:
 *   - with --json, the reply as one JSON object on one line (machine-readable; the fields
 *     are documented in daemon/control-answers.ts; times are Unix seconds);
 *   - else human-readable lines: version, pid, mode, uptime; per cache type its database,
 *     timeout, entries, bytes, limits and counters (lookups = hits + misses; updates);
 *     the ticket keys (count, the Redis group's generation when shared, the current key's
 *     age and how long it still encrypts and decrypts); the PRNG (source, last reseed,
 *     exchange file and its last save); each Redis connection (connected, round trips,
 *     errors, timeouts, fallbacks).
 *   No cache_id, session, key or seed byte is ever part of the reply.
 * DIAGNOSTICS
 *   The daemon cannot be reached or refuses: "tlsmgr-ctl: fatal: ..." and exit status 1
 *   (ctl/control.ts).
 * SEE ALSO
 *   daemon/control-answers.ts, cache/stats.ts
 */

import type { CtlCommand } from './command.js';
import { askDaemon, controlPathFor } from './control.js';

type Obj = Record<string, unknown>;

const obj = (v: unknown): Obj => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Obj) : {});
const num = (v: unknown): number => (typeof v === 'number' ? v : NaN);

/** "1d 2h 3m 4s" */
export function duration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  let s = Math.max(0, Math.floor(seconds));
  const parts: string[] = [];
  for (const [unit, size] of [['d', 86400], ['h', 3600], ['m', 60]] as const) {
    if (s >= size) {
      parts.push(`${Math.floor(s / size)}${unit}`);
      s %= size;
    }
  }
  if (s > 0 || parts.length === 0) parts.push(`${s}s`);
  return parts.join(' ');
}

function when(v: unknown, now: number): string {
  if (typeof v !== 'number') return 'never since start';
  return `${new Date(v * 1000).toISOString().replace('.000Z', 'Z')} (${duration(now - v)} ago)`;
}

/** The ticket keys as one line. */
export function ticketKeysLine(v: unknown): string {
  const t = obj(v);
  if (t.enabled === false) return 'ticket keys: disabled (smtpd_tls_session_cache_timeout = 0)';
  const gen = typeof t.generation === 'number' ? `, generation ${t.generation}` : '';
  const where = t.shared === true ? `shared through Redis${gen}` : 'local';
  const cur = obj(t.current);
  const current = t.current === null || t.current === undefined
    ? 'no current key (one is made on the next request)'
    : `current key: age ${duration(num(cur.age))}, encrypts for ${duration(num(cur.encryptFor))}, decrypts for ${duration(num(cur.decryptFor))}`;
  return `ticket keys: ${num(t.count)} (${where}); ${current}`;
}

const limit = (n: unknown): string => (n === 0 ? 'none' : String(num(n)));

export function formatStatus(reply: Obj): string[] {
  const now = num(reply.started) + num(reply.uptime);
  const out = [
    `tlsmgr ${String(reply.version)}, pid ${num(reply.pid)}, ${String(reply.mode)}, up ${duration(num(reply.uptime))}`,
  ];
  for (const [type, v] of Object.entries(obj(reply.caches))) {
    const c = obj(v);
    if (c.enabled !== true) {
      out.push(`${type} cache: disabled${c.database === '' ? '' : ` (${String(c.database)}, timeout ${num(c.timeout)}s)`}`);
      continue;
    }
    const l = obj(c.limits);
    const size = num(c.entries) < 0 ? "entries and bytes: the Redis group's" : `entries ${num(c.entries)}, bytes ${num(c.bytes)}`;
    out.push(`${type} cache: ${String(c.database)}, timeout ${num(c.timeout)}s${c.shared === true ? ', shared through Redis' : ''}`);
    out.push(`  ${size}; limits: entries ${limit(l.maxEntries)}, size ${limit(l.maxSize)}, entry size ${limit(l.maxEntrySize)}`);
    out.push(
      `  lookups ${num(c.lookups)} (hits ${num(c.hits)}, misses ${num(c.misses)}), updates ${num(c.updates)} (replaced ${num(c.replaced)}), ` +
        `deletes ${num(c.deletes)}, expired ${num(c.expired)}, evicted ${num(c.evicted)}, refused ${num(c.refused)}, corrupt ${num(c.corrupt)}`,
    );
  }
  out.push(ticketKeysLine(reply.ticketKeys));
  const p = obj(reply.prng);
  const source = p.source === '' ? 'none' : String(p.source);
  out.push(`prng: source ${source}, last reseed ${when(p.lastReseed, now)}`);
  if (typeof p.exchangeFile === 'string') out.push(`prng: exchange file ${p.exchangeFile}, last saved ${when(p.lastExchangeSave, now)}`);
  for (const v of Array.isArray(reply.redis) ? reply.redis : []) {
    const r = obj(v);
    const c = obj(r.counters);
    out.push(
      `redis ${String(r.source)}: ${r.connected === true ? 'connected' : 'NOT connected'}, roundtrips ${num(c.roundtrips)}, ` +
        `errors ${num(c.errors)}, timeouts ${num(c.timeouts)}, fallbacks ${num(c.fallbacks)}`,
    );
  }
  return out;
}

export const statusCommand: CtlCommand = {
  name: 'status',
  synopsis: 'status [--json]',
  summary: 'what the running tlsmgr does: caches, ticket keys, PRNG, Redis',
  args: { flags: ['--json'] },
  async run(args, ctx) {
    const reply = await askDaemon(controlPathFor(ctx.configDir), { cmd: 'status' });
    if (args.flags.has('--json')) ctx.io.out(JSON.stringify(reply));
    else for (const l of formatStatus(reply)) ctx.io.out(l);
    return 0;
  },
};
