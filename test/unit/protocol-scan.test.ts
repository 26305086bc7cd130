/*
 * protocol-scan - src/protocol/requests.ts scanRequest(): tlsmgr.c's two scans of a request
 * with attr_scan0's STRICT rules (spec 1.2, 2.2, 2.2.1, 2.3-2.8). Inputs are exact bytes run
 * through the real Attr0Reader (complete lists, and finish() at end of input). Covers every
 * branch: bad first attribute (5), empty first list (53), wake-up (7, 51), unknown name,
 * missing / reordered / extra attributes before, between and after (23, 47, 48, 49),
 * malformed INT (54) and base64 (55), end of input in each position (2.2, 56), the cache_id
 * and session bounds at the limit and limit + 1, and the exact warning texts.
 */

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Attr0Reader } from '../../src/attr/reader.js';
import { scanRequest, type ScanContext, type ScanResult } from '../../src/protocol/requests.js';
import { b64, list, raw, req } from '../helpers/attr.js';

const PATH = 'tlsmgr socket';

interface Scanned {
  readonly r: ScanResult;
  readonly warnings: string[];
}

/**
 * Run bytes through the reader (one chunk of more than 2 bytes: the attr0 path) and scan the
 * first list; with eof, or when no list completes, scan finish()'s truncation instead.
 */
function scan(bytes: Buffer, opts: { eof?: boolean; cacheIdLimit?: number; sessionLimit?: number; path?: string } = {}): Scanned {
  assert.ok(bytes.length > 2, 'test inputs take the attr0 path');
  const warnings: string[] = [];
  const ctx: ScanContext = {
    path: opts.path ?? PATH,
    cacheIdLimit: opts.cacheIdLimit ?? 65536,
    sessionLimit: opts.sessionLimit ?? 1048576,
    warn: (m) => warnings.push(m),
  };
  const reader = new Attr0Reader({ nameLimit: 256, valueLimit: 1 << 22, countLimit: 32 });
  reader.push(bytes);
  const ev = reader.next();
  if (ev !== null) {
    assert.equal(ev.type, 'list');
    if (ev.type !== 'list') throw new Error('unreachable');
    return { r: scanRequest({ complete: true, bare: ev.bare, attrs: ev.attrs }, ctx), warnings };
  }
  assert.ok(opts.eof, 'input without a complete list needs eof: true');
  const trunc = reader.finish();
  assert.ok(trunc !== null);
  return { r: scanRequest({ complete: false, trunc }, ctx), warnings };
}

/** A request result in plain form for deepEqual (Buffers as latin1 text). */
function plain(r: ScanResult): unknown {
  if (r.kind !== 'request') return r;
  const o: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(r.req)) o[k] = Buffer.isBuffer(v) ? `buf:${v.toString('latin1')}` : v;
  return { kind: 'request', req: o };
}

const unexpected = (name: string, want: string): string => `unexpected attribute ${name} from ${PATH} (expecting: ${want})`;
const missing = (name: string): string => `missing attribute ${name} in input from ${PATH}`;
const TERM = '(list terminator)';

/* ---- well-formed requests ---- */

test('each request type scans into its typed form, with no warning', () => {
  const id = Buffer.from('host:25\xff', 'latin1');
  const cases: Array<[Buffer, unknown]> = [
    [req('seed', ['size', '32']), { request: 'seed', size: 32 }],
    [req('policy', ['cache_type', 'smtpd']), { request: 'policy', cacheType: 'smtpd' }],
    [req('lookup', ['cache_type', 'smtp'], ['cache_id', id]), { request: 'lookup', cacheType: 'smtp', cacheId: 'buf:host:25\xff' }],
    [
      req('update', ['cache_type', 'lmtp'], ['cache_id', id], ['session', b64(Buffer.from([0, 0xff]))]),
      { request: 'update', cacheType: 'lmtp', cacheId: 'buf:host:25\xff', session: 'buf:\x00\xff' },
    ],
    [req('delete', ['cache_type', 'smtpd'], ['cache_id', '']), { request: 'delete', cacheType: 'smtpd', cacheId: 'buf:' }],
    [req('tktkey', ['keyname', '']), { request: 'tktkey', keyname: 'buf:' }],
    [req('tktkey', ['keyname', b64(Buffer.alloc(16, 7))]), { request: 'tktkey', keyname: `buf:${'\x07'.repeat(16)}` }],
  ];
  for (const [bytes, want] of cases) {
    const { r, warnings } = scan(bytes);
    assert.deepEqual(plain(r), { kind: 'request', req: want });
    assert.deepEqual(warnings, []);
  }
});

