/*
 * NAME
 *   protocol/requests - attr0 lists to typed tlsmgr requests, with Postfix's scan semantics
 * SYNOPSIS
 *   scanRequest(input: RequestInput, ctx: ScanContext): ScanResult
 * DESCRIPTION
 *   Reproduces what tlsmgr.c does with one request (spec 2.2, 2.2.1, 2.3-2.8): a first scan
 *   for the `request` attribute (or the bare name of the short path), then a STRICT scan of the
 *   request-specific attributes in their fixed order, compared against the expected count.
 *     - missing, reordered, or unknown attributes before the last expected one: FAIL;
 *     - attributes after the last expected one: one warning, the request is served;
 *     - "W" as request name: the master wake-up (close, no reply, no log);
 *     - an unknown request name: no reply (as Postfix);
 *     - input cut off by end-of-file: no reply while the request name was incomplete,
 *       else that request's FAIL (or, after a trailing extra, the normal reply).
 *   INT values follow attr/number, DATA values attr/base64. Warnings use the attr0 receiver's
 *   wording with `<path>` = ctx.path ("tlsmgr socket"). Values of `session` are never quoted in
 *   a warning: they are TLS secrets.
 * SECURITY
 *   A `session` value is a TLS session in base64. scanRequest() zeroes, before it returns,
 *   every `session` value of the input (decoded or not, malformed or not, expected or extra)
 *   and the partial `session` value of a truncated input; a session decoded for a request that
 *   then fails is zeroed too. The decoded session of a served update is a fresh Buffer that the
 *   consumer zeroes after use. cache_id and keyname never share memory with a session: they
 *   are other tokens (views of received chunks, which attr/reader never writes to again) or a
 *   fresh decode.
 * LIMITS
 *   cache_id at most ctx.cacheIdLimit bytes and a decoded session at most ctx.sessionLimit
 *   bytes (extensions: Postfix has no bound); over the bound is a scan failure (FAIL).
 * SEE ALSO
 *   tlsmgr/tlsmgr.c tlsmgr_request_receive(), tlsmgr_service(); util/attr_scan0.c
 */

import type { Attr, Truncation } from '../attr/reader.js';
import { base64Decode } from '../attr/base64.js';
import { parseAttrInt } from '../attr/number.js';
import { ATTR, REQ, WAKEUP, type RequestName } from './names.js';
import { printable } from '../util/printable.js';

export type Request =
  | { readonly request: 'seed'; readonly size: number }
  | { readonly request: 'policy'; readonly cacheType: string }
  | { readonly request: 'lookup'; readonly cacheType: string; readonly cacheId: Buffer }
  | { readonly request: 'update'; readonly cacheType: string; readonly cacheId: Buffer; readonly session: Buffer }
  | { readonly request: 'delete'; readonly cacheType: string; readonly cacheId: Buffer }
  | { readonly request: 'tktkey'; readonly keyname: Buffer };

export type ScanResult =
  | { readonly kind: 'request'; readonly req: Request }
  /** Reply FAIL in the shape of `request`; null = status-only FAIL (bad first attribute). */
  | { readonly kind: 'fail'; readonly request: RequestName | null }
  | { readonly kind: 'wakeup' }
  | { readonly kind: 'unknown'; readonly name: string }
  /** End of input while the request name was read: close without reply. */
  | { readonly kind: 'close' };

/** A complete list, or what was pending at end of input. */
export type RequestInput =
  | { readonly complete: true; readonly bare: Buffer | null; readonly attrs: readonly Attr[] }
  | { readonly complete: false; readonly trunc: Truncation };

export interface ScanContext {
  /** Stream name in warnings: "<service> socket", or "unknown_stream" in -S mode. */
  readonly path: string;
  readonly cacheIdLimit: number;
  readonly sessionLimit: number;
  readonly warn: (msg: string) => void;
}

