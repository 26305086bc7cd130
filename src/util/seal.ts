/*
 * NAME
 *   util/seal - authenticated encryption of session-cache records (XAES-256-GCM)
 * SYNOPSIS
 *   Sealer.fresh(random?): Sealer                 one random key, for this process only
 *   new Sealer(keys: SealKey[], currentId, random?)  a key ring (e.g. a cluster's shared keys)
 *   sealer.seal(cacheType, cacheId, stamp, session): Buffer        a version 2 record
 *   sealer.open(cacheType, cacheId, record): Opened | Corrupt      versions 1 and 2
 *   recordStamp(record): number | undefined       the stamp, NOT authenticated (tools, TTLs)
 *   recordOverhead(record): number | undefined    record length - session length, by version
 *   SEAL_OVERHEAD                                  what seal() adds to a session (53)
 *   SEAL_OVERHEAD_V1                               what a version 1 record adds (41)
 *   new XaesKey(key).subkey(nonce) / .seal(nonce, plaintext, aad) / .open(nonce, sealed, aad)
 * DESCRIPTION
 *   Cached sessions hold TLS master secrets, so no store ever sees one in clear. seal()
 *   writes version 2 (integers big-endian):
 *
 *     offset  length  field
 *     0       1       version = 2
 *     1       4       key id (uint32): the key of the ring that sealed the record
 *     5       8       stamp (int64): the update time, Unix seconds
 *     13      24      nonce: random for every record
 *     37      n       XAES-256-GCM ciphertext of the session (n = session length)
 *     37+n    16      GCM tag
 *
 *   Version 1 (written by earlier releases) differs only in the nonce, 12 bytes at offset 13,
 *   and the cipher, AES-256-GCM under the ring key itself (ciphertext at 25, 41 bytes over
 *   the session). open() still reads it: a cluster key file and a Redis group outlive a
 *   release, so during a rolling upgrade members that write version 1 share one store with
 *   members that write version 2, and each must open the other's records.
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
 *   Why version 2: version 1 sealed every record under one long-lived key with a random
 *   96-bit nonce, and NIST SP 800-38D (8.3) caps that at 2^32 records per key; a shared
 *   ring at 50,000 updates a second reaches it in a day. XAES-256-GCM (c2sp.org/XAES-256-GCM)
 *   takes a 192-bit nonce: its first 96 bits derive a per-record AES-256-GCM key from the
 *   ring key with the NIST SP 800-108r1 counter KDF over CMAC-AES-256 (two AES-256 block
 *   encryptions, one 32-byte ECB update() on a cipher kept per key), its last 96 bits are
 *   the GCM nonce. With random 192-bit nonces a key can seal 2^80 records before the chance
 *   of any nonce repeating reaches 2^-32, so no rotation is needed for nonce reasons.
 *   The XAES input key is not the ring key itself but HKDF-SHA256(ring key, info
 *   "tlsmgr scache v2 xaes"), so that no key is both a GCM key (version 1) and the KDF's
 *   key: GCM's hash key AES_K(0) is exactly CMAC's L.
 *
 *   Keys: Sealer.fresh() makes one 32-byte key and a random key id per process. The cache is
 *   emptied at every start, so losing the key at exit loses nothing, and a record left in a
 *   file by an earlier run cannot be opened by anyone. A cluster store shares a ring instead:
 *   every member can open records of any key id it holds and seals with the current one.
 * LIMITS
 *   Cache type at most 255 bytes; key ids 0..2^32-1; keys exactly 32 bytes; XAES nonces
 *   exactly 24 bytes. 2^80 version 2 records per key (collision chance 2^-32); version 1
 *   records are only opened, never written.
 * DIAGNOSTICS
 *   The constructors throw RangeError for a bad ring or key. open() never throws for bad
 *   data: it returns { ok: false, reason } (truncated record, unknown version, unknown key
 *   id, authentication failed), and wipes any plaintext it produced before failing.
 * SEE ALSO
 *   cache/scache.ts (treats a Corrupt record as a miss, removes it and warns),
 *   c2sp.org/XAES-256-GCM, NIST SP 800-38B (CMAC), SP 800-108r1 (KDF), SP 800-38D (GCM)
 */

import {
  createCipheriv,
  createDecipheriv,
  createSecretKey,
  hkdfSync,
  randomBytes,
  type Cipher,
  type CipherGCM,
  type DecipherGCM,
  type KeyObject,
} from 'node:crypto';

