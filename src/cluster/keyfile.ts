/*
 * NAME
 *   cluster/keyfile - the cluster key file: the secret every member of a group shares
 * SYNOPSIS
 *   readClusterKeys(path, random?): ClusterKeys
 *   parseClusterKeys(text, where, random?): ClusterKeys
 *   ClusterKeys.sealer       seals with the first key, opens records of any listed key
 *   ClusterKeys.idKeys       one keyed-hash key per listed key, the first one first
 *   ClusterKeys.wipe()
 * DESCRIPTION
 *   The file holds one key per line, "<key id> <64 hex digits>" (a 32-byte key); blank
 *   lines and lines starting with # are ignored. Make one with
 *       (umask 077; printf '1 %s\n' "$(openssl rand -hex 32)" > /etc/postfix/tlsmgr-cluster.key)
 *   The first key seals every new record (session-cache records and ticket keys) and names
 *   cache_ids; every listed key opens records and finds ids. So a key rolls without a flag
 *   day: add the new key as the second line on every host, then move it to the first line
 *   everywhere, then, once records of the old key have expired (one cache timeout), drop
 *   the old line.
 *   The listed keys are never used directly: HKDF-SHA256 derives from each a sealing key
 *   ("tlsmgr seal v1") and a cache_id hashing key ("tlsmgr cache_id v1"), so that one secret
 *   serves both without the two uses meeting.
 * LIMITS
 *   At most 16 keys; ids 0..4294967295, each once.
 * DIAGNOSTICS
 *   FatalError, naming the file: not a regular file, readable or writable by group or others
 *   (mode must be 0600 or 0400), no keys, a malformed line (by line number; key text is
 *   never echoed), a repeated id.
 */

import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { createSecretKey, hkdfSync, randomBytes, type KeyObject } from 'node:crypto';
import { FatalError } from '../errors.js';
import { Sealer, SEAL_KEY_LEN, type SealKey } from '../cache/seal.js';

export const MAX_CLUSTER_KEYS = 16;
const MAX_FILE_BYTES = 64 * 1024;

export interface IdKey {
  readonly id: number;
  readonly key: KeyObject;
}

export interface ClusterKeys {
  readonly sealer: Sealer;
  /** The cache_id hashing keys, in file order: the first names new entries. */
  readonly idKeys: readonly IdKey[];
}

function derive(key: Buffer, info: string): Buffer {
  return Buffer.from(hkdfSync('sha256', key, Buffer.alloc(0), info, SEAL_KEY_LEN));
}

export function parseClusterKeys(text: string, where: string, random?: (n: number) => Buffer): ClusterKeys {
  const raw: Array<{ id: number; key: Buffer }> = [];
  try {
    const lines = text.split('\n');
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i].trim();
      if (line === '' || line.startsWith('#')) continue;
      const m = /^(\d{1,10})\s+([0-9a-fA-F]{64})$/.exec(line);
      if (m === null) throw new FatalError(`${where}, line ${i + 1}: expected "<key id> <64 hex digits>"`);
      const id = Number(m[1]);
      if (id > 0xffffffff) throw new FatalError(`${where}, line ${i + 1}: key id ${m[1]} is over 4294967295`);
      if (raw.some((k) => k.id === id)) throw new FatalError(`${where}, line ${i + 1}: key id ${id} listed twice`);
      raw.push({ id, key: Buffer.from(m[2], 'hex') });
      if (raw.length > MAX_CLUSTER_KEYS) throw new FatalError(`${where}: more than ${MAX_CLUSTER_KEYS} keys`);
    }
    if (raw.length === 0) throw new FatalError(`${where}: no keys`);
    const sealKeys: SealKey[] = raw.map((k) => ({ id: k.id, key: derive(k.key, 'tlsmgr seal v1') }));
    const idKeys: IdKey[] = raw.map((k) => {
      const d = derive(k.key, 'tlsmgr cache_id v1');
      const key = createSecretKey(d);
      d.fill(0);
      return { id: k.id, key };
    });
    const sealer = new Sealer(sealKeys, sealKeys[0].id, random);
    for (const k of sealKeys) (k.key as Buffer).fill(0);
    return { sealer, idKeys };
  } finally {
    for (const k of raw) k.key.fill(0);
  }
}

/** Read the key file; refuse one that group or others can read or write. */
export function readClusterKeys(path: string, random: (n: number) => Buffer = randomBytes): ClusterKeys {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    throw new FatalError(`open cluster key file ${path}: ${(err as Error).message}`, { cause: err });
  }
  const buf = Buffer.alloc(MAX_FILE_BYTES + 1);
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new FatalError(`cluster key file ${path}: not a regular file`);
    if ((st.mode & 0o077) !== 0) {
      throw new FatalError(
        `cluster key file ${path}: mode 0${(st.mode & 0o777).toString(8)} gives access to group or others: use chmod 600`,
      );
    }
    let n = 0;
    for (let r = -1; r !== 0 && n < buf.length; n += r) r = readSync(fd, buf, n, buf.length - n, null);
    if (n > MAX_FILE_BYTES) throw new FatalError(`cluster key file ${path}: larger than ${MAX_FILE_BYTES} bytes`);
    return parseClusterKeys(buf.toString('latin1', 0, n), `cluster key file ${path}`, random);
  } finally {
    buf.fill(0);
    closeSync(fd);
  }
}
