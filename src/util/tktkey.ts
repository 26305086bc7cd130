/*
 * NAME
 *   util/tktkey - the layout of a TLS session-ticket key record (TLS_TICKET_KEY)
 * SYNOPSIS
 *   TICKET.NAMELEN KEYLEN MACLEN RECORDLEN     TOUT_OFFSET     newTicketKey(random, tout)
 * DESCRIPTION
 *   tls/tls.h on LP64: the 16-byte key name, the 32-byte cipher key, the 32-byte HMAC key,
 *   then the 8-byte expiry time `tout` (spec 2.8). The protocol (the "tktkey" reply), the
 *   local key ring and the shared key store all use the same record.
 */

/** TLS_TICKET_NAMELEN, TLS_TICKET_KEYLEN, TLS_TICKET_MACLEN and sizeof(TLS_TICKET_KEY) on LP64. */
export const TICKET = {
  NAMELEN: 16,
  KEYLEN: 32,
  MACLEN: 32,
  RECORDLEN: 88,
} as const;

/** Where `tout` (a little-endian time_t) starts in a record: 80. */
export const TOUT_OFFSET = TICKET.NAMELEN + TICKET.KEYLEN + TICKET.MACLEN;

/**
 * A fresh key record: name, cipher and HMAC keys from `random`, then `tout`. The caller owns
 * (and wipes) the record; the random material is wiped here once copied.
 */
export function newTicketKey(random: (n: number) => Buffer, tout: number): Buffer {
  const record = Buffer.alloc(TICKET.RECORDLEN);
  const material = random(TOUT_OFFSET);
  material.copy(record, 0);
  material.fill(0);
  record.writeBigInt64LE(BigInt(tout), TOUT_OFFSET);
  return record;
}
