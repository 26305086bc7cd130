/*
 * protocol-scan.property - src/protocol/requests.ts scanRequest() under fast-check:
 *   - any attribute list, complete or cut off anywhere (bare, name, value, with any partial),
 *     scans without throwing into one of the result kinds, with well-typed requests; every
 *     `session` value (and a cut-off session's partial) is zero afterwards, and no warning
 *     quotes a session;
 *   - every valid request, encoded with the test builders (test/helpers/attr.ts) and fed to
 *     Attr0Reader in random chunks, scans back into the same typed request with no warning;
 *     trailing extra attributes cost one warning and nothing else.
 */

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { Attr0Reader, type Attr, type Truncation } from '../../src/attr/reader.js';
import { scanRequest, type Request, type RequestInput, type ScanContext } from '../../src/protocol/requests.js';
import { b64, req, type Pair } from '../helpers/attr.js';
import { checkProperty } from '../helpers/fuzz.js';

const REQUESTS = ['seed', 'policy', 'lookup', 'update', 'delete', 'tktkey'] as const;
const NAMES = ['request', 'cache_type', 'cache_id', 'session', 'size', 'keyname', 'extra', ''];
const KINDS = new Set(['request', 'fail', 'wakeup', 'unknown', 'close']);

const latin1 = (maxLength: number): fc.Arbitrary<string> => fc.string({ unit: 'binary', maxLength }).map((s) => Buffer.from(s, 'utf8').toString('latin1').replace(/\0/g, ''));
const base64Of = (maxLength: number): fc.Arbitrary<string> => fc.uint8Array({ maxLength }).map((u) => Buffer.from(u).toString('base64'));
const nameArb = fc.oneof(fc.constantFrom(...NAMES), latin1(12));
const valueArb = fc.oneof(
  fc.constantFrom(...REQUESTS, 'W', 'smtpd', 'smtp', 'lmtp', 'bogus', ''),
  fc.oneof(fc.integer(), fc.bigInt({ min: -(1n << 70n), max: 1n << 70n })).map(String),
  base64Of(40),
  latin1(30),
);
/** Session texts: valid base64, and printable text that is not (so it would be quotable). */
const sessionArb = fc.oneof(
  base64Of(40),
  base64Of(40).map((s) => `${s}QQ`),
  fc.tuple(base64Of(40), fc.constantFrom('!', '-', '_', ' ', '.')).map(([s, c]) => `${c}${s.slice(1)}`),
);
const attrsArb = fc.oneof(
  fc.array(fc.tuple(nameArb, valueArb), { maxLength: 6 }),
  // update requests in order, more or less, so that the session is decoded
  fc.tuple(fc.constantFrom('smtpd', 'smtp', 'bogus'), latin1(12), sessionArb, fc.array(fc.tuple(nameArb, valueArb), { maxLength: 2 })).map(
    ([ct, id, session, extra]): Array<[string, string]> => [['request', 'update'], ['cache_type', ct], ['cache_id', id], ['session', session], ...extra],
  ),
);

interface TruncSpec {
  readonly where: 'bare' | 'name' | 'value';
  readonly partial: string;
  readonly name: string;
}
const truncArb: fc.Arbitrary<TruncSpec | null> = fc.option(
  fc.record({ where: fc.constantFrom('bare', 'name', 'value') as fc.Arbitrary<TruncSpec['where']>, partial: fc.oneof(valueArb, fc.constant('')), name: nameArb }),
);

function ctxFor(warnings: string[], limits: { cacheIdLimit: number; sessionLimit: number }): ScanContext {
  return { path: 'tlsmgr socket', ...limits, warn: (m) => warnings.push(m) };
}

