/*
 * NAME
 *   cache/seal - authenticated encryption of session-cache records (AES-256-GCM)
 * SYNOPSIS
 *   Sealer.fresh(random?): Sealer                 one random key, for this process only
 *   new Sealer(keys: SealKey[], currentId, random?)  a key ring (e.g. a cluster's shared keys)
 *   sealer.seal(cacheType, cacheId, stamp, session): Buffer
 *   sealer.open(cacheType, cacheId, record): Opened | Corrupt
 *   recordStamp(record): number | undefined       the stamp, NOT authenticated (tools, TTLs)
 *   SEAL_OVERHEAD                                  record length - session length (41)
 * DESCRIPTION
 *   Cached sessions hold TLS master secrets, so no store ever sees one in clear. A record is
 *   (version 1, integers big-endian):
 *
 *     offset  length  field
 *     0       1       version = 1
 *     1       4       key id (uint32): the key of the ring that sealed the record
 *     5       8       stamp (int64): the update time, Unix seconds
 *     13      12      nonce: random for every record
 *     25      n       AES-256-GCM ciphertext of the session (n = session length)
 *     25+n    16      GCM tag
 *
 *   The associated data is  "tlsmgr scache" NUL || record[0..13) (version, key id, stamp)
 *   || one byte: length of the cache type || cache type || cache_id bytes.
 *   Binding the cache type and cache_id means a record moved to another id or another cache
 *   (a session of host A served for host B) fails authentication, and so does any change to
 *   the version, key id or stamp. The stamp stays in clear so that a store can index and
 *   expire records without the key (a Redis store can derive a TTL from it); the cache only
 *   trusts the stamp returned by open(), so a store's own copy of it (an index column) can
 *   at worst make a record go early, never serve it past its timeout.
 *
 *   Keys: Sealer.fresh() makes one 32-byte key and a random key id per process. The cache is
 *   emptied at every start, so losing the key at exit loses nothing, and a record left in a
 *   file by an earlier run cannot be opened by anyone. A cluster store shares a ring instead:
 *   every member can open records of any key id it holds and seals with the current one.
 *   Nonces are random, so one key must not seal more than 2^32 records (NIST SP 800-38D,
 *   8.3): a shared ring must rotate (a new key id) well before that; one process lifetime
 *   does not come near it.
 * LIMITS
 *   Cache type at most 255 bytes; key ids 0..2^32-1; keys exactly 32 bytes.
 * DIAGNOSTICS
 *   The constructor throws RangeError for a bad ring. open() never throws for bad data: it
 *   returns { ok: false, reason } (truncated record, unknown version, unknown key id,
 *   authentication failed), and wipes any plaintext it produced before failing.
 * SEE ALSO
 *   cache/scache.ts (treats a Corrupt record as a miss, removes it and warns)
 */

import { createCipheriv, createDecipheriv, createSecretKey, randomBytes, type KeyObject } from 'node:crypto';

export const SEAL_VERSION = 1;
export const SEAL_KEY_LEN = 32;
const HEADER_LEN = 13;
const NONCE_LEN = 12;
const TAG_LEN = 16;
/** Bytes a sealed record adds to the session. */
export const SEAL_OVERHEAD = HEADER_LEN + NONCE_LEN + TAG_LEN;
const CIPHER = 'aes-256-gcm';
/** A context label in the AAD, so that these keys can never be confused with another use. */
const AAD_LABEL = Buffer.from('tlsmgr scache\0', 'latin1');

export interface SealKey {
  readonly id: number;
  /** 32 bytes; the Sealer keeps its own copy (the caller may wipe this one). */
  readonly key: Uint8Array;
}

export interface Opened {
  readonly ok: true;
  readonly stamp: number;
  /** The session; a fresh buffer the caller owns (and should wipe when done). */
  readonly session: Buffer;
}

export interface Corrupt {
  readonly ok: false;
  readonly reason: string;
}

/** The stamp of a record, without authentication (undefined when too short). */
export function recordStamp(record: Buffer): number | undefined {
  return record.length < SEAL_OVERHEAD ? undefined : Number(record.readBigInt64BE(5));
}

export class Sealer {
  private readonly keys = new Map<number, KeyObject>();
  readonly currentId: number;
  private readonly currentKey: KeyObject;
  /** The associated data is built here, one call at a time (setAAD() consumes it at once). */
  private aadBuf = Buffer.allocUnsafe(AAD_LABEL.length + HEADER_LEN + 1 + 255 + 128);
  /** The cache type bytes with their length byte in front, per cache type. */
  private readonly typeBytes = new Map<string, Buffer>();