test('cache_id keeps its bytes (Buffer), cache_type is compared as text', () => {
  const { r } = scan(req('lookup', ['cache_type', 'SMTPD'], ['cache_id', Buffer.from([0xef, 0xbf, 0xbd])]));
  assert.equal(r.kind, 'request');
  if (r.kind !== 'request' || r.req.request !== 'lookup') throw new Error('unreachable');
  assert.ok(Buffer.isBuffer(r.req.cacheId));
  assert.equal(r.req.cacheId.toString('hex'), 'efbfbd');
  assert.equal(r.req.cacheType, 'SMTPD', 'an unknown type is the dispatcher\'s business');
});

/* ---- the first scan ---- */

test('scenario 5: first attribute not "request" -> status-only FAIL + warning', () => {
  const { r, warnings } = scan(list(['size', '1']));
  assert.deepEqual(r, { kind: 'fail', request: null });
  assert.deepEqual(warnings, [unexpected('size', 'request')]);
});

test('scenario 53: empty first list -> status-only FAIL + "missing attribute request"', () => {
  const { r, warnings } = scan(Buffer.from('\0\0\0', 'latin1'));
  assert.deepEqual(r, { kind: 'fail', request: null });
  assert.deepEqual(warnings, ['missing attribute request in input from tlsmgr socket']);
});

test('scenarios 7/51: request "W" is the wake-up; no warning', () => {
  const { r, warnings } = scan(req('W'));
  assert.deepEqual(r, { kind: 'wakeup' });
  assert.deepEqual(warnings, []);
  // Even with attributes after it (Postfix compares the name before the second scan).
  assert.deepEqual(scan(req('W', ['x', 'y'])).r, { kind: 'wakeup' });
  // "w" is not the trigger.
  assert.deepEqual(scan(req('w')).r, { kind: 'unknown', name: 'w' });
});

test('unknown request names (case-sensitive, empty) -> no reply, no warning', () => {
  for (const name of ['SEED', 'foo', '', 'seed ', 'request']) {
    const { r, warnings } = scan(req(name, ['size', '5']));
    assert.deepEqual(r, { kind: 'unknown', name }, JSON.stringify(name));
    assert.deepEqual(warnings, []);
  }
});

test('a bare name from the short path is the request name; its attributes follow', () => {
  const warnings: string[] = [];
  const ctx: ScanContext = { path: PATH, cacheIdLimit: 10, sessionLimit: 10, warn: (m) => warnings.push(m) };
  const bare = Buffer.from('seed', 'latin1');
  const ok = scanRequest({ complete: true, bare, attrs: [{ name: 'size', value: Buffer.from('7') }] }, ctx);
  assert.deepEqual(ok, { kind: 'request', req: { request: 'seed', size: 7 } });
  assert.deepEqual(scanRequest({ complete: true, bare: Buffer.from('W'), attrs: [] }, ctx), { kind: 'wakeup' });
  assert.deepEqual(scanRequest({ complete: true, bare: Buffer.from('x'), attrs: [] }, ctx), { kind: 'unknown', name: 'x' });
  // End of input right after a bare "seed": the second scan returns 0 silently.
  const t = scanRequest({ complete: false, trunc: { bare, attrs: [], where: 'name', partial: Buffer.alloc(0), name: '' } }, ctx);
  assert.deepEqual(t, { kind: 'fail', request: 'seed' });
  assert.deepEqual(warnings, []);
});

test('end of input on the short path: lone "W" is the wake-up, anything else just closes', () => {
  const ctx: ScanContext = { path: PATH, cacheIdLimit: 10, sessionLimit: 10, warn: () => assert.fail('no warning expected') };
  const bareTrunc = (s: string): ScanResult =>
    scanRequest({ complete: false, trunc: { bare: null, attrs: [], where: 'bare', partial: Buffer.from(s, 'latin1'), name: '' } }, ctx);
  assert.deepEqual(bareTrunc('W'), { kind: 'wakeup' });
  assert.deepEqual(bareTrunc('x'), { kind: 'close' });
  assert.deepEqual(bareTrunc(''), { kind: 'close' });
});

/* ---- end of input during the first scan: close without reply (spec 2.2) ---- */

