/*
 * NAME
 *   cache/entry - the stored form of one cached session
 * SYNOPSIS
 *   encodeEntry(stamp: number, session: Uint8Array): Buffer
 *   decodeEntry(record: Buffer): { stamp: number; session: Buffer } | null
 * DESCRIPTION
 *   A record is the update time as a signed 64-bit little-endian Unix time (Postfix's time_t
 *   on x86-64) followed by the session bytes exactly as the client sent them (spec 3.4).
 *   Postfix hex-encodes this for its dict(3) maps; our stores keep bytes, as no other program
 *   reads the file. encodeEntry() always copies the session, so a record never shares memory
 *   with a network buffer.
 * DIAGNOSTICS
 *   decodeEntry() returns null for a record shorter than the timestamp (the caller warns
 *   "truncated entry" and deletes it, as tls_scache_decode() does).
 * SEE ALSO
 *   tls/tls_scache.c tls_scache_encode(), tls_scache_decode()
 */

export const STAMP_LEN = 8;

export function encodeEntry(stamp: number, session: Uint8Array): Buffer {
  const rec = Buffer.allocUnsafe(STAMP_LEN + session.length);
  rec.writeBigInt64LE(BigInt(stamp), 0);
  rec.set(session, STAMP_LEN);
  return rec;
}

export function decodeEntry(record: Buffer): { stamp: number; session: Buffer } | null {
  if (record.length < STAMP_LEN) return null;
  return { stamp: Number(record.readBigInt64LE(0)), session: record.subarray(STAMP_LEN) };
}