  constructor(
    keys: readonly SealKey[],
    currentId: number,
    private readonly random: (n: number) => Buffer = randomBytes,
  ) {
    for (const k of keys) {
      if (!Number.isInteger(k.id) || k.id < 0 || k.id > 0xffffffff) throw new RangeError(`bad seal key id: ${k.id}`);
      if (k.key.length !== SEAL_KEY_LEN) throw new RangeError(`seal key ${k.id}: ${k.key.length} bytes, need ${SEAL_KEY_LEN}`);
      // createSecretKey() copies the bytes into a KeyObject, outside the JS heap.
      this.keys.set(k.id, createSecretKey(k.key));
    }
    const current = this.keys.get(currentId);
    if (current === undefined) throw new RangeError(`no seal key with the current id ${currentId}`);
    this.currentId = currentId;
    this.currentKey = current;
    AAD_LABEL.copy(this.aadBuf, 0);
  }

  /** A ring of one fresh random key with a random key id. */
  static fresh(random: (n: number) => Buffer = randomBytes): Sealer {
    const key = random(SEAL_KEY_LEN);
    const id = random(4).readUInt32BE(0);
    try {
      return new Sealer([{ id, key }], id, random);
    } finally {
      key.fill(0);
    }
  }

  seal(cacheType: string, cacheId: Uint8Array, stamp: number, session: Uint8Array): Buffer {
    const rec = Buffer.allocUnsafe(SEAL_OVERHEAD + session.length);
    rec[0] = SEAL_VERSION;
    rec.writeUInt32BE(this.currentId, 1);
    writeStamp(rec, stamp);
    const nonce = this.random(NONCE_LEN);
    nonce.copy(rec, HEADER_LEN);
    const c = createCipheriv(CIPHER, this.currentKey, nonce, { authTagLength: TAG_LEN });
    c.setAAD(this.aad(rec, cacheType, cacheId));
    let at = HEADER_LEN + NONCE_LEN;
    at += c.update(session).copy(rec, at);
    at += c.final().copy(rec, at);
    c.getAuthTag().copy(rec, at);
    return rec;
  }

  open(cacheType: string, cacheId: Uint8Array, record: Buffer): Opened | Corrupt {
    if (record.length < SEAL_OVERHEAD) return { ok: false, reason: `truncated record (${record.length} bytes)` };
    if (record[0] !== SEAL_VERSION) return { ok: false, reason: `unknown record version ${record[0]}` };
    const id = record.readUInt32BE(1);
    const key = id === this.currentId ? this.currentKey : this.keys.get(id);
    if (key === undefined) return { ok: false, reason: `unknown key id ${id}` };
    const d = createDecipheriv(CIPHER, key, record.subarray(HEADER_LEN, HEADER_LEN + NONCE_LEN), { authTagLength: TAG_LEN });
    d.setAAD(this.aad(record, cacheType, cacheId));
    d.setAuthTag(record.subarray(record.length - TAG_LEN));
    // GCM's update() returns plaintext before the tag is checked: wipe it if final() fails.
    const session = d.update(record.subarray(HEADER_LEN + NONCE_LEN, record.length - TAG_LEN));
    try {
      d.final();
    } catch {
      session.fill(0);
      return { ok: false, reason: 'authentication failed' };
    }
    return { ok: true, stamp: readStamp(record), session };
  }

  /*
   * aad - label || header || len(type) || type || cache_id, unambiguous as the id is last;
   * built in a buffer kept for the purpose (no secret goes in it), valid until the next call
   */
  private aad(rec: Buffer, cacheType: string, cacheId: Uint8Array): Buffer {
    let type = this.typeBytes.get(cacheType);
    if (type === undefined) {
      const t = Buffer.from(cacheType, 'latin1');
      if (t.length > 255) throw new RangeError('cache type longer than 255 bytes');
      type = Buffer.concat([Buffer.of(t.length), t]);
      if (this.typeBytes.size < 16) this.typeBytes.set(cacheType, type);
    }
    const n = AAD_LABEL.length + HEADER_LEN + type.length + cacheId.length;
    if (n > this.aadBuf.length) {
      this.aadBuf = Buffer.allocUnsafe(n * 2);
      AAD_LABEL.copy(this.aadBuf, 0);
    }
    const b = this.aadBuf;
    let at = AAD_LABEL.length;
    at += rec.copy(b, at, 0, HEADER_LEN);
    at += type.copy(b, at);
    b.set(cacheId, at);
    return b.subarray(0, n);
  }
}

/* writeStamp - the int64 stamp at offset 5, big-endian, without a BigInt for safe integers */
function writeStamp(rec: Buffer, stamp: number): void {
  if (!Number.isSafeInteger(stamp)) {
    rec.writeBigInt64BE(BigInt(stamp), 5); // throws RangeError for a non-integer, as before
    return;
  }
  const hi = Math.floor(stamp / 0x100000000);
  rec.writeInt32BE(hi, 5);
  rec.writeUInt32BE(stamp - hi * 0x100000000, 9);
}

/* readStamp - the int64 stamp at offset 5 as a number (exact within +-2^53) */
function readStamp(rec: Buffer): number {
  const hi = rec.readInt32BE(5);
  if (hi > 0x1fffff || hi < -0x200000) return Number(rec.readBigInt64BE(5));
  return hi * 0x100000000 + rec.readUInt32BE(9);
}
