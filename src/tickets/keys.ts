/*
 * NAME
 *   tickets/keys - RFC 5077 session-ticket keys for smtpd: create, rotate, find by name
 * SYNOPSIS
 *   const ring = new TicketKeyRing(random)
 *   ring.key(keyname: Buffer | null, now: number, timeout: number): TicketKeyResult
 *   ring.clear()
 *   ring.info(now, timeout): TicketKeyInfo      ring.rotate(now, timeout)      ring.revoke()
 *   ring.created                                keys made since start (for the metrics)
 * DESCRIPTION
 *   tls_scache_key() and tls_scache_key_rotate() with tlsmgr_key() (spec 2.8). With
 *   half = floor(timeout / 2), timeout being the sanitised smtpd cache timeout:
 *   - no name: the current key if its tout > now, else a new key (16-byte name, 32-byte
 *     cipher key, 32-byte HMAC key, all random; tout = now + half - 1) rotated in;
 *   - a 16-byte name: the newest of the (at most two) keys with that name whose
 *     tout + half > now, else "not found";
 *   - rotation: the new key overwrites slot 1; if slot 0 is empty or its tout is earlier,
 *     the slots swap. So at most two keys exist, and the second-next key kills a key.
 *   Operator actions (tlsmgr-ctl, daemon/control.ts):
 *   - rotate(now, timeout): a new current key at once, made as key() makes one; the old
 *     current key moves to slot 1 unchanged, so it still decrypts until its tout + half (and
 *     the key that was in slot 1 is dropped, as the next natural rotation would drop it).
 *     smtpd keeps its own copy of the current key until that key's tout: the new key is what
 *     smtpd processes get when they next ask;
 *   - revoke(): clear(): no key issued before is found by name again;
 *   - info(now, timeout): how many keys can still decrypt and the current key's times (age,
 *     seconds left to encrypt and to decrypt), derived from tout: never key bytes.
 *   A key is held as its 88-byte wire record (name, bits, hmac, tout as int64 LE, the x86-64
 *   TLS_TICKET_KEY image) and only in memory; a dropped key is overwritten with zeros.
 * DIAGNOSTICS
 *   key() returns { status: 'nokey' } for an unknown or expired name and 'disabled' for
 *   timeout <= 0; name-length checks belong to the caller (protocol/dispatch).
 * SEE ALSO
 *   tls/tls_scache.c, tls/tls_scache.h (TLS_TICKET_KEY)
 */

import { TICKET, newTicketKey } from '../util/tktkey.js';


export interface TicketKey {
  /** The 88-byte record; bytes 0..15 are the name. */
  readonly record: Buffer;
  readonly tout: number;
}

export type TicketKeyResult =
  | { readonly status: 'ok'; readonly key: TicketKey }
  | { readonly status: 'nokey' }
  | { readonly status: 'disabled' };

/** What an operator may see of a ring: times only, never names or key bytes. */
export interface TicketKeyInfo {
  /** Keys shared by a Redis group (tickets/shared.ts) rather than this daemon's own ring. */
  readonly shared: boolean;
  /** Keys that can still decrypt. */
  readonly count: number;
  /** The key smtpd encrypts with now; null when there is none (one is made on the next request). */
  readonly current: { readonly age: number; readonly encryptFor: number; readonly decryptFor: number } | null;
  /** Shared keys: the Redis group's generation (rotate and revoke raise it); null before it was read. */
  readonly generation?: number | null;
}

export class TicketKeyRing {
  private readonly slots: Array<TicketKey | null> = [null, null];
  private made = 0;

  /** @param random returns n cryptographically random bytes */
  constructor(private readonly random: (n: number) => Buffer) {}

  key(keyname: Buffer | null, now: number, timeout: number): TicketKeyResult {
    if (timeout <= 0) return { status: 'disabled' };
    const half = Math.floor(timeout / 2);
    if (keyname === null || keyname.length === 0) {
      const cur = this.slots[0];
      if (cur !== null && cur.tout > now) return { status: 'ok', key: cur };
      const key = this.create(now + half - 1);
      this.rotateIn(key);
      return { status: 'ok', key };
    }
    for (const k of this.slots) {
      if (k !== null && k.record.compare(keyname, 0, keyname.length, 0, TICKET.NAMELEN) === 0 && k.tout + half > now) {
        return { status: 'ok', key: k };
      }
    }
    return { status: 'nokey' };
  }

  /** Forget both keys, wiping them. */
  clear(): void {
    for (let i = 0; i < this.slots.length; i++) {
      this.slots[i]?.record.fill(0);
      this.slots[i] = null;
    }
  }

  /** A new current key now; the old current key decrypts until it expires. */
  rotate(now: number, timeout: number): void {
    if (timeout <= 0) throw new Error('ticket keys are disabled (smtpd_tls_session_cache_timeout is 0)');
    const half = Math.floor(timeout / 2);
    const key = this.create(now + half - 1);
    this.slots[1]?.record.fill(0);
    this.slots[1] = this.slots[0];
    this.slots[0] = key;
  }

  /** Drop every key: no ticket issued before resumes. */
  revoke(): void {
    this.clear();
  }

  /** Keys made since start: by key() and rotate(). */
  get created(): number {
    return this.made;
  }

  info(now: number, timeout: number): TicketKeyInfo {
    const half = Math.floor(timeout / 2);
    const live = this.slots.filter((k): k is TicketKey => k !== null && k.tout + half > now);
    const cur = this.slots[0];
    const current = cur !== null && cur.tout > now
      ? { age: Math.max(0, now - (cur.tout - half + 1)), encryptFor: cur.tout - now, decryptFor: cur.tout + half - now }
      : null;
    return { shared: false, count: live.length, current };
  }

  private create(tout: number): TicketKey {
    this.made++;
    return { record: newTicketKey(this.random, tout), tout };
  }

  private rotateIn(key: TicketKey): void {
    this.slots[1]?.record.fill(0);
    this.slots[1] = key;
    const cur = this.slots[0];
    if (cur === null || cur.tout < key.tout) {
      this.slots[1] = cur;
      this.slots[0] = key;
    }
  }
}
