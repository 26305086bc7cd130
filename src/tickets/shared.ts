/*
 * NAME
 *   tickets/shared - session-ticket keys shared by a group of daemons through Redis, with
 *   leaderless, race-free rotation and a local fallback
 * SYNOPSIS
 *   const keys = new SharedTicketKeys({ link, sealer, random, fallback })
 *   keys.key(keyname: Buffer | null, now, timeout): TicketKeyResult | Promise<TicketKeyResult>
 *   keys.clear()      keys.info(now, timeout)      keys.rotate()/revoke() (refused)
 * DESCRIPTION
 *   Time is cut into slots of half = floor(timeout / 2) seconds (timeout: the sanitised
 *   smtpd cache timeout, as for the local ring). Slot s = floor(now / half) has exactly one
 *   key in the whole group: the first daemon to ask stores a fresh random key at
 *       <key_prefix>tktkey:<half>:<s>
 *   with SET ... NX (set if absent), then every daemon reads back what is there, so all of
 *   them converge on the winner's key without a leader and without a lock. The key of slot
 *   s + 1 is published the same way in the same round trip, ahead of use.
 *   A slot key has tout = (s + 1) * half: smtpd encrypts with it while tout > now (to the
 *   end of its slot) and it decrypts while tout + half > now, that is for `timeout` seconds
 *   after its slot began (spec 2.8: T/2 to encrypt, T to decrypt). Its Redis TTL ends then.
 *   - no name: the key of the current slot, from memory once fetched (keys never change);
 *   - a name: a remembered key of the current, previous or next slot with that name; else
 *     those three slots are read from Redis once and searched again.
 *   Keys are stored sealed (util/seal.ts) with the cluster key, bound to "tktkey" and their
 *   slot: Redis never holds a ticket key in clear, and a record moved to another slot fails.
 *   A sealed key has one exact length per record version (88 + SEAL_OVERHEAD for version 2,
 *   88 + SEAL_OVERHEAD_V1 for the version 1 of members not yet upgraded); a value of any
 *   other length is refused before it is decrypted. Slots are read with GETRANGE up to one
 *   byte past the longer of the two (MAX_RECORD), so a value of hundreds of megabytes
 *   planted in Redis never reaches the daemon's memory; GETRANGE answers a missing key with
 *   an empty value, and an empty value is taken as a missing key.
 *   When Redis cannot be reached (or answers something that does not open), the request is
 *   served from the local ring (tickets/keys.ts) instead, which smtpd cannot tell apart; names
 *   are looked up in both, so tickets issued under a fallback key still resume on this host.
 *   info() reports the slot keys this daemon holds (times only, never key bytes). The
 *   operator's rotate and revoke are refused with an Error: a slot's key is the group's,
 *   remembered by every member, and one member cannot take it back from the others' memory.
 * LIMITS
 *   Daemons share keys only when they agree on the smtpd timeout (it sets the slot length)
 *   and on the time to within a slot; clocks should be synchronised (NTP).
 * DIAGNOSTICS
 *   Redis failures are counted and logged by the link (cluster/link.ts). A record that does
 *   not open, or that is refused unopened (an unknown version, "bad record length N", or
 *   "bad record length over MAX_RECORD"),
 *   gets one rate-limited warning, and that slot is served from the local ring. Nothing is
 *   thrown or rejected.
 */

import type { Clock } from '../util/clock.js';
import type { RedisLink } from '../cluster/link.js';
import { WarnLimiter } from '../util/ratelimit.js';
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
  /** A new current key now, the old one decrypt-only; throws when this source cannot. */
  rotate(now: number, timeout: number): void;
  /** Drop every key; throws when this source cannot. */
  revoke(): void;
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
}

const LABEL = 'tktkey';
/** The longest sealed ticket key of any record version; a slot value is read up to one byte past it. */
const MAX_RECORD = TICKET.RECORDLEN + Math.max(SEAL_OVERHEAD, SEAL_OVERHEAD_V1);

export class SharedTicketKeys implements TicketKeySource {
  /** Keys of the group by slot, for the slot length `half`. */
  private readonly slots = new Map<number, TicketKey>();
  private readonly pending = new Map<string, Promise<void>>();
  private half = 0;
  private readonly limited: WarnLimiter;

  constructor(private readonly opts: SharedTicketKeysOptions) {
    this.limited = new WarnLimiter(opts.warn, opts.clock);
  }

