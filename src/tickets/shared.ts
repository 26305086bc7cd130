/*
 * NAME
 *   tickets/shared - session-ticket keys shared by a group of daemons through Redis, with
 *   leaderless, race-free rotation, group-wide rotate and revoke, and a local fallback
 * SYNOPSIS
 *   const keys = new SharedTicketKeys({ link, sealer, random, fallback, clock, warn, info })
 *   keys.key(keyname: Buffer | null, now, timeout): TicketKeyResult | Promise<TicketKeyResult>
 *   keys.clear()      keys.info(now, timeout)
 *   await keys.rotate(now, timeout)      await keys.revoke(now, timeout)      (group-wide)
 *   await keys.refresh()                 re-read the group's generation now
 *   parseGeneration(record)              GEN_POLL_MS
 * DESCRIPTION
 *   Time is cut into slots of half = floor(timeout / 2) seconds (timeout: the sanitised
 *   smtpd cache timeout, as for the local ring). Slot s = floor(now / half) has exactly one
 *   key per generation g in the whole group: the first daemon to ask stores a fresh random
 *   key at
 *       <key_prefix>tktkey:<half>:<s>            (generation 0)
 *       <key_prefix>tktkey:g<g>:<half>:<s>       (generation g >= 1)
 *   with SET ... NX (set if absent), then every daemon reads back what is there, so all of
 *   them converge on the winner's key without a leader and without a lock. The key of slot
 *   s + 1 is published the same way in the same round trip, ahead of use.
 *   A slot key has tout = (s + 1) * half: smtpd encrypts with it while tout > now (to the
 *   end of its slot) and it decrypts while tout + half > now, that is for `timeout` seconds
 *   after its slot began (spec 2.8: T/2 to encrypt, T to decrypt). Its Redis TTL ends then.
 *   - no name: the key of the current slot of the current generation, from memory once
 *     fetched (keys never change);
 *   - a name: a remembered key of the current, previous or next slot with that name, of the
 *     current generation or of the one before when that one still decrypts (below); else
 *     those slots are read from Redis once and searched again.
 *   Keys are stored sealed (util/seal.ts) with the cluster key, bound to "tktkey", their
 *   generation and their slot: Redis never holds a ticket key in clear, and a record moved
 *   to another slot or generation (a revoked key put back under a new name) fails.
 *   A sealed key has one exact length per record version (88 + SEAL_OVERHEAD for version 2,
 *   88 + SEAL_OVERHEAD_V1 for the version 1 of members not yet upgraded); a value of any
 *   other length is refused before it is decrypted. Slots are read with GETRANGE up to one
 *   byte past the longer of the two (MAX_RECORD), so a value of hundreds of megabytes
 *   planted in Redis never reaches the daemon's memory; GETRANGE answers a missing key with
 *   an empty value, and an empty value is taken as a missing key.
 *   Generations (tlsmgr-ctl keys rotate / keys revoke, on any member):
 *   <key_prefix>tktkey:gen holds "<generation> <floor>" in decimal (missing: "0 0"), floor
 *   <= generation, each at most 15 digits. Keys of generations below max(floor, generation
 *   - 1) are dead: never used, never looked up. rotate() and revoke() raise the generation
 *   by one in one atomic EVAL (a short script that names that key alone); revoke() also
 *   raises the floor to the new generation, rotate() leaves it. So after a rotate the group
 *   encrypts with keys of the new generation and still decrypts with the previous one's
 *   until they expire (a second rotate drops those, as the local ring's does); after a
 *   revoke no key issued before is found by any member, and new keys work at once. The
 *   script starts from the larger of what Redis holds and what this member knows, so a
 *   missing or unreadable value cannot make the generation go back. revoke() then deletes
 *   the slot keys of the two generations before (for the slots around now), and drops every
 *   key this member remembers and its local ring's keys.
 *   The other members learn the new generation by reading the value again (GETRANGE, at
 *   most MAX_GEN_RECORD + 1 bytes) every GEN_POLL_MS once they have served a ticket-key
 *   request, and each time their connection is ready again (a member that was cut off
 *   catches up when it reconnects). They then drop the dead keys, revoke (or rotate) their
 *   local ring too, and log it. Polling is used rather than pub/sub: a missed message is
 *   impossible, no second connection is needed per member (per Cluster node), and nothing
 *   of unbounded size is ever read (a PUBLISH of tens of megabytes would reach every
 *   subscriber whole).
 *   A generation value is parsed strictly (parseGeneration); one that is malformed, too
 *   long, with floor > generation, or lower than what this member has seen is refused with
 *   a warning and this member keeps its own (generations never go back: a generation put
 *   back by whoever can write to Redis would bring revoked records to life). A missing value
 *   while this member knows a generation above 0 (Redis lost its data) is written back (SET
 *   NX). A member that has never read a valid value serves from its local ring meanwhile.
 *   Whoever can write to Redis can raise the generation (every member then makes new keys:
 *   resumption is lost once, as with deleted keys), never lower it or crash a member.
 *   When Redis cannot be reached (or answers something that does not open), the request is
 *   served from the local ring (tickets/keys.ts) instead, which smtpd cannot tell apart; names
 *   are looked up in both, so tickets issued under a fallback key still resume on this host.
 *   info() reports the slot keys this daemon holds and the generation (times and numbers
 *   only, never key bytes).
 * LIMITS
 *   Daemons share keys only when they agree on the smtpd timeout (it sets the slot length)
 *   and on the time to within a slot; clocks should be synchronised (NTP).
 *   A rotate or revoke reaches the other members within GEN_POLL_MS plus one Redis call
 *   timeout of a ready connection, or when their connection is ready again; until then
 *   they still hand out keys of the generation before. smtpd processes keep the key they
 *   hold (Postfix caches it): only smtpd processes started afterwards (`postfix reload` on
 *   every host) stop resuming tickets of revoked keys.
 *   Members of an older tlsmgr that do not know generations keep using generation 0.
 *   A member started after a revoke trusts the generation Redis holds then. The Redis user
 *   needs EVAL for rotate and revoke (an ACL without it refuses them, with Redis's error).
 *   A generation of 10^15 - 1 cannot be raised ("ticket key generation exhausted").
 * DIAGNOSTICS
 *   Redis failures are counted and logged by the link (cluster/link.ts). A record that does
 *   not open, or that is refused unopened (an unknown version, "bad record length N", or
 *   "bad record length over MAX_RECORD"),
 *   gets one rate-limited warning, and that slot is served from the local ring. Nothing is
 *   thrown or rejected by key() or refresh().
 *   Generation warnings (rate-limited, never the value itself): "redis <source>: ticket
 *   key generation: <reason> -- keeping generation N" (or "-- using local keys" before any
 *   valid value), reasons "longer than 31 bytes", "not two decimal numbers", "floor F
 *   above generation G", "went back to G (floor F)"; "... missing -- writing generation N
 *   back". Info lines on members that learn a change: "redis <source>: session ticket keys
 *   revoked by a member of the group (generation N) -- every ticket key dropped" and
 *   "... rotated by a member of the group (generation N) -- new keys encrypt, the previous
 *   generation's still decrypt until they expire".
 *   rotate() and revoke() reject with an Error when Redis does not take the new generation
 *   ("keys revoke: redis <source>: <reason>: the Redis group's ticket keys are unchanged
 *   (this member's local keys were dropped) -- try again when Redis answers"), and rotate()
 *   when ticket keys are disabled.
 */

