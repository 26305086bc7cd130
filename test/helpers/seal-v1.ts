/*
 * NAME
 *   seal-v1 - version 1 session-cache records, as earlier releases wrote them, for tests
 * SYNOPSIS
 *   sealV1(key, keyId, cacheType, cacheId, stamp, session, nonce?): Buffer
 *   GOLDEN_V1                    a record written by the version 1 code itself
 *   clusterSealKey(keyHex): Buffer    the ring key a cluster key-file line gives the Sealer
 * DESCRIPTION
 *   util/seal.ts writes version 2 only but must keep opening version 1 (older members of a
 *   Redis group). This builds version 1 records independently of src/, from the layout:
 *   version 1 | key id (uint32 BE) | stamp (int64 BE) | 12-byte nonce | AES-256-GCM
 *   ciphertext under the ring key itself | 16-byte tag, with the AAD "tlsmgr scache" NUL ||
 *   record[0..13) || len(cache type) || cache type || cache_id. GOLDEN_V1 was produced by the
 *   version 1 Sealer (before XAES-256-GCM) and is checked against sealV1, so the helper and
 *   the old code agree byte for byte.
 *   clusterSealKey() is HKDF-SHA256(key, no salt, "tlsmgr seal v1"), the derivation of
 *   cluster/keyfile.ts, so a test can seal as an older cluster member would.
 */

import { createCipheriv, hkdfSync, randomBytes } from 'node:crypto';

export function sealV1(
  key: Uint8Array,
  keyId: number,
  cacheType: string,
  cacheId: Uint8Array,
  stamp: number,
  session: Uint8Array,
  nonce: Uint8Array = randomBytes(12),
): Buffer {
  const header = Buffer.alloc(13);
  header[0] = 1;
  header.writeUInt32BE(keyId, 1);
  header.writeBigInt64BE(BigInt(stamp), 5);
  const type = Buffer.from(cacheType, 'latin1');
  const aad = Buffer.concat([Buffer.from('tlsmgr scache\0', 'latin1'), header, Buffer.of(type.length), type, cacheId]);
  const c = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: 16 });
  c.setAAD(aad);
  return Buffer.concat([header, nonce, c.update(session), c.final(), c.getAuthTag()]);
}

/** Written by the version 1 Sealer: key id 7, key 32 x 0x42, nonce 00..0b. */
export const GOLDEN_V1 = {
  key: Buffer.alloc(32, 0x42),
  keyId: 7,
  cacheType: 'smtpd',
  cacheId: Buffer.from('golden.example:25'),
  stamp: 1700000000,
  session: Buffer.from('a session from a version 1 member'),
  nonce: Buffer.from('000102030405060708090a0b', 'hex'),
  record: Buffer.from(
    '0100000007000000006553f100000102030405060708090a0b64fee2b8c25f9b64f3262261beb07b5a12ebab18d3208d8733a8004aff79df9a268caa4fbfa1b8afc8cc41cff4752a2c81',
    'hex',
  ),
} as const;

export function clusterSealKey(keyHex: string): Buffer {
  return Buffer.from(hkdfSync('sha256', Buffer.from(keyHex, 'hex'), Buffer.alloc(0), 'tlsmgr seal v1', 32));
}