test('any attribute list or truncation scans without throwing; sessions are zeroed and never quoted', (t) => {
  const prop = fc.property(
    fc.option(fc.oneof(fc.constantFrom(...REQUESTS, 'W'), latin1(8))), attrsArb, truncArb,
    fc.record({ cacheIdLimit: fc.integer({ min: 0, max: 64 }), sessionLimit: fc.integer({ min: 0, max: 64 }) }),
    (bareText, pairs, tr, limits) => {
      const attrs: Attr[] = pairs.map(([name, v]) => ({ name, value: Buffer.from(v, 'latin1') }));
      const bare = bareText === null ? null : Buffer.from(bareText, 'latin1');
      let input: RequestInput;
      if (tr === null) {
        input = { complete: true, bare, attrs };
      } else {
        const trunc: Truncation = { bare: tr.where === 'bare' ? null : bare, attrs: tr.where === 'bare' ? [] : attrs, where: tr.where, partial: Buffer.from(tr.partial, 'latin1'), name: tr.where === 'value' ? tr.name : '' };
        input = { complete: false, trunc };
      }
      const sessions = [...(input.complete ? attrs : input.trunc.attrs).filter((a) => a.name === 'session').map((a) => a.value.toString('latin1'))];
      if (!input.complete && input.trunc.where === 'value' && input.trunc.name === 'session') sessions.push(input.trunc.partial.toString('latin1'));
      const others = [bareText ?? '', ...pairs.filter(([n]) => n !== 'session').flatMap(([n, v]) => [n, v]), tr?.name ?? '', tr?.where === 'value' && tr.name === 'session' ? '' : (tr?.partial ?? '')];
      const warnings: string[] = [];
      const r = scanRequest(input, ctxFor(warnings, limits));
      assert.ok(KINDS.has(r.kind), r.kind);
      if (r.kind === 'fail') assert.ok(r.request === null || (REQUESTS as readonly string[]).includes(r.request));
      if (r.kind === 'request') {
        const q = r.req;
        assert.ok((REQUESTS as readonly string[]).includes(q.request));
        if (q.request === 'seed') assert.ok(Number.isInteger(q.size) && q.size === (q.size | 0));
        if (q.request === 'lookup' || q.request === 'delete' || q.request === 'update') assert.ok(q.cacheId.length <= limits.cacheIdLimit);
        if (q.request === 'update') assert.ok(q.session.length <= limits.sessionLimit);
      }
      for (const a of input.complete ? input.attrs : input.trunc.attrs) if (a.name === 'session') assert.ok(a.value.every((b) => b === 0), 'session value zeroed');
      if (!input.complete && input.trunc.where === 'value' && input.trunc.name === 'session') assert.ok(input.trunc.partial.every((b) => b === 0), 'partial session zeroed');
      for (const s of sessions) {
        if (s.length < 8 || others.some((o) => o.includes(s))) continue;
        for (const w of warnings) assert.ok(!w.includes(s), `a warning quotes a session: ${w}`);
      }
    },
  );
  checkProperty(t, prop, 400);
});

/* ---- valid requests round-trip through the builders and the reader ---- */

const bytesNoNul = (maxLength: number): fc.Arbitrary<Buffer> => fc.uint8Array({ maxLength }).map((u) => Buffer.from(u.filter((b) => b !== 0)));
const typeArb = fc.oneof(fc.constantFrom('smtpd', 'smtp', 'lmtp'), latin1(10));

const requestArb: fc.Arbitrary<{ request: Request; wire: Pair[] }> = fc.oneof(
  fc.integer({ min: 0, max: 0xffffffff }).map((n) => ({ request: { request: 'seed' as const, size: n | 0 }, wire: [['size', String(n)]] as Pair[] })),
  typeArb.map((ct) => ({ request: { request: 'policy' as const, cacheType: ct }, wire: [['cache_type', ct]] as Pair[] })),
  fc.tuple(fc.constantFrom('lookup' as const, 'delete' as const), typeArb, bytesNoNul(64)).map(([name, ct, id]) => ({
    request: { request: name, cacheType: ct, cacheId: id },
    wire: [['cache_type', ct], ['cache_id', id]] as Pair[],
  })),
  fc.tuple(typeArb, bytesNoNul(64), fc.uint8Array({ maxLength: 300 })).map(([ct, id, s]) => ({
    request: { request: 'update' as const, cacheType: ct, cacheId: id, session: Buffer.from(s) },
    wire: [['cache_type', ct], ['cache_id', id], ['session', b64(s)]] as Pair[],
  })),
  fc.uint8Array({ maxLength: 32 }).map((k) => ({ request: { request: 'tktkey' as const, keyname: Buffer.from(k) }, wire: [['keyname', b64(k)]] as Pair[] })),
);

/** The request in plain form: Buffers as hex. */
function plain(r: Request): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(r)) o[k] = Buffer.isBuffer(v) ? `hex:${v.toString('hex')}` : v;
  return o;
}

test('valid requests round-trip: builder bytes, random chunks, reader, scanner', (t) => {
  const prop = fc.property(
    requestArb, fc.array(fc.tuple(fc.constantFrom('extra', 'session', 'size'), latin1(8)), { maxLength: 2 }),
    fc.array(fc.integer({ min: 3, max: 80 }), { minLength: 1, maxLength: 10 }),
    ({ request, wire }, extras, lengths) => {
      const bytes = req(request.request, ...wire, ...extras);
      const reader = new Attr0Reader({ nameLimit: 256, valueLimit: 4096, countLimit: 32 });
      const events = [];
      for (let at = 0, i = 0; at < bytes.length; i++) {
        const n = lengths[i % lengths.length];
        reader.push(Buffer.from(bytes.subarray(at, at + n)));
        at += n;
        for (let ev = reader.next(); ev !== null; ev = reader.next()) events.push(ev);
      }
      assert.equal(events.length, 1);
      const ev = events[0];
      assert.ok(ev.type === 'list');
      const warnings: string[] = [];
      const r = scanRequest({ complete: true, bare: ev.bare, attrs: ev.attrs }, ctxFor(warnings, { cacheIdLimit: 64, sessionLimit: 300 }));
      assert.equal(r.kind, 'request');
      if (r.kind !== 'request') return;
      assert.deepEqual(plain(r.req), plain(request));
      assert.equal(warnings.length, extras.length === 0 ? 0 : 1, warnings.join('\n'));
    },
  );
  checkProperty(t, prop, 300);
});