import type { Clock } from '../util/clock.js';
import type { RedisLink } from '../cluster/link.js';
import { WarnLimiter } from '../util/ratelimit.js';
import { errorReason } from '../util/printable.js';
import { SEAL_OVERHEAD, SEAL_OVERHEAD_V1, recordOverhead, type Sealer } from '../util/seal.js';
import { TICKET, TOUT_OFFSET, newTicketKey } from '../util/tktkey.js';
import { type TicketKey, type TicketKeyInfo, type TicketKeyResult, type TicketKeyRing } from './keys.js';
import { type Maybe } from '../util/maybe.js';

/** What dispatch needs of a ticket-key ring, local or shared. */
export interface TicketKeySource {
  key(keyname: Buffer | null, now: number, timeout: number): Maybe<TicketKeyResult>;
  clear(): void;
  /** Times of the keys (never key bytes), for tlsmgr-ctl status. */
  info(now: number, timeout: number): TicketKeyInfo;
  /** A new current key now, the old one decrypt-only; throws (or rejects) when this source cannot. */
  rotate(now: number, timeout: number): void | Promise<void>;
  /** Drop every key; throws (or rejects) when this source cannot. */
  revoke(now: number, timeout: number): void | Promise<void>;
}

export interface SharedTicketKeysOptions {
  readonly link: RedisLink;
  readonly sealer: Sealer;
  /** Cryptographically random bytes. */
  readonly random: (n: number) => Buffer;
  /** The local ring for when Redis cannot be used. */
  readonly fallback: TicketKeyRing;
  readonly clock: Clock;
  readonly warn: (msg: string) => void;
  /** Where a rotate or revoke made by another member is reported. */
  readonly info?: (msg: string) => void;
  /** Milliseconds between two reads of the generation (default GEN_POLL_MS). */
  readonly pollMs?: number;
}