/** The version seal() writes. */
export const SEAL_VERSION = 2;
export const SEAL_KEY_LEN = 32;
const HEADER_LEN = 13;
const NONCE_LEN_V1 = 12;
/** An XAES-256-GCM nonce: 12 bytes that derive the record's key, 12 that are its GCM nonce. */
export const XAES_NONCE_LEN = 24;
const TAG_LEN = 16;
/** Bytes a version 1 record adds to its session. */
export const SEAL_OVERHEAD_V1 = HEADER_LEN + NONCE_LEN_V1 + TAG_LEN;
/** Bytes a sealed record (version 2, what seal() writes) adds to the session; the most of any version. */
export const SEAL_OVERHEAD = HEADER_LEN + XAES_NONCE_LEN + TAG_LEN;
const GCM = 'aes-256-gcm';
/** A context label in the AAD, so that these keys can never be confused with another use. */
const AAD_LABEL = Buffer.from('tlsmgr scache\0', 'latin1');
/** HKDF info of the XAES input key derived from a ring key (see DESCRIPTION). */
const XAES_INFO = 'tlsmgr scache v2 xaes';

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

/** What a record of this version adds to its session; undefined for an unknown version. */
function overheadOf(version: number | undefined): number | undefined {
  return version === 2 ? SEAL_OVERHEAD : version === 1 ? SEAL_OVERHEAD_V1 : undefined;
}

/** The overhead of a record by its version byte (undefined: empty, or an unknown version). */
export function recordOverhead(record: Uint8Array): number | undefined {
  return overheadOf(record[0]);
}

/** The stamp of a record, without authentication (undefined when too short or of an unknown version). */
export function recordStamp(record: Buffer): number | undefined {
  const o = recordOverhead(record);
  return o === undefined || record.length < o ? undefined : Number(record.readBigInt64BE(5));
}

/*
 * XaesKey - XAES-256-GCM (c2sp.org/XAES-256-GCM) under one 32-byte key. The CMAC subkey K1 is
 * computed once; each message then costs one 32-byte update() of an AES-256-ECB cipher kept
 * for the key (autopadding off, never final()ed: ECB holds no state between blocks).
 */
export class XaesKey {
  private readonly ecb: Cipher;
  /* Both KDF input blocks, M1 xor K1 || M2 xor K1; per message only the 12 nonce bytes of
   * each half change. It holds K1 xor public bytes, as secret as K1 and kept as long. */
  private readonly m = Buffer.alloc(32);
  private readonly k1 = Buffer.alloc(16);

  constructor(key: Uint8Array) {
    if (key.length !== SEAL_KEY_LEN) throw new RangeError(`XAES-256-GCM key: ${key.length} bytes, need ${SEAL_KEY_LEN}`);
    this.ecb = createCipheriv('aes-256-ecb', key, null);
    this.ecb.setAutoPadding(false);
    // K1 = L doubled in GF(2^128), L = AES-256_K(0^128) (SP 800-38B 6.1).
    const l = this.ecb.update(Buffer.alloc(16));
    for (let i = 0; i < 15; i++) this.k1[i] = ((l[i] << 1) | (l[i + 1] >>> 7)) & 0xff;
    this.k1[15] = ((l[15] << 1) & 0xff) ^ (l[0] & 0x80 ? 0x87 : 0);
    l.fill(0);
    // M_i = 0x00 || i || "X" || 0x00 || N[0..12): counter i (16 bits), label, separator, context.
    const fixed = [[0x00, 0x01, 0x58, 0x00], [0x00, 0x02, 0x58, 0x00]];
    for (let h = 0; h < 2; h++) for (let i = 0; i < 4; i++) this.m[16 * h + i] = fixed[h][i] ^ this.k1[i];
  }

  /** The derived AES-256-GCM key of a nonce (its first 12 bytes): a fresh buffer the caller wipes. */
  subkey(nonce: Uint8Array): Buffer {
    if (nonce.length !== XAES_NONCE_LEN) throw new RangeError(`XAES-256-GCM nonce: ${nonce.length} bytes, need ${XAES_NONCE_LEN}`);
    const m = this.m;
    const k1 = this.k1;
    for (let i = 0; i < 12; i++) {
      const b = nonce[i] ^ k1[4 + i];
      m[4 + i] = b;
      m[20 + i] = b;
    }
    return this.ecb.update(m);
  }

  /** A GCM cipher for this nonce (derived key, last 12 bytes as the GCM nonce); set the AAD next. */
  cipher(nonce: Uint8Array): CipherGCM {
    const kx = this.subkey(nonce);
    try {
      return createCipheriv(GCM, kx, nonce.subarray(12), { authTagLength: TAG_LEN });
    } finally {
      kx.fill(0);
    }
  }

