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
 * SEE ALSO
 *   tlsmgr/tlsmgr.c tlsmgr_service(), spec 2.3-2.9
 */

import { Attr0Writer } from '../attr/writer.js';
import { ATTR, REQ, STAT, type RequestName, type Status } from './names.js';

export type Response =
  | { readonly request: 'seed'; readonly status: Status; readonly seed: Uint8Array }
  | { readonly request: 'policy'; readonly status: Status; readonly cachable: number; readonly timeout: number }
  | { readonly request: 'lookup'; readonly status: Status; readonly session: Uint8Array }
  | { readonly request: 'update' | 'delete'; readonly status: Status }
  | { readonly request: 'tktkey'; readonly status: Status; readonly keybuf: Uint8Array };

const EMPTY = new Uint8Array(0);

export function encodeResponse(r: Response): Buffer {
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
