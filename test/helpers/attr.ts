/*
 * NAME
 *   test/helpers/attr - attr0 bytes for tests: request builder, reply parser, test config
 * SYNOPSIS
 *   list(...pairs): Buffer            name\0value\0 ... \0
 *   req(name, ...pairs): Buffer       list(['request', name], ...pairs)
 *   raw(...tokens): Buffer            token\0 token\0 ... (no terminator: for cut-off input)
 *   b64(bytes): string                canonical base64 (for building requests)
 *   listLength(buf, from?): number    length of the complete list at `from`, or -1
 *   parseReply(buf): Reply            exactly one complete list, nothing after it
 *   testConfig(over?): TlsmgrConfig   a frozen configuration without main.cf
 * DESCRIPTION
 *   Written independently of src/attr so that the code under test never checks itself: the
 *   reply parser splits on NUL by hand, reads INT as unsigned decimal text (and maps it to the
 *   signed C int), and accepts DATA only in canonical base64 (what Postfix's encoder emits).
 *   Values given as strings are latin1 bytes, so '\xff' is the single byte 0xFF.
 */

import type { CacheParams, CacheType, TlsmgrConfig } from '../../src/config/types.js';

export type Val = string | Uint8Array;
export type Pair = readonly [string, Val];

function bytes(v: Val): Buffer {
  return typeof v === 'string' ? Buffer.from(v, 'latin1') : Buffer.from(v.buffer, v.byteOffset, v.byteLength);
}

const NUL = Buffer.from([0]);

/** NUL-terminate every token, without a list terminator. */
export function raw(...tokens: Val[]): Buffer {
  const parts: Buffer[] = [];
  for (const t of tokens) parts.push(bytes(t), NUL);
  return Buffer.concat(parts);
}

/** One attr0 list: each pair as name\0value\0, then the terminating \0. */
export function list(...pairs: Pair[]): Buffer {
  return Buffer.concat([raw(...pairs.flat()), NUL]);
}

/** A request list: `request\0<name>\0` + pairs + `\0`. */
export function req(name: string, ...pairs: Pair[]): Buffer {
  return list(['request', name], ...pairs);
}

export function b64(v: Val): string {
  return bytes(v).toString('base64');
}

/** Bytes as a readable string (latin1), for assertion messages. */
export function show(buf: Buffer): string {
  return JSON.stringify(buf.toString('latin1'));
}

/**
 * Length of the complete attr0 list that starts at `from`, or -1 when it is not complete yet.
 * Tokens alternate name, value; an empty name ends the list.
 */
export function listLength(buf: Buffer, from = 0): number {
  let pos = from;
  for (let name = true; ; name = !name) {
    const nul = buf.indexOf(0, pos);
    if (nul < 0) return -1;
    const empty = nul === pos;
    pos = nul + 1;
    if (name && empty) return pos - from;
  }
}

export interface ReplyAttr {
  readonly name: string;
  readonly value: Buffer;
}

export class Reply {
  constructor(readonly attrs: readonly ReplyAttr[]) {}

  /** Attribute names in wire order. */
  get names(): string[] {
    return this.attrs.map((a) => a.name);
  }

  private one(name: string): Buffer {
    const a = this.attrs.find((x) => x.name === name);
    if (a === undefined) throw new Error(`reply has no attribute ${name}: ${this.names.join(',')}`);
    return a.value;
  }

  text(name: string): string {
    return this.one(name).toString('latin1');
  }

  /** An INT attribute: unsigned decimal on the wire, returned as the signed C int. */
  int(name: string): number {
    const t = this.text(name);
    if (!/^(0|[1-9][0-9]*)$/.test(t)) throw new Error(`${name}: not an unsigned decimal: ${JSON.stringify(t)}`);
    const n = BigInt(t);
    if (n >= 1n << 32n) throw new Error(`${name}: out of 32-bit range: ${t}`);
    return Number(BigInt.asIntN(32, n));
  }

  /** A DATA attribute; its text must be canonical padded base64 (no other encoding is valid). */
  data(name: string): Buffer {
    const t = this.text(name);
    const d = Buffer.from(t, 'base64');
    if (d.toString('base64') !== t) throw new Error(`${name}: not canonical base64: ${JSON.stringify(t)}`);
    return d;
  }