test('end of input inside the first attribute closes without reply, with the attr0 warning', () => {
  const cases: Array<[string, string[]]> = [
    ['req', [`unexpected end-of-input from ${PATH} while reading input attribute name`]],
    ['request\0', [`premature end-of-input on ${PATH} while reading input attribute value`]],
    ['request\0se', [`unexpected end-of-input from ${PATH} while reading input attribute value`]], // scenario 56
  ];
  for (const [s, want] of cases) {
    const { r, warnings } = scan(Buffer.from(s, 'latin1'), { eof: true });
    assert.deepEqual(r, { kind: 'close' }, JSON.stringify(s));
    assert.deepEqual(warnings, want, JSON.stringify(s));
  }
});

test('end of input after a wrong first name still gives the status-only FAIL', () => {
  const { r, warnings } = scan(Buffer.from('size\0', 'latin1'), { eof: true });
  assert.deepEqual(r, { kind: 'fail', request: null });
  assert.deepEqual(warnings, [unexpected('size', 'request')]);
  const r2 = scan(raw('size', '1'), { eof: true });
  assert.deepEqual(r2.r, { kind: 'fail', request: null });
  assert.deepEqual(r2.warnings, [unexpected('size', 'request')]);
});

/* ---- the second scan: missing, reordered, extra ---- */

test('missing attributes -> that request\'s FAIL with "missing attribute <name>"', () => {
  const cases: Array<[Buffer, string, string]> = [
    [req('seed'), 'seed', 'size'],
    [req('policy'), 'policy', 'cache_type'],
    [req('lookup', ['cache_type', 'smtpd']), 'lookup', 'cache_id'],
    [req('update', ['cache_type', 'smtpd'], ['cache_id', 'x']), 'update', 'session'],
    [req('delete'), 'delete', 'cache_type'],
    [req('tktkey'), 'tktkey', 'keyname'],
  ];
  for (const [bytes, request, name] of cases) {
    const { r, warnings } = scan(bytes);
    assert.deepEqual(r, { kind: 'fail', request });
    assert.deepEqual(warnings, [missing(name)]);
  }
});

test('scenario 48: extra before / between, and reordered attributes -> FAIL naming the expected one', () => {
  const cases: Array<[Buffer, string, string]> = [
    [req('lookup', ['extra', 'y'], ['cache_type', 'smtpd'], ['cache_id', 'x']), 'extra', 'cache_type'],
    [req('lookup', ['cache_type', 'smtpd'], ['extra', 'y'], ['cache_id', 'x']), 'extra', 'cache_id'],
    [req('lookup', ['cache_id', 'x'], ['cache_type', 'smtpd']), 'cache_id', 'cache_type'],
    [req('update', ['cache_type', 'smtpd'], ['session', 'QQ=='], ['cache_id', 'x']), 'session', 'cache_id'],
    [req('delete', ['cache_type', 'smtpd'], ['cache_type', 'smtp'], ['cache_id', 'x']), 'cache_type', 'cache_id'],
    [req('seed', ['request', 'seed'], ['size', '5']), 'request', 'size'],
  ];
  for (const [bytes, got, want] of cases) {
    const { r, warnings } = scan(bytes);
    assert.equal(r.kind, 'fail', `${got} before ${want}`);
    assert.deepEqual(warnings, [unexpected(got, want)]);
  }
  assert.deepEqual(
    scan(req('lookup', ['cache_type', 'smtpd'], ['extra', 'y'], ['cache_id', 'x'])).warnings,
    ['unexpected attribute extra from tlsmgr socket (expecting: cache_id)'],
    'literal text',
  );
});

test('scenario 47: a trailing extra on every request type is served, with one warning each', () => {
  const extra = ['extra', 'y'] as const;
  const cases: Array<[Buffer, string]> = [
    [req('seed', ['size', '5'], extra), 'seed'],
    [req('policy', ['cache_type', 'smtpd'], extra), 'policy'],
    [req('lookup', ['cache_type', 'smtpd'], ['cache_id', 'x'], extra), 'lookup'],
    [req('update', ['cache_type', 'smtpd'], ['cache_id', 'x'], ['session', 'QQ=='], extra), 'update'],
    [req('delete', ['cache_type', 'smtpd'], ['cache_id', 'x'], extra), 'delete'],
    [req('tktkey', ['keyname', ''], extra), 'tktkey'],
  ];
  for (const [bytes, request] of cases) {
    const { r, warnings } = scan(bytes);
    assert.equal(r.kind, 'request', request);
    if (r.kind === 'request') assert.equal(r.req.request, request);
    assert.deepEqual(warnings, ['unexpected attribute extra from tlsmgr socket (expecting: (list terminator))']);
  }
  // Only the first extra is named; later ones are not parsed.
  const { warnings } = scan(req('seed', ['size', '5'], ['x1', 'a'], ['x2', 'b'], ['size', 'junk']));
  assert.deepEqual(warnings, [unexpected('x1', TERM)]);
});