const LABEL = 'tktkey';
/** The longest sealed ticket key of any record version; a slot value is read up to one byte past it. */
const MAX_RECORD = TICKET.RECORDLEN + Math.max(SEAL_OVERHEAD, SEAL_OVERHEAD_V1);
/** Digits of a generation or floor at most: below 2^53, so exact as a JavaScript and a Lua number. */
const GEN_DIGITS = 15;
const MAX_GENERATION = 10 ** GEN_DIGITS - 1;
/** The longest valid generation value: "<15 digits> <15 digits>". */
export const MAX_GEN_RECORD = 2 * GEN_DIGITS + 1;
/** Milliseconds between two reads of the group's generation by an active member. */
export const GEN_POLL_MS = 1000;

/*
 * The new generation, atomically: from the larger of Redis's value (when it is a string of
 * two numbers, floor <= generation) and this member's (ARGV[2], ARGV[3]); "revoke" also
 * raises the floor to it. SET replaces a value of any type, so a planted hash or list
 * cannot block a revoke. The reply is the new "<generation> <floor>".
 */
const BUMP_SCRIPT = `
local g = tonumber(ARGV[2])
local f = tonumber(ARGV[3])
if redis.call('TYPE', KEYS[1]).ok == 'string' and redis.call('STRLEN', KEYS[1]) <= ${MAX_GEN_RECORD} then
  local a, b = string.match(redis.call('GET', KEYS[1]), '^(%d+) (%d+)$')
  if a and #a <= ${GEN_DIGITS} and #b <= ${GEN_DIGITS} then
    a = tonumber(a)
    b = tonumber(b)
    if b <= a then
      if a > g then g = a end
      if b > f then f = b end
    end
  end
end
if g >= ${MAX_GENERATION} then return redis.error_reply('ticket key generation exhausted') end
g = g + 1
if ARGV[1] == 'revoke' then f = g end
local v = string.format('%d %d', g, f)
redis.call('SET', KEYS[1], v)
return v
`;

export interface Generation {
  readonly gen: number;
  readonly floor: number;
}

/** "<generation> <floor>", strictly: decimal without leading zeros, floor <= generation; else why not. */
export function parseGeneration(rec: Buffer): Generation | string {
  if (rec.length > MAX_GEN_RECORD) return `longer than ${MAX_GEN_RECORD} bytes`;
  const m = /^(0|[1-9][0-9]{0,14}) (0|[1-9][0-9]{0,14})$/.exec(rec.toString('latin1'));
  if (m === null) return 'not two decimal numbers';
  const gen = Number(m[1]);
  const floor = Number(m[2]);
  if (floor > gen) return `floor ${floor} above generation ${gen}`;
  return { gen, floor };
}