type AttrType = 'int' | 'str' | 'data';
const EXPECT: Readonly<Record<RequestName, ReadonlyArray<readonly [string, AttrType]>>> = {
  [REQ.SEED]: [[ATTR.SIZE, 'int']],
  [REQ.POLICY]: [[ATTR.CACHE_TYPE, 'str']],
  [REQ.LOOKUP]: [[ATTR.CACHE_TYPE, 'str'], [ATTR.CACHE_ID, 'str']],
  [REQ.UPDATE]: [[ATTR.CACHE_TYPE, 'str'], [ATTR.CACHE_ID, 'str'], [ATTR.SESSION, 'data']],
  [REQ.DELETE]: [[ATTR.CACHE_TYPE, 'str'], [ATTR.CACHE_ID, 'str']],
  [REQ.TKTKEY]: [[ATTR.KEYNAME, 'data']],
};

function isRequestName(name: string): name is RequestName {
  return Object.prototype.hasOwnProperty.call(EXPECT, name);
}

const LIST_TERMINATOR = '(list terminator)';

function eofWarning(ctx: ScanContext, partial: Buffer, context: 'name' | 'value'): void {
  if (partial.length === 0) ctx.warn(`premature end-of-input on ${ctx.path} while reading input attribute ${context}`);
  else ctx.warn(`unexpected end-of-input from ${ctx.path} while reading input attribute ${context}`);
}

export function scanRequest(input: RequestInput, ctx: ScanContext): ScanResult {
  const r = scan(input, ctx);
  wipeSessions(input);
  return r;
}

/* wipeSessions - zero the encoded session bytes of the input, now that they are scanned */
function wipeSessions(input: RequestInput): void {
  const attrs = input.complete ? input.attrs : input.trunc.attrs;
  for (const a of attrs) if (a.name === ATTR.SESSION) a.value.fill(0);
  if (!input.complete && input.trunc.where === 'value' && input.trunc.name === ATTR.SESSION) input.trunc.partial.fill(0);
}

/* scan - the two scans */
function scan(input: RequestInput, ctx: ScanContext): ScanResult {
  const bare = input.complete ? input.bare : input.trunc.bare;
  const attrs = input.complete ? input.attrs : input.trunc.attrs;
  const trunc = input.complete ? null : input.trunc;

  /* First scan: the request name. */
  let name: string;
  let rest: readonly Attr[];
  if (bare !== null) {
    name = bare.toString('latin1');
    rest = attrs;
  } else if (trunc !== null && trunc.where === 'bare') {
    // vstring_get_null() at EOF returns what it read; only the wake-up matters here.
    return trunc.partial.toString('latin1') === WAKEUP ? { kind: 'wakeup' } : { kind: 'close' };
  } else if (attrs.length === 0) {
    if (trunc === null) {
      ctx.warn(`missing attribute ${ATTR.REQUEST} in input from ${ctx.path}`);
      return { kind: 'fail', request: null };
    }
    if (trunc.where === 'value' && trunc.name !== ATTR.REQUEST) {
      ctx.warn(`unexpected attribute ${printable(trunc.name)} from ${ctx.path} (expecting: ${ATTR.REQUEST})`);
      return { kind: 'fail', request: null };
    }
    if (trunc.where === 'value' || trunc.partial.length > 0) eofWarning(ctx, trunc.partial, trunc.where === 'value' ? 'value' : 'name');
    return { kind: 'close' };
  } else {
    if (attrs[0].name !== ATTR.REQUEST) {
      ctx.warn(`unexpected attribute ${printable(attrs[0].name)} from ${ctx.path} (expecting: ${ATTR.REQUEST})`);
      return { kind: 'fail', request: null };
    }
    name = attrs[0].value.toString('latin1');
    rest = attrs.slice(1);
  }
  if (name === WAKEUP) return { kind: 'wakeup' };
  if (!isRequestName(name)) return { kind: 'unknown', name };

  /* Second scan: the request attributes, STRICT, in order. */
  const fail: ScanResult = { kind: 'fail', request: name };
  const expect = EXPECT[name];
  const values: Array<number | string | Buffer> = [];
  for (let i = 0; i < expect.length; i++) {
    const [want, type] = expect[i];
    const a = rest[i];
    if (a === undefined) {
      if (trunc === null) {
        ctx.warn(`missing attribute ${want} in input from ${ctx.path}`);
      } else if (trunc.where === 'value' && trunc.name !== want) {
        ctx.warn(`unexpected attribute ${printable(trunc.name)} from ${ctx.path} (expecting: ${want})`);
      } else if (!(i === 0 && rest.length === 0 && trunc.where === 'name' && trunc.partial.length === 0)) {
        // (An EOF right where the second scan starts returns 0 conversions silently.)
        eofWarning(ctx, trunc.partial, trunc.where === 'value' ? 'value' : 'name');
      }
      return fail;
    }
    if (a.name !== want) {
      ctx.warn(`unexpected attribute ${printable(a.name)} from ${ctx.path} (expecting: ${want})`);
      return fail;
    }
    const v = convert(a, type, ctx);
    if (v === null) return dropDecoded(fail, expect, values);
    values.push(v);
  }
  if (rest.length > expect.length) {
    ctx.warn(`unexpected attribute ${printable(rest[expect.length].name)} from ${ctx.path} (expecting: ${LIST_TERMINATOR})`);
  } else if (trunc !== null) {
    if (trunc.where === 'value') {
      ctx.warn(`unexpected attribute ${printable(trunc.name)} from ${ctx.path} (expecting: ${LIST_TERMINATOR})`);
    } else {
      eofWarning(ctx, trunc.partial, 'name');
      return dropDecoded(fail, expect, values);
    }
  }
  const req = build(name, values, ctx);
  return req === null ? dropDecoded(fail, expect, values) : { kind: 'request', req };
}

