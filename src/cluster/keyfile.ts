/*
 * NAME
 *   cluster/keyfile - the cluster key file: the secret every member of a group shares
 * SYNOPSIS
 *   readClusterKeys(path, random?, opts?: { mailOwner? }): ClusterKeys
 *   parseClusterKeyBytes(bytes, where, random?): ClusterKeys
 *   parseClusterKeys(text, where, random?): ClusterKeys      (tests, tools)
 *   ClusterKeys.sealer       seals with the first key, opens records of any listed key
 *   ClusterKeys.idKeys       one keyed-hash key per listed key, the first one first
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
 *   The key text never becomes a JS string (strings cannot be wiped and may be copied by the
 *   engine at will): the file is read into one buffer, the lines are parsed as bytes, each
 *   key's hex is decoded straight into a key buffer, and the file buffer, the decoded keys
 *   and the HKDF outputs are all zeroed before readClusterKeys() returns or throws; the keys
 *   then live only in KeyObjects and the Sealer.
 * LIMITS
 *   At most 16 keys; ids 0..4294967295, each once; a file of at most 64 KiB. White space is
 *   ASCII (space, tab, CR, VT, FF); lines end at LF.
 * DIAGNOSTICS
 *   FatalError, naming the file: not a regular file, owned by a user other than root,
 *   $mail_owner (opts.mailOwner) and the reading process's own, readable or writable by group or others
 *   (mode must be 0600 or 0400), larger than 64 KiB, no keys, more than 16 keys, a malformed
 *   line (by line number; key text is never echoed), an id over 4294967295, a repeated id.
 */

import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { createSecretKey, hkdfSync, randomBytes, type KeyObject } from 'node:crypto';
import { FatalError } from '../util/errors.js';
import { checkSecretOwner } from './config.js';
import { Sealer, SEAL_KEY_LEN, type SealKey } from '../util/seal.js';

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

const LF = 0x0a;

/* isSpace - ASCII white space: what trim() removed from a latin1 line, less NBSP (0xa0) */
function isSpace(b: number): boolean {
  return b === 0x20 || b === 0x09 || b === 0x0d || b === 0x0b || b === 0x0c;
}

function isDigit(b: number): boolean {
  return b >= 0x30 && b <= 0x39;
}

/* hexValue - 0..15 for a hex digit byte, -1 otherwise */
function hexValue(b: number): number {
  if (b >= 0x30 && b <= 0x39) return b - 0x30;
  const l = b | 0x20;
  return l >= 0x61 && l <= 0x66 ? l - 0x61 + 10 : -1;
}

/*
 * keyLine - one trimmed, non-comment line [from, to) of the file: "<id> <64 hex digits>".
 * The key is decoded straight from the bytes into a new buffer (the caller wipes it); no
 * string is ever made of the line. null when malformed; the id may be over 2^32-1.
 */
function keyLine(buf: Uint8Array, from: number, to: number): { id: number; key: Buffer } | null {
  let at = from;
  let id = 0;
  while (at < to && isDigit(buf[at])) id = id * 10 + (buf[at++] - 0x30);
  if (at === from || at - from > 10) return null;
  const afterId = at;
  while (at < to && isSpace(buf[at])) at++;
  if (at === afterId || to - at !== 2 * SEAL_KEY_LEN) return null;
  for (let i = at; i < to; i++) if (hexValue(buf[i]) < 0) return null;
  const key = Buffer.alloc(SEAL_KEY_LEN);
  for (let i = 0; i < SEAL_KEY_LEN; i++) key[i] = (hexValue(buf[at + 2 * i]) << 4) | hexValue(buf[at + 2 * i + 1]);
  return { id, key };
}

/**
 * The keys of a key file's bytes. The caller owns `bytes` (and wipes them); nothing here
 * copies them into a string, and every decoded or derived key buffer is zeroed before this
 * returns or throws.
 */