test('scenario 49: a repeated final attribute is an extra: the first value wins', () => {
  const { r, warnings } = scan(req('update', ['cache_type', 'smtpd'], ['cache_id', 'x'], ['session', b64('first')], ['session', b64('second')]));
  assert.deepEqual(plain(r), { kind: 'request', req: { request: 'update', cacheType: 'smtpd', cacheId: 'buf:x', session: 'buf:first' } });
  assert.deepEqual(warnings, [unexpected('session', TERM)]);
  // The extra's value is not parsed: a malformed duplicate changes nothing.
  const r2 = scan(req('seed', ['size', '5'], ['size', 'abc']));
  assert.deepEqual(r2.r, { kind: 'request', req: { request: 'seed', size: 5 } });
});

/* ---- values ---- */

test('scenario 54: seed size texts', () => {
  const good: Array<[string, number]> = [
    [' 5', 5],
    ['+5', 5],
    ['05', 5],
    ['4294967297', 1],
    ['4294967295', -1],
    ['-1', -1],
    ['0', 0],
    ['256', 256],
  ];
  for (const [text, size] of good) {
    const { r, warnings } = scan(req('seed', ['size', text]));
    assert.deepEqual(r, { kind: 'request', req: { request: 'seed', size } }, JSON.stringify(text));
    assert.deepEqual(warnings, []);
  }
  for (const text of ['5 ', '0x5', '', 'abc', '5x']) {
    const { r, warnings } = scan(req('seed', ['size', text]));
    assert.deepEqual(r, { kind: 'fail', request: 'seed' }, JSON.stringify(text));
    assert.deepEqual(warnings, [`malformed numerical data from ${PATH} while reading input attribute value: ${text}`]);
  }
});

test('scenario 55: keyname base64 accepted and rejected, with the exact warning', () => {
  for (const [text, hex] of [['QQ=x', '41'], ['QR==', '41'], ['QQ==AAAA', '41'], ['', '']] as const) {
    const { r, warnings } = scan(req('tktkey', ['keyname', text]));
    assert.equal(r.kind, 'request', text);
    if (r.kind === 'request' && r.req.request === 'tktkey') assert.equal(r.req.keyname.toString('hex'), hex);
    assert.deepEqual(warnings, []);
  }
  for (const text of ['QQ=', '====', 'Q===', 'QUJD!!!!', 'QQ-_']) {
    const { r, warnings } = scan(req('tktkey', ['keyname', text]));
    assert.deepEqual(r, { kind: 'fail', request: 'tktkey' }, text);
    assert.deepEqual(warnings, [`malformed base64 data from ${PATH} while reading input attribute value: ${text}`]);
  }
});

test('a malformed session is reported without quoting it (TLS secret)', () => {
  const { r, warnings } = scan(req('update', ['cache_type', 'smtpd'], ['cache_id', 'x'], ['session', 'WFla!!!!']));
  assert.deepEqual(r, { kind: 'fail', request: 'update' });
  assert.deepEqual(warnings, [`malformed base64 data from ${PATH} while reading input attribute value: (8 characters)`]);
});

test('peer text in warnings is made printable and cut to 100 characters', () => {
  const { warnings } = scan(list(['bad\nname\xff', '1']));
  assert.deepEqual(warnings, [unexpected('bad?name?', 'request')]);
  const long = '9'.repeat(150) + 'x';
  const w2 = scan(req('seed', ['size', long])).warnings;
  assert.deepEqual(w2, [`malformed numerical data from ${PATH} while reading input attribute value: ${'9'.repeat(100)}`]);
});

test('the stream name comes from the context ("unknown_stream" in -S mode)', () => {
  const { warnings } = scan(req('seed'), { path: 'unknown_stream' });
  assert.deepEqual(warnings, ['missing attribute size in input from unknown_stream']);
});

/* ---- end of input during the second scan (spec 2.2, scenario 56) ---- */

test('scenario 56: "request\\0seed\\0" then EOF -> FAIL without a warning', () => {
  const { r, warnings } = scan(raw('request', 'seed'), { eof: true });
  assert.deepEqual(r, { kind: 'fail', request: 'seed' });
  assert.deepEqual(warnings, []);
});

