/*
 * NAME
 *   protocol/names - the tlsmgr wire vocabulary (tls_mgr.h, mail_proto.h)
 * DESCRIPTION
 *   Request, attribute and status names shared by the server, the client and the tests.
 *   Attribute names appear as literals nowhere else.
 * SEE ALSO
 *   tls/tls_mgr.h, global/mail_proto.h, spec sections 1.6 and 2.1.
 */

export const REQ = {
  SEED: 'seed',
  POLICY: 'policy',
  LOOKUP: 'lookup',
  UPDATE: 'update',
  DELETE: 'delete',
  TKTKEY: 'tktkey',
} as const;
export type RequestName = (typeof REQ)[keyof typeof REQ];

/** The master(8) wake-up trigger (TRIGGER_REQ_WAKEUP). */
export const WAKEUP = 'W';

export const ATTR = {
  PROTO: 'protocol',
  REQUEST: 'request',
  CACHE_TYPE: 'cache_type',
  CACHE_ID: 'cache_id',
  SESSION: 'session',
  SIZE: 'size',
  SEED: 'seed',
  STATUS: 'status',
  CACHABLE: 'cachable',
  TIMEOUT: 'timeout',
  KEYNAME: 'keyname',
  KEYBUF: 'keybuf',
} as const;

export const PROTO_TLSMGR = 'tlsmgr_protocol';

/** TLS_MGR_STAT_*: sent as INT, so ERR is "4294967295" and FAIL "4294967294" on the wire. */
export const STAT = {
  OK: 0,
  ERR: -1,
  FAIL: -2,
} as const;
export type Status = (typeof STAT)[keyof typeof STAT];

/** Seed sizes the server accepts (tlsmgr.c: 1..255). */
export const SEED_MAX = 255;

/** The announcement sent on every accepted connection (spec 1.6): 26 bytes. */
export const GREETING = Buffer.from(`${ATTR.PROTO}\0${PROTO_TLSMGR}\0\0`, 'latin1');
