/*
 * NAME
 *   protocol/responses - typed tlsmgr replies to attr0 bytes
 * SYNOPSIS
 *   encodeResponse(r: Response): Buffer
 *   failResponse(request: RequestName | null): Buffer
 * DESCRIPTION
 *   Reply attributes in the exact order of spec 2.9 (the client scans in order and would lose
 *   an attribute sent out of order). Every FAIL reply carries EMPTY data (seed, session,
 *   keybuf): Postfix 3.7 leaks a shared scratch buffer there (spec 2.2.2); we do not.
 *   Replies that never change (update and delete, a lookup miss: a status and nothing else
 *   that varies) are encoded once and the same Buffer is returned each time: callers only
 *   write it out, never change it. Replies with data skip the writer's list of parts.
 * SEE ALSO
 *   tlsmgr/tlsmgr.c tlsmgr_service(), spec 2.3-2.9
 */

import { base64EncodeInto, base64Length } from '../attr/base64.js';
import { Attr0Writer } from '../attr/writer.js';
import { ATTR, REQ, STAT, type RequestName, type Status } from './names.js';

export type Response =
  | { readonly request: 'seed'; readonly status: Status; readonly seed: Uint8Array }
  | { readonly request: 'policy'; readonly status: Status; readonly cachable: number; readonly timeout: number }
  | { readonly request: 'lookup'; readonly status: Status; readonly session: Uint8Array }
  | { readonly request: 'update' | 'delete'; readonly status: Status }
  | { readonly request: 'tktkey'; readonly status: Status; readonly keybuf: Uint8Array };

const EMPTY = new Uint8Array(0);

/** Encoded replies that depend on the request and status only, keyed "request status". */
const CONSTANT = new Map<string, Buffer>();

/* constant - the reply of `request` with `status` and nothing else that varies, encoded once */
function constant(request: 'lookup' | 'update' | 'delete', status: Status): Buffer {
  const key = `${request} ${status}`;
  let b = CONSTANT.get(key);
  if (b === undefined) {
    b = request === REQ.LOOKUP ? encodeWithWriter({ request, status, session: EMPTY }) : encodeWithWriter({ request, status });
    CONSTANT.set(key, b);
  }
  return b;
}

/*
 * withData - status, then one DATA attribute: the bytes of Attr0Writer's int() and data().
 * The reply gets a buffer of its own (allocUnsafeSlow), not a slice of Node's shared 8 KB
 * pool: replies live until the end of the event-loop turn (connection.ts writes them
 * together), and pool slices that live that long kept whole slabs alive; under a
 * lookup-heavy load that grew the malloc heap by about 12 MB. The data (a session, seed
 * bytes) is base64-encoded straight into that buffer: no string of it is made, which
 * could not be wiped and would cost an allocation and a copy more per reply.
 */
function withData(status: Status, name: string, data: Uint8Array): Buffer {
  const head = dataHead(status, name);
  const out = Buffer.allocUnsafeSlow(head.length + base64Length(data.length) + 2);
  head.copy(out, 0);
  const end = base64EncodeInto(data, out, head.length);
  out[end] = 0;
  out[end + 1] = 0;
  return out;
}

/** "status NUL <status> NUL <name> NUL", per attribute name and status (a handful of each). */
const HEADS = new Map<string, Map<Status, Buffer>>();

function dataHead(status: Status, name: string): Buffer {
  let byStatus = HEADS.get(name);
  if (byStatus === undefined) HEADS.set(name, (byStatus = new Map()));
  let h = byStatus.get(status);
  if (h === undefined) {
    h = Buffer.from(`${ATTR.STATUS}\0${status >>> 0}\0${name}\0`, 'latin1');
    byStatus.set(status, h);
  }
  return h;
}

export function encodeResponse(r: Response): Buffer {
  switch (r.request) {
    case REQ.SEED:
      return withData(r.status, ATTR.SEED, r.seed);
    case REQ.LOOKUP:
      return r.session.length === 0 ? constant(r.request, r.status) : withData(r.status, ATTR.SESSION, r.session);
    case REQ.UPDATE:
    case REQ.DELETE:
      return constant(r.request, r.status);
    case REQ.TKTKEY:
      return withData(r.status, ATTR.KEYBUF, r.keybuf);
    case REQ.POLICY:
      return encodeWithWriter(r);
  }
}

/* encodeWithWriter - the general encoder (Attr0Writer): the reference for the fast paths above */
export function encodeWithWriter(r: Response): Buffer {
  const w = new Attr0Writer().int(ATTR.STATUS, r.status);
  switch (r.request) {
    case REQ.SEED:
      return w.data(ATTR.SEED, r.seed).end();
    case REQ.POLICY:
      return w.int(ATTR.CACHABLE, r.cachable).int(ATTR.TIMEOUT, r.timeout).end();
    case REQ.LOOKUP:
      return w.data(ATTR.SESSION, r.session).end();
    case REQ.UPDATE:
    case REQ.DELETE:
      return w.end();
    case REQ.TKTKEY:
      return w.data(ATTR.KEYBUF, r.keybuf).end();
  }
}

function buildFail(request: RequestName | null): Buffer {
  switch (request) {
    case null:
      return new Attr0Writer().int(ATTR.STATUS, STAT.FAIL).end();
    case REQ.SEED:
      return encodeResponse({ request, status: STAT.FAIL, seed: EMPTY });
    case REQ.POLICY:
      return encodeResponse({ request, status: STAT.FAIL, cachable: 0, timeout: 0 });
    case REQ.LOOKUP:
      return encodeResponse({ request, status: STAT.FAIL, session: EMPTY });
    case REQ.UPDATE:
    case REQ.DELETE:
      return encodeResponse({ request, status: STAT.FAIL });
    case REQ.TKTKEY:
      return encodeResponse({ request, status: STAT.FAIL, keybuf: EMPTY });
  }
}

/* The FAIL replies never change: encode each once. */
const FAILS = new Map<RequestName | null, Buffer>(
  [null, ...Object.values(REQ)].map((r) => [r, buildFail(r)] as const),
);

/** The FAIL reply of a request type; null = the status-only reply for a bad first attribute. */
export function failResponse(request: RequestName | null): Buffer {
  return FAILS.get(request) as Buffer;
}