  key(keyname: Buffer | null, now: number, timeout: number): Maybe<TicketKeyResult> {
    if (timeout <= 0) return { status: 'disabled' };
    const half = Math.max(1, Math.floor(timeout / 2));
    if (half !== this.half) {
      this.clearSlots();
      this.half = half;
    }
    this.prune(now);
    const s = Math.floor(now / half);
    if (keyname === null || keyname.length === 0) {
      const k = this.slots.get(s);
      if (k !== undefined) return { status: 'ok', key: k };
      return this.once(`claim ${s}`, () => this.claim(s, half, now)).then(() => {
        const got = this.slots.get(s);
        return got !== undefined && this.half === half ? { status: 'ok', key: got } : this.opts.fallback.key(null, now, timeout);
      });
    }
    const found = this.find(keyname, now);
    if (found !== null) return { status: 'ok', key: found };
    const local = this.opts.fallback.key(keyname, now, timeout);
    if (local.status === 'ok') return local;
    return this.once(`fetch ${s}`, () => this.fetch(s, half)).then(() => {
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
    const half = Math.max(1, Math.floor(timeout / 2));
    if (timeout <= 0 || half !== this.half) return { shared: true, count: 0, current: null };
    let count = 0;
    for (const k of this.slots.values()) if (k.tout + half > now) count++;
    const s = Math.floor(now / half);
    const cur = this.slots.get(s);
    const current = cur === undefined ? null : { age: now - s * half, encryptFor: cur.tout - now, decryptFor: cur.tout + half - now };
    return { shared: true, count, current };
  }

  rotate(): void {
    throw new Error('ticket keys are shared through Redis: the group rotates them every half smtpd cache timeout; rotate is not supported');
  }

  revoke(): void {
    throw new Error('ticket keys are shared through Redis: one member cannot revoke them from the others; revoke is not supported');
  }

  private redisKey(half: number, s: number): string {
    return `${this.opts.link.prefix}${LABEL}:${half}:${s}`;
  }

  /* claim - create the keys of slots s and s+1 if absent, then read back the group's */
  private async claim(s: number, half: number, now: number): Promise<void> {
    const mine = [s, s + 1].map((slot) => this.sealedNew(slot, half));
    const keys = [s, s + 1].map((slot) => this.redisKey(half, slot));
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
    this.learn([s, s + 1], got, half);
  }

  /* fetch - read the keys of slots s-1, s, s+1 (a name lookup that missed in memory) */
  private async fetch(s: number, half: number): Promise<void> {
    const slots = [s - 1, s, s + 1];
    let got: Buffer[];
    try {
      got = await this.opts.link.run('tktkey', (r) => Promise.all(slots.map((slot) => r.getrangeBuffer(this.redisKey(half, slot), 0, MAX_RECORD))));
    } catch {
      return;
    }
    this.learn(slots, got, half);
  }

  /* learn - open and remember fetched slot keys (unless the slot length changed meanwhile) */
  private learn(slots: readonly number[], records: readonly Buffer[], half: number): void {
    if (half !== this.half) return;
    slots.forEach((slot, i) => {
      const rec = records[i];
      if (rec === undefined || rec.length === 0 || this.slots.has(slot)) return;
      // A sealed ticket key has exactly one length per record version: anything else read
      // from Redis is refused before any decryption work is spent on it. A read of
      // MAX_RECORD + 1 bytes was cut short: the value is longer still.
      const overhead = recordOverhead(rec);
      const r = overhead === undefined
        ? { ok: false as const, reason: `unknown record version ${rec[0]}` }
        : rec.length !== overhead + TICKET.RECORDLEN
          ? { ok: false as const, reason: rec.length > MAX_RECORD ? `bad record length over ${MAX_RECORD}` : `bad record length ${rec.length}` }
          : this.opts.sealer.open(LABEL, slotId(half, slot), rec);
      if (!r.ok || r.session.length !== TICKET.RECORDLEN) {
        if (r.ok) r.session.fill(0);
        this.limited.warn('corrupt', `redis ${this.opts.link.config.source}: ticket key of slot ${slot}: ${r.ok ? 'bad length' : r.reason} -- using a local key`);
        return;
      }
      this.slots.set(slot, { record: r.session, tout: Number(r.session.readBigInt64LE(TOUT_OFFSET)) });
    });
  }

  /* sealedNew - a fresh random key for a slot, sealed for Redis (the clear copy is wiped) */
  private sealedNew(slot: number, half: number): Buffer {
    const record = newTicketKey(this.opts.random, (slot + 1) * half);
    try {
      return this.opts.sealer.seal(LABEL, slotId(half, slot), slot * half, record);
    } finally {
      record.fill(0);
    }
  }

  private find(keyname: Buffer, now: number): TicketKey | null {
    let best: TicketKey | null = null;
    for (const k of this.slots.values()) {
      if (k.tout + this.half <= now) continue;
      if (k.record.compare(keyname, 0, keyname.length, 0, TICKET.NAMELEN) !== 0) continue;
      if (best === null || k.tout > best.tout) best = k;
    }
    return best;
  }

  /* prune - drop keys that can no longer decrypt */
  private prune(now: number): void {
    for (const [slot, k] of this.slots) {
      if (k.tout + this.half > now) continue;
      k.record.fill(0);
      this.slots.delete(slot);
    }
  }

  private clearSlots(): void {
    for (const k of this.slots.values()) k.record.fill(0);
    this.slots.clear();
  }

  /* once - one Redis round trip per slot at a time, however many requests wait for it */
  private once(what: string, run: () => Promise<void>): Promise<void> {
    const p = this.pending.get(what);
    if (p !== undefined) return p;
    const q = run().finally(() => this.pending.delete(what));
    this.pending.set(what, q);
    return q;
  }
}

function slotId(half: number, slot: number): Buffer {
  return Buffer.from(`${half}:${slot}`, 'latin1');
}