/** A remembered slot key and where it belongs. */
interface HeldKey extends TicketKey {
  readonly gen: number;
  readonly slot: number;
}

export class SharedTicketKeys implements TicketKeySource {
  /** Keys of the group by "<generation>:<slot>", for the slot length `half`. */
  private readonly slots = new Map<string, HeldKey>();
  private readonly pending = new Map<string, Promise<void>>();
  private half = 0;
  private timeout = 0;
  /** The group's generation and floor as this member knows them; they never go down. */
  private gen = 0;
  private floor = 0;
  /** A valid generation value was read (or written) at least once. */
  private genKnown = false;
  /** Counts the changes of generation or floor applied here (a read sent before one is stale). */
  private changes = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly limited: WarnLimiter;

  constructor(private readonly opts: SharedTicketKeysOptions) {
    this.limited = new WarnLimiter(opts.warn, opts.clock);
    // A member cut off from Redis may have missed a rotate or revoke: read again at once.
    opts.link.onReady(() => {
      if (this.timer !== undefined) void this.refresh();
    });
  }

  key(keyname: Buffer | null, now: number, timeout: number): Maybe<TicketKeyResult> {
    if (timeout <= 0) return { status: 'disabled' };
    const half = Math.max(1, Math.floor(timeout / 2));
    if (half !== this.half) {
      this.clearSlots();
      this.half = half;
    }
    this.timeout = timeout;
    if (this.timer === undefined) this.startPolling();
    this.prune(now);
    const s = Math.floor(now / half);
    if (keyname === null || keyname.length === 0) {
      const k = this.slots.get(slotKey(this.gen, s));
      if (k !== undefined) return { status: 'ok', key: k };
      return this.once(`claim ${this.gen}:${s}`, () => this.claim(s, half, now)).then(() => {
        const got = this.slots.get(slotKey(this.gen, s));
        return got !== undefined && this.half === half ? { status: 'ok', key: got } : this.opts.fallback.key(null, now, timeout);
      });
    }
    const found = this.find(keyname, now);
    if (found !== null) return { status: 'ok', key: found };
    const local = this.opts.fallback.key(keyname, now, timeout);
    if (local.status === 'ok') return local;
    return this.once(`fetch ${this.gen}:${s}`, () => this.fetch(s, half)).then(() => {
      const k = this.find(keyname, now);
      return k !== null ? { status: 'ok', key: k } : { status: 'nokey' };
    });
  }

  /** Forget every key, wiping it (the fallback ring too). */
  clear(): void {
    this.clearSlots();
    this.opts.fallback.clear();
  }

  info(now: number, timeout: number): TicketKeyInfo {
    const generation = this.genKnown ? this.gen : null;
    const half = Math.max(1, Math.floor(timeout / 2));
    if (timeout <= 0 || half !== this.half) return { shared: true, count: 0, current: null, generation };
    let count = 0;
    for (const k of this.slots.values()) if (this.usable(k) && k.tout + half > now) count++;
    const s = Math.floor(now / half);
    const cur = this.slots.get(slotKey(this.gen, s));
    const current = cur === undefined ? null : { age: now - s * half, encryptFor: cur.tout - now, decryptFor: cur.tout + half - now };
    return { shared: true, count, current, generation };
  }

  /** A new generation for the whole group: new keys encrypt, the previous generation's still decrypt. */
  async rotate(now: number, timeout: number): Promise<void> {
    if (timeout <= 0) throw new Error('ticket keys are disabled (smtpd_tls_session_cache_timeout is 0)');
    await this.bump('rotate', now, timeout);
  }

  /** A new generation for the whole group, and every key issued before is dead. */
  async revoke(now: number, timeout: number): Promise<void> {
    await this.bump('revoke', now, timeout);
  }