/* dropDecoded - zero the DATA values decoded for a request that fails; returns the failure */
function dropDecoded(fail: ScanResult, expect: ReadonlyArray<readonly [string, AttrType]>, values: ReadonlyArray<number | string | Buffer>): ScanResult {
  for (let i = 0; i < values.length; i++) if (expect[i][1] === 'data') (values[i] as Buffer).fill(0);
  return fail;
}

/* build - assemble the typed request; null when a semantic bound is exceeded */
function build(name: RequestName, v: ReadonlyArray<number | string | Buffer>, ctx: ScanContext): Request | null {
  switch (name) {
    case REQ.SEED:
      return { request: name, size: v[0] as number };
    case REQ.POLICY:
      return { request: name, cacheType: v[0] as string };
    case REQ.LOOKUP:
    case REQ.DELETE: {
      const cacheId = idOk(v[1] as Buffer, ctx);
      return cacheId && { request: name, cacheType: v[0] as string, cacheId };
    }
    case REQ.UPDATE: {
      const cacheId = idOk(v[1] as Buffer, ctx);
      const session = v[2] as Buffer;
      if (session.length > ctx.sessionLimit) {
        ctx.warn(`session length ${session.length} from ${ctx.path} exceeds tlsmgr_session_limit ${ctx.sessionLimit}`);
        return null;
      }
      return cacheId && { request: name, cacheType: v[0] as string, cacheId, session };
    }
    case REQ.TKTKEY:
      return { request: name, keyname: v[0] as Buffer };
  }
}

function idOk(id: Buffer, ctx: ScanContext): Buffer | null {
  if (id.length <= ctx.cacheIdLimit) return id;
  ctx.warn(`cache_id length ${id.length} from ${ctx.path} exceeds tlsmgr_cache_id_limit ${ctx.cacheIdLimit}`);
  return null;
}

function convert(a: Attr, type: AttrType, ctx: ScanContext): number | string | Buffer | null {
  switch (type) {
    case 'str':
      return a.name === ATTR.CACHE_ID ? a.value : a.value.toString('latin1');
    case 'int': {
      const n = parseAttrInt(a.value, 0, a.value.length);
      if (n === null) {
        ctx.warn(`malformed numerical data from ${ctx.path} while reading input attribute value: ${printable(a.value.toString('latin1'), 100)}`);
      }
      return n;
    }
    case 'data': {
      const d = base64Decode(a.value, 0, a.value.length);
      if (d === null) {
        // Never quote a session: it is a TLS secret even when malformed.
        const shown = a.name === ATTR.SESSION ? `(${a.value.length} characters)` : printable(a.value.toString('latin1'), 100);
        ctx.warn(`malformed base64 data from ${ctx.path} while reading input attribute value: ${shown}`);
      }
      return d;
    }
  }
}