test('scenario 56: "request\\0seed\\0si" then EOF -> FAIL + unexpected end-of-input (name)', () => {
  const { r, warnings } = scan(Buffer.from('request\0seed\0si', 'latin1'), { eof: true });
  assert.deepEqual(r, { kind: 'fail', request: 'seed' });
  assert.deepEqual(warnings, ['unexpected end-of-input from tlsmgr socket while reading input attribute name']);
});

test('end of input at each later position of a request', () => {
  const cases: Array<[Buffer, ScanResult, string[]]> = [
    [raw('request', 'seed', 'size'), { kind: 'fail', request: 'seed' }, [`premature end-of-input on ${PATH} while reading input attribute value`]],
    [Buffer.from('request\0seed\0size\x003', 'latin1'), { kind: 'fail', request: 'seed' }, [`unexpected end-of-input from ${PATH} while reading input attribute value`]],
    // all attributes read, terminator missing: attr_scan0 reads "(list terminator)" and hits EOF
    [raw('request', 'seed', 'size', '3'), { kind: 'fail', request: 'seed' }, [`premature end-of-input on ${PATH} while reading input attribute name`]],
    [Buffer.from('request\0seed\0size\x003\0ex', 'latin1'), { kind: 'fail', request: 'seed' }, [`unexpected end-of-input from ${PATH} while reading input attribute name`]],
    [raw('request', 'lookup', 'cache_type', 'smtpd'), { kind: 'fail', request: 'lookup' }, [`premature end-of-input on ${PATH} while reading input attribute name`]],
    [raw('request', 'lookup', 'cache_id'), { kind: 'fail', request: 'lookup' }, [unexpected('cache_id', 'cache_type')]],
    [Buffer.from('request\0lookup\0cache_type\0smtpd\0cache_id\0ab', 'latin1'), { kind: 'fail', request: 'lookup' }, [`unexpected end-of-input from ${PATH} while reading input attribute value`]],
  ];
  for (const [bytes, want, warn] of cases) {
    const { r, warnings } = scan(bytes, { eof: true });
    assert.deepEqual(r, want, JSON.stringify(bytes.toString('latin1')));
    assert.deepEqual(warnings, warn, JSON.stringify(bytes.toString('latin1')));
  }
});

test('end of input inside a trailing extra: served as with a complete extra', () => {
  const { r, warnings } = scan(Buffer.from('request\0seed\0size\x005\0extra\0y', 'latin1'), { eof: true });
  assert.deepEqual(r, { kind: 'request', req: { request: 'seed', size: 5 } });
  assert.deepEqual(warnings, [unexpected('extra', TERM)]);
  const r2 = scan(raw('request', 'seed', 'size', '5', 'extra', 'y'), { eof: true });
  assert.deepEqual(r2.r, { kind: 'request', req: { request: 'seed', size: 5 } });
  assert.deepEqual(r2.warnings, [unexpected('extra', TERM)]);
});

/* ---- bounds (extensions) ---- */

test('cache_id bound: cacheIdLimit bytes accepted, cacheIdLimit + 1 -> FAIL + warning', () => {
  const at = 'i'.repeat(40);
  for (const request of ['lookup', 'delete'] as const) {
    assert.equal(scan(req(request, ['cache_type', 'smtpd'], ['cache_id', at]), { cacheIdLimit: 40 }).r.kind, 'request');
    const { r, warnings } = scan(req(request, ['cache_type', 'smtpd'], ['cache_id', `${at}i`]), { cacheIdLimit: 40 });
    assert.deepEqual(r, { kind: 'fail', request });
    assert.deepEqual(warnings, [`cache_id length 41 from ${PATH} exceeds tlsmgr_cache_id_limit 40`]);
  }
  const u = scan(req('update', ['cache_type', 'smtpd'], ['cache_id', `${at}i`], ['session', 'QQ==']), { cacheIdLimit: 40 });
  assert.deepEqual(u.r, { kind: 'fail', request: 'update' });
});

test('session bound: sessionLimit decoded bytes accepted, sessionLimit + 1 -> FAIL + warning', () => {
  const mk = (n: number): Buffer => req('update', ['cache_type', 'smtpd'], ['cache_id', 'x'], ['session', b64(Buffer.alloc(n, 1))]);
  assert.equal(scan(mk(100), { sessionLimit: 100 }).r.kind, 'request');
  const { r, warnings } = scan(mk(101), { sessionLimit: 100 });
  assert.deepEqual(r, { kind: 'fail', request: 'update' });
  assert.deepEqual(warnings, [`session length 101 from ${PATH} exceeds tlsmgr_session_limit 100`]);
});