  /** Read the group's generation now and apply a change (never rejects). */
  refresh(): Promise<void> {
    return this.once('gen', () => this.readGeneration());
  }

  private redisKey(gen: number, half: number, s: number): string {
    return gen === 0 ? `${this.opts.link.prefix}${LABEL}:${half}:${s}` : `${this.opts.link.prefix}${LABEL}:g${gen}:${half}:${s}`;
  }

  private get genKey(): string {
    return `${this.opts.link.prefix}${LABEL}:gen`;
  }

  private get source(): string {
    return this.opts.link.config.source;
  }

  /* bump - raise the group's generation (rotate or revoke) and apply it here */
  private async bump(action: 'rotate' | 'revoke', now: number, timeout: number): Promise<void> {
    let reply: unknown;
    try {
      reply = await this.opts.link.run('tktkey', (r) => r.eval(BUMP_SCRIPT, 1, this.genKey, action, String(this.gen), String(this.floor)));
    } catch (err) {
      if (action === 'revoke') {
        // Served from while Redis is away: that much of the revoke does take effect here.
        this.opts.fallback.revoke();
      }
      const local = action === 'revoke' ? " (this member's local keys were dropped)" : '';
      throw new Error(`keys ${action}: redis ${this.source}: ${errorReason(err, 120)}: the Redis group's ticket keys are unchanged${local} -- try again when Redis answers`);
    }
    const got = typeof reply === 'string' || Buffer.isBuffer(reply) ? parseGeneration(Buffer.from(reply)) : 'not a string';
    if (typeof got === 'string' || got.gen <= this.gen || got.floor < this.floor) {
      throw new Error(`keys ${action}: redis ${this.source}: unexpected reply to the new ticket key generation`);
    }
    this.genKnown = true;
    this.advance(got, now, timeout, 'asked');
    if (action !== 'revoke' || timeout <= 0) return;
    // Records of the dead generations are useless (sealed to their generation); delete the
    // live ones anyway, so that Redis no longer holds them at all.
    const half = Math.max(1, Math.floor(timeout / 2));
    const s = Math.floor(now / half);
    const names: string[] = [];
    for (const gen of [got.gen - 1, got.gen - 2]) {
      if (gen >= 0) for (const slot of [s - 1, s, s + 1]) names.push(this.redisKey(gen, half, slot));
    }
    try {
      await this.opts.link.run('tktkey', (r) => Promise.all(names.map((n) => r.del(n))));
    } catch {
      // Logged by the link; the generation alone already retired them.
    }
  }

  /*
   * advance - take a newer generation and floor: drop dead keys; the local ring follows.
   * `how`: this member made the change (asked), read another member's (learned: logged), or
   * read the group's state for the first time (joined: only a floor above its own matters,
   * as its local keys may predate that revoke).
   */
  private advance(next: Generation, now: number, timeout: number, how: 'asked' | 'learned' | 'joined'): void {
    const revoked = next.floor > this.floor;
    const rotated = next.gen > this.gen;
    if (!revoked && !rotated) return;
    this.changes++;
    this.gen = next.gen;
    this.floor = next.floor;
    for (const [id, k] of this.slots) {
      if (this.usable(k)) continue;
      k.record.fill(0);
      this.slots.delete(id);
    }
    if (revoked) this.opts.fallback.revoke();
    else if (how !== 'joined' && timeout > 0) this.opts.fallback.rotate(now, timeout);
    if (how !== 'learned') return;
    this.opts.info?.(revoked
      ? `redis ${this.source}: session ticket keys revoked by a member of the group (generation ${next.gen}) -- every ticket key dropped`
      : `redis ${this.source}: session ticket keys rotated by a member of the group (generation ${next.gen}) -- new keys encrypt, the previous generation's still decrypt until they expire`);
  }

