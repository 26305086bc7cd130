/*
 * NAME
 *   tickets/keys - RFC 5077 session-ticket keys for smtpd: create, rotate, find by name
 * SYNOPSIS
 *   const ring = new TicketKeyRing(random)
 *   ring.key(keyname: Buffer | null, now: number, timeout: number): TicketKeyResult
 *   ring.clear()
 * DESCRIPTION
 *   tls_scache_key() and tls_scache_key_rotate() with tlsmgr_key() (spec 2.8). With
 *   half = floor(timeout / 2), timeout being the sanitised smtpd cache timeout:
 *   - no name: the current key if its tout > now, else a new key (16-byte name, 32-byte
 *     cipher key, 32-byte HMAC key, all random; tout = now + half - 1) rotated in;
 *   - a 16-byte name: the newest of the (at most two) keys with that name whose
 *     tout + half > now, else "not found";
 *   - rotation: the new key overwrites slot 1; if slot 0 is empty or its tout is earlier,
 *     the slots swap. So at most two keys exist, and the second-next key kills a key.
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

export class TicketKeyRing {
  private readonly slots: Array<TicketKey | null> = [null, null];

  /** @param random returns n cryptographically random bytes */
  constructor(private readonly random: (n: number) => Buffer) {}

  key(keyname: Buffer | null, now: number, timeout: number): TicketKeyResult {
    if (timeout <= 0) return { status: 'disabled' };
    const half = Math.floor(timeout / 2);
    if (keyname === null || keyname.length === 0) {
      const cur = this.slots[0];
      if (cur !== null && cur.tout > now) return { status: 'ok', key: cur };
      const key = this.create(now + half - 1);
      this.rotate(key);
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

  private create(tout: number): TicketKey {
    return { record: newTicketKey(this.random, tout), tout };
  }

  private rotate(key: TicketKey): void {
    this.slots[1]?.record.fill(0);
    this.slots[1] = key;
    const cur = this.slots[0];
    if (cur === null || cur.tout < key.tout) {
      this.slots[1] = cur;
      this.slots[0] = key;
    }
  }
}