export function parseClusterKeyBytes(bytes: Uint8Array, where: string, random?: (n: number) => Buffer): ClusterKeys {
  const raw: Array<{ id: number; key: Buffer }> = [];
  const derived: Buffer[] = [];
  try {
    let line = 0;
    for (let start = 0; start <= bytes.length; ) {
      let end = bytes.indexOf(LF, start);
      if (end < 0) end = bytes.length;
      line++;
      let from = start;
      let to = end;
      start = end + 1;
      while (from < to && isSpace(bytes[from])) from++;
      while (to > from && isSpace(bytes[to - 1])) to--;
      if (from === to || bytes[from] === 0x23 /* # */) continue;
      const k = keyLine(bytes, from, to);
      if (k === null) throw new FatalError(`${where}, line ${line}: expected "<key id> <64 hex digits>"`);
      const listed = raw.some((r) => r.id === k.id);
      raw.push(k); // first, so that the finally below wipes its key whatever is thrown next
      // Ten digits over 4294967295 have no leading zero: the number prints as it was written.
      if (k.id > 0xffffffff) throw new FatalError(`${where}, line ${line}: key id ${k.id} is over 4294967295`);
      if (listed) throw new FatalError(`${where}, line ${line}: key id ${k.id} listed twice`);
      if (raw.length > MAX_CLUSTER_KEYS) throw new FatalError(`${where}: more than ${MAX_CLUSTER_KEYS} keys`);
    }
    if (raw.length === 0) throw new FatalError(`${where}: no keys`);
    const sealKeys: SealKey[] = raw.map((k) => {
      const d = derive(k.key, 'tlsmgr seal v1');
      derived.push(d);
      return { id: k.id, key: d };
    });
    const idKeys: IdKey[] = raw.map((k) => {
      const d = derive(k.key, 'tlsmgr cache_id v1');
      derived.push(d);
      return { id: k.id, key: createSecretKey(d) };
    });
    const sealer = new Sealer(sealKeys, sealKeys[0].id, random);
    return { sealer, idKeys };
  } finally {
    for (const k of raw) k.key.fill(0);
    for (const d of derived) d.fill(0);
  }
}

/**
 * The keys of a key file's text: for tests and tools that hold the text already (a string
 * cannot be wiped); the daemon reads the file with readClusterKeys(), which makes none.
 */
export function parseClusterKeys(text: string, where: string, random?: (n: number) => Buffer): ClusterKeys {
  const bytes = Buffer.from(text, 'utf8');
  try {
    return parseClusterKeyBytes(bytes, where, random);
  } finally {
    bytes.fill(0);
  }
}

/** Read the key file; refuse one that group or others can read or write. */
export function readClusterKeys(path: string, random: (n: number) => Buffer = randomBytes, opts: { readonly mailOwner?: string } = {}): ClusterKeys {
  let fd: number;
  try {
    // No link followed, and a FIFO planted there cannot hang the start.
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    throw new FatalError(`open cluster key file ${path}: ${(err as Error).message}`, { cause: err });
  }
  const buf = Buffer.alloc(MAX_FILE_BYTES + 1);
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new FatalError(`cluster key file ${path}: not a regular file`);
    checkSecretOwner(path, st.uid, opts.mailOwner, `cluster key file ${path}`);
    if ((st.mode & 0o077) !== 0) {
      throw new FatalError(
        `cluster key file ${path}: mode 0${(st.mode & 0o777).toString(8)} gives access to group or others: use chmod 600`,
      );
    }
    let n = 0;
    for (let r = -1; r !== 0 && n < buf.length; n += r) r = readSync(fd, buf, n, buf.length - n, null);
    if (n > MAX_FILE_BYTES) throw new FatalError(`cluster key file ${path}: larger than ${MAX_FILE_BYTES} bytes`);
    return parseClusterKeyBytes(buf.subarray(0, n), `cluster key file ${path}`, random);
  } finally {
    buf.fill(0);
    closeSync(fd);
  }
}