/* ---- session secrets are zeroed once scanned (SECURITY) ---- */

/** A session whose base64 text has no padding and no piece in common with the other tokens. */
const SECRET = Buffer.from('0123456789abcdefghijklmnopqrstuv'.repeat(3).slice(0, 90), 'latin1');
const SECRET_B64 = b64(SECRET);

/** Whether buf still holds any 8-character piece of the session's base64 text. */
function holdsSecret(buf: Buffer): boolean {
  const text = buf.toString('latin1');
  for (let i = 0; i + 8 <= SECRET_B64.length; i += 4) if (text.includes(SECRET_B64.slice(i, i + 8))) return true;
  return false;
}

test('every session value is zeroed in the received bytes once scanned, whatever the outcome', () => {
  const s: [string, string] = ['session', SECRET_B64];
  const cases: Array<[string, Buffer, boolean, string]> = [
    ['served update', req('update', ['cache_type', 'smtpd'], ['cache_id', 'host:25'], s), false, 'request'],
    ['session out of order (never decoded)', req('update', ['cache_type', 'smtpd'], s, ['cache_id', 'host:25']), false, 'fail'],
    ['trailing extra session', req('lookup', ['cache_type', 'smtpd'], ['cache_id', 'host:25'], s), false, 'request'],
    ['unknown request name', req('bogus', s), false, 'unknown'],
    ['malformed session', req('update', ['cache_type', 'smtpd'], ['cache_id', 'host:25'], ['session', `${SECRET_B64.slice(0, -4)}!!!!`]), false, 'fail'],
    ['end of input before the list terminator', raw('request', 'update', 'cache_type', 'smtpd', 'cache_id', 'host:25', 'session', SECRET_B64), true, 'fail'],
    ['end of input inside the session value', raw('request', 'update', 'cache_type', 'smtpd', 'cache_id', 'host:25', 'session', SECRET_B64).subarray(0, -1), true, 'fail'],
  ];
  for (const [label, bytes, eof, kind] of cases) {
    assert.ok(holdsSecret(bytes), `${label}: the input holds the session`);
    const { r } = scan(bytes, { eof });
    assert.equal(r.kind, kind, label);
    assert.ok(!holdsSecret(bytes), `${label}: session bytes zeroed`);
    if (label === 'served update') {
      assert.ok(r.kind === 'request' && r.req.request === 'update');
      assert.ok(r.req.session.equals(SECRET), 'the decoded session is intact');
      assert.equal(r.req.cacheId.toString('latin1'), 'host:25', 'cache_id is untouched');
    }
  }
});

/** Run fn while recording the Buffers allocated by Buffer.allocUnsafe (the base64 decoder's output). */
function capturingAllocations<T>(fn: () => T): { result: T; allocated: Buffer[] } {
  const allocated: Buffer[] = [];
  const orig = Buffer.allocUnsafe;
  Buffer.allocUnsafe = (n) => {
    const b = orig(n);
    allocated.push(b);
    return b;
  };
  try {
    return { result: fn(), allocated };
  } finally {
    Buffer.allocUnsafe = orig;
  }
}

test('a session decoded for a request that then fails is zeroed', () => {
  const update = (id: string): Buffer => req('update', ['cache_type', 'smtpd'], ['cache_id', id], ['session', SECRET_B64]);
  const cases: Array<[string, Buffer, { eof?: boolean; sessionLimit?: number; cacheIdLimit?: number }]> = [
    ['session over the bound', update('host:25'), { sessionLimit: SECRET.length - 1 }],
    ['cache_id over the bound', update('host:25'), { cacheIdLimit: 3 }],
    ['end of input before the list terminator', update('host:25').subarray(0, -1), { eof: true }],
  ];
  for (const [label, bytes, opts] of cases) {
    const { result, allocated } = capturingAllocations(() => scan(bytes, opts));
    assert.deepEqual(result.r, { kind: 'fail', request: 'update' }, label);
    const outputs = allocated.filter((b) => b.length === SECRET.length);
    assert.ok(outputs.length > 0, `${label}: the session was decoded`);
    for (const b of outputs) assert.ok(b.every((x) => x === 0), `${label}: decoded session zeroed`);
  }
});