  /* readGeneration - GETRANGE the generation (bounded), parse it strictly, apply a newer one */
  private async readGeneration(): Promise<void> {
    const changes = this.changes;
    let rec: Buffer;
    try {
      rec = await this.opts.link.run('tktkey', (r) => r.getrangeBuffer(this.genKey, 0, MAX_GEN_RECORD));
    } catch {
      return;
    }
    const keeping = this.genKnown ? `keeping generation ${this.gen}` : 'using local keys';
    if (rec.length === 0) {
      if (this.gen > 0 && this.changes === changes) {
        // Redis lost its data (a restart without persistence): put ours back for the others.
        this.limited.warn('gen', `redis ${this.source}: ticket key generation missing -- writing generation ${this.gen} back`);
        const value = `${this.gen} ${this.floor}`;
        try {
          await this.opts.link.run('tktkey', (r) => r.set(this.genKey, value, 'NX'));
        } catch {
          return;
        }
      }
      this.genKnown = true;
      return;
    }
    const got = parseGeneration(rec);
    if (typeof got === 'string') {
      this.limited.warn('gen', `redis ${this.source}: ticket key generation: ${got} -- ${keeping}`);
      return;
    }
    if (got.gen < this.gen || got.floor < this.floor) {
      // This member's own rotate or revoke landed while the read was on its way: not news.
      if (this.changes !== changes) return;
      this.limited.warn('gen', `redis ${this.source}: ticket key generation: went back to ${got.gen} (floor ${got.floor}) -- ${keeping}`);
      return;
    }
    const how = this.genKnown ? 'learned' : 'joined';
    this.genKnown = true;
    this.advance(got, this.opts.clock.now(), this.timeout, how);
  }

  /* startPolling - read the generation every pollMs while the link is up, until it is closed */
  private startPolling(): void {
    if (this.opts.link.closed) return;
    const timer = setInterval(() => {
      if (this.opts.link.closed) {
        clearInterval(timer);
        return;
      }
      if (this.opts.link.ready) void this.refresh();
    }, this.opts.pollMs ?? GEN_POLL_MS);
    timer.unref();
    this.timer = timer;
  }

  /* claim - create the keys of slots s and s+1 if absent, then read back the group's */
  private async claim(s: number, half: number, now: number): Promise<void> {
    if (!this.genKnown) await this.refresh();
    if (!this.genKnown) return;
    const gen = this.gen;
    const mine = [s, s + 1].map((slot) => this.sealedNew(gen, slot, half));
    const keys = [s, s + 1].map((slot) => this.redisKey(gen, half, slot));
    // A key's record lives until its slot began + 2 half (it then no longer decrypts).
    const ttl = [s, s + 1].map((slot) => Math.max(1, ((slot + 2) * half - now + 1) * 1000));
    let got: Buffer[];
    try {
      got = await this.opts.link.run('tktkey', async (r) => {
        const [, , a, b] = await Promise.all([
          r.set(keys[0], mine[0], 'PX', ttl[0], 'NX'),
          r.set(keys[1], mine[1], 'PX', ttl[1], 'NX'),
          r.getrangeBuffer(keys[0], 0, MAX_RECORD),
          r.getrangeBuffer(keys[1], 0, MAX_RECORD),
        ]);
        return [a, b];
      });
    } catch {
      return;
    } finally {
      for (const m of mine) m.fill(0);
    }
    this.learn([{ gen, slot: s }, { gen, slot: s + 1 }], got, half);
  }

  /* fetch - read the keys of slots s-1, s, s+1 of the generations that decrypt (a name lookup that missed in memory) */
  private async fetch(s: number, half: number): Promise<void> {
    if (!this.genKnown) await this.refresh();
    if (!this.genKnown) return;
    const gens = this.gen - 1 >= this.floor ? [this.gen, this.gen - 1] : [this.gen];
    const where = gens.flatMap((gen) => [s - 1, s, s + 1].map((slot) => ({ gen, slot })));
    let got: Buffer[];
    try {
      got = await this.opts.link.run('tktkey', (r) => Promise.all(where.map((w) => r.getrangeBuffer(this.redisKey(w.gen, half, w.slot), 0, MAX_RECORD))));
    } catch {
      return;
    }
    this.learn(where, got, half);
  }