  get status(): number {
    return this.int('status');
  }
}

/** Split one complete list into attributes; throws unless buf holds exactly that list. */
export function parseReply(buf: Buffer): Reply {
  const n = listLength(buf);
  if (n < 0) throw new Error(`incomplete attr0 list: ${show(buf)}`);
  if (n !== buf.length) throw new Error(`${buf.length - n} bytes after the list: ${show(buf)}`);
  const attrs: ReplyAttr[] = [];
  let pos = 0;
  for (;;) {
    const e1 = buf.indexOf(0, pos);
    if (e1 === pos) break;
    const e2 = buf.indexOf(0, e1 + 1);
    attrs.push({ name: buf.toString('latin1', pos, e1), value: buf.subarray(e1 + 1, e2) });
    pos = e2 + 1;
  }
  return new Reply(attrs);
}

/* Wire texts of the status codes (spec 2.1), for exact-byte assertions. */
export const OK = '0';
export const ERR = '4294967295';
export const FAIL = '4294967294';

/** The 26 greeting bytes of spec 1.6, spelled out independently of src/protocol/names.ts. */
export const GREETING_BYTES = Buffer.from('protocol\0tlsmgr_protocol\0\0', 'latin1');

export interface TestConfigOptions {
  readonly cache?: Partial<Record<CacheType, Partial<CacheParams>>>;
  readonly smtputf8Enable?: boolean;
  readonly attrNameLimit?: number;
  readonly attrValueLimit?: number;
  readonly attrCountLimit?: number;
  readonly cacheIdLimit?: number;
  readonly sessionLimit?: number;
  readonly statsInterval?: number;
}

/** Database names of the default test configuration. */
export const SMTPD_DB = 'btree:/nonexistent/data/smtpd_scache';
export const SMTP_DB = 'btree:/nonexistent/data/smtp_scache';

/**
 * A frozen configuration: smtpd cache enabled (SMTPD_DB, 3600 s); smtp and lmtp with
 * timeout 3600 but no database (disabled); smtputf8 on; the documented default limits
 * (attr0 bounds and cache limits) and statistics interval.
 */
export function testConfig(over: TestConfigOptions = {}): TlsmgrConfig {
  const row = (type: CacheType, database: string): CacheParams =>
    Object.freeze({
      database, timeout: 3600, loglevel: '0', maxEntries: 1000000, maxSize: 1073741824, maxEntrySize: 65536, ...over.cache?.[type],
    });
  return Object.freeze({
    configDirectory: '/nonexistent/etc',
    queueDirectory: '/nonexistent/queue',
    dataDirectory: '/nonexistent/data',
    daemonDirectory: '/nonexistent/libexec',
    mailOwner: 'postfix',
    syslogName: 'postfix',
    syslogFacility: 'mail',
    maillogFile: '',
    tlsmgrServiceName: 'tlsmgr',
    defaultDatabaseType: 'hash',
    smtputf8Enable: over.smtputf8Enable ?? true,
    ipcTimeout: 3600,
    daemonTimeout: 18000,
    syslogPath: '/dev/log',
    tktkeyDatabase: '',
    metricsListen: null,
    cache: Object.freeze({ smtpd: row('smtpd', SMTPD_DB), smtp: row('smtp', ''), lmtp: row('lmtp', '') }),
    tlsRandomSource: 'dev:/dev/urandom',
    tlsRandomBytes: 32,
    tlsRandomReseedPeriod: 3600,
    tlsRandomPrngUpdatePeriod: 3600,
    tlsRandomExchangeName: '/nonexistent/data/prng_exch',
    attrNameLimit: over.attrNameLimit ?? 256,
    attrValueLimit: over.attrValueLimit ?? 1500000,
    attrCountLimit: over.attrCountLimit ?? 32,
    cacheIdLimit: over.cacheIdLimit ?? 65536,
    sessionLimit: over.sessionLimit ?? 1048576,
    connectionLimit: 8192,
    inputBufferLimit: 67108864,
    statsInterval: over.statsInterval ?? 3600,
  });
}