  decipher(nonce: Uint8Array): DecipherGCM {
    const kx = this.subkey(nonce);
    try {
      return createDecipheriv(GCM, kx, nonce.subarray(12), { authTagLength: TAG_LEN });
    } finally {
      kx.fill(0);
    }
  }

  /** Ciphertext || tag. */
  seal(nonce: Uint8Array, plaintext: Uint8Array, aad: Uint8Array): Buffer {
    const c = this.cipher(nonce);
    c.setAAD(aad);
    return Buffer.concat([c.update(plaintext), c.final(), c.getAuthTag()]);
  }

  /** The plaintext of ciphertext || tag, or null when it does not authenticate (or is shorter than a tag). */
  open(nonce: Uint8Array, sealed: Uint8Array, aad: Uint8Array): Buffer | null {
    if (sealed.length < TAG_LEN) return null;
    const d = this.decipher(nonce);
    d.setAAD(aad);
    d.setAuthTag(sealed.subarray(sealed.length - TAG_LEN));
    return finish(d, sealed.subarray(0, sealed.length - TAG_LEN));
  }
}

/* finish - decrypt and check the tag; GCM's update() returns plaintext before the tag is
 * checked, so it is wiped when final() fails */
function finish(d: DecipherGCM, ciphertext: Uint8Array): Buffer | null {
  const plain = d.update(ciphertext);
  try {
    d.final();
  } catch {
    plain.fill(0);
    return null;
  }
  return plain;
}

interface RingKey {
  /** The ring key as an AES-256-GCM key: opens version 1 records only. */
  readonly v1: KeyObject;
  /** XAES-256-GCM under the key derived for version 2. */
  readonly x: XaesKey;
}

export class Sealer {
  private readonly keys = new Map<number, RingKey>();
  readonly currentId: number;
  private readonly current: RingKey;
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
      const xk = Buffer.from(hkdfSync('sha256', k.key, Buffer.alloc(0), XAES_INFO, SEAL_KEY_LEN));
      try {
        // createSecretKey() copies the bytes into a KeyObject, outside the JS heap.
        this.keys.set(k.id, { v1: createSecretKey(k.key), x: new XaesKey(xk) });
      } finally {
        xk.fill(0);
      }
    }
    const current = this.keys.get(currentId);
    if (current === undefined) throw new RangeError(`no seal key with the current id ${currentId}`);
    this.currentId = currentId;
    this.current = current;
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

  /** A version 2 record of the session under the current key. */
  seal(cacheType: string, cacheId: Uint8Array, stamp: number, session: Uint8Array): Buffer {
    const rec = Buffer.allocUnsafe(SEAL_OVERHEAD + session.length);
    rec[0] = SEAL_VERSION;
    rec.writeUInt32BE(this.currentId, 1);
    writeStamp(rec, stamp);
    const nonce = this.random(XAES_NONCE_LEN);
    nonce.copy(rec, HEADER_LEN);
    const c = this.current.x.cipher(nonce);
    c.setAAD(this.aad(rec, cacheType, cacheId));
    let at = HEADER_LEN + XAES_NONCE_LEN;
    at += c.update(session).copy(rec, at);
    at += c.final().copy(rec, at);
    c.getAuthTag().copy(rec, at);
    return rec;
  }

  /** The stamp and session of a record of version 1 or 2, or why it is not one. */
  open(cacheType: string, cacheId: Uint8Array, record: Buffer): Opened | Corrupt {
    if (record.length === 0) return { ok: false, reason: 'truncated record (0 bytes)' };
    const version = record[0];
    const overhead = overheadOf(version);
    if (overhead === undefined) return { ok: false, reason: `unknown record version ${version}` };
    if (record.length < overhead) return { ok: false, reason: `truncated record (${record.length} bytes)` };
    const id = record.readUInt32BE(1);
    const key = id === this.currentId ? this.current : this.keys.get(id);
    if (key === undefined) return { ok: false, reason: `unknown key id ${id}` };
    const nonceEnd = overhead - TAG_LEN;
    const nonce = record.subarray(HEADER_LEN, nonceEnd);
    const d = version === 2 ? key.x.decipher(nonce) : createDecipheriv(GCM, key.v1, nonce, { authTagLength: TAG_LEN });
    d.setAAD(this.aad(record, cacheType, cacheId));
    d.setAuthTag(record.subarray(record.length - TAG_LEN));
    const session = finish(d, record.subarray(nonceEnd, record.length - TAG_LEN));
    if (session === null) return { ok: false, reason: 'authentication failed' };
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