  /* learn - open and remember fetched slot keys (unless the slot length or generation changed meanwhile) */
  private learn(where: readonly { gen: number; slot: number }[], records: readonly Buffer[], half: number): void {
    if (half !== this.half) return;
    where.forEach(({ gen, slot }, i) => {
      const rec = records[i];
      const id = slotKey(gen, slot);
      if (rec === undefined || rec.length === 0 || this.slots.has(id) || gen < this.deadBelow()) return;
      // A sealed ticket key has exactly one length per record version: anything else read
      // from Redis is refused before any decryption work is spent on it. A read of
      // MAX_RECORD + 1 bytes was cut short: the value is longer still.
      const overhead = recordOverhead(rec);
      const r = overhead === undefined
        ? { ok: false as const, reason: `unknown record version ${rec[0]}` }
        : rec.length !== overhead + TICKET.RECORDLEN
          ? { ok: false as const, reason: rec.length > MAX_RECORD ? `bad record length over ${MAX_RECORD}` : `bad record length ${rec.length}` }
          : this.opts.sealer.open(LABEL, slotId(gen, half, slot), rec);
      if (!r.ok || r.session.length !== TICKET.RECORDLEN) {
        if (r.ok) r.session.fill(0);
        this.limited.warn('corrupt', `redis ${this.source}: ticket key of slot ${slot}: ${r.ok ? 'bad length' : r.reason} -- using a local key`);
        return;
      }
      this.slots.set(id, { record: r.session, tout: Number(r.session.readBigInt64LE(TOUT_OFFSET)), gen, slot });
    });
  }

  /* sealedNew - a fresh random key for a slot, sealed for Redis (the clear copy is wiped) */
  private sealedNew(gen: number, slot: number, half: number): Buffer {
    const record = newTicketKey(this.opts.random, (slot + 1) * half);
    try {
      return this.opts.sealer.seal(LABEL, slotId(gen, half, slot), slot * half, record);
    } finally {
      record.fill(0);
    }
  }

  /** Keys of generations below this one are dead: max(floor, generation - 1). */
  private deadBelow(): number {
    return Math.max(this.floor, this.gen - 1);
  }

  private usable(k: HeldKey): boolean {
    return k.gen >= this.deadBelow();
  }

  private find(keyname: Buffer, now: number): TicketKey | null {
    let best: TicketKey | null = null;
    for (const k of this.slots.values()) {
      if (k.tout + this.half <= now || !this.usable(k)) continue;
      if (k.record.compare(keyname, 0, keyname.length, 0, TICKET.NAMELEN) !== 0) continue;
      if (best === null || k.tout > best.tout) best = k;
    }
    return best;
  }

  /* prune - drop keys that can no longer decrypt */
  private prune(now: number): void {
    for (const [id, k] of this.slots) {
      if (k.tout + this.half > now && this.usable(k)) continue;
      k.record.fill(0);
      this.slots.delete(id);
    }
  }

  private clearSlots(): void {
    for (const k of this.slots.values()) k.record.fill(0);
    this.slots.clear();
  }

  /* once - one Redis round trip per slot (or generation read) at a time, however many requests wait for it */
  private once(what: string, run: () => Promise<void>): Promise<void> {
    const p = this.pending.get(what);
    if (p !== undefined) return p;
    const q = run().finally(() => this.pending.delete(what));
    this.pending.set(what, q);
    return q;
  }
}

function slotKey(gen: number, slot: number): string {
  return `${gen}:${slot}`;
}

/** What a slot key's sealed record is bound to: its slot, and its generation from 1 on. */
function slotId(gen: number, half: number, slot: number): Buffer {
  return Buffer.from(gen === 0 ? `${half}:${slot}` : `g${gen}:${half}:${slot}`, 'latin1');
}
