/*
 * attr-reader - src/attr/reader.ts, the push parser for attr0 (spec 1.2, 2.2 step 2,
 * scenarios 2, 7, 51, 52, 53, 56): lists, empty values, empty lists, the short (<= 2 byte)
 * path at a list start, end-of-input descriptions, and the name/value/count limits at the
 * limit and at limit + 1 (style.md 6.1). Split fuzzing (style.md 6.2): a multi-request stream
 * fed whole, byte by byte, at every split offset and at seeded random splits yields the same
 * events. The one documented exception is the short path, which depends on the chunk by
 * design (Postfix peeks at the queued byte count): the fuzzed chunkings keep the first three
 * bytes of every list together, and the short path has its own tests below.
 */

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Attr0Reader, type AttrLimits, type ReadEvent, type Truncation } from '../../src/attr/reader.js';
import { b64, list, raw, req } from '../helpers/attr.js';
import { splits } from '../helpers/splits.js';

const LIMITS: AttrLimits = { nameLimit: 16, valueLimit: 64, countLimit: 6 };

function serEvent(ev: ReadEvent): string {
  switch (ev.type) {
    case 'list':
      return JSON.stringify({
        list: ev.attrs.map((a) => [a.name, a.value.toString('latin1')]),
        ...(ev.bare === null ? {} : { bare: ev.bare.toString('latin1') }),
      });
    case 'bare':
      return JSON.stringify({ bare: ev.name.toString('latin1') });
    case 'limit':
      return JSON.stringify({ limit: ev.what, at: ev.limit });
  }
}

function serTrunc(t: Truncation | null): string {
  if (t === null) return 'null';
  return JSON.stringify({
    where: t.where,
    partial: t.partial.toString('latin1'),
    name: t.name,
    attrs: t.attrs.map((a) => [a.name, a.value.toString('latin1')]),
    bare: t.bare === null ? null : t.bare.toString('latin1'),
  });
}

/**
 * Feed chunks, draining events after each push. 'bare' events are recorded and answered with
 * dropBuffered() unless `onBare` says to continue. The last entry is finish()'s description.
 */
function feed(chunks: readonly Buffer[], limits = LIMITS, onBare?: (name: string) => 'continue' | 'drop'): string[] {
  const r = new Attr0Reader(limits);
  const out: string[] = [];
  for (const c of chunks) {
    r.push(c);
    for (let ev = r.next(); ev !== null; ev = r.next()) {
      out.push(serEvent(ev));
      if (ev.type === 'bare') {
        if (onBare?.(ev.name.toString('latin1')) === 'continue') r.bareContinue();
        else r.dropBuffered();
      }
    }
  }
  out.push(`end ${serTrunc(r.finish())}`);
  return out;
}

const L = (...attrs: Array<[string, string]>): string => JSON.stringify({ list: attrs });
const END_CLEAN = 'end null';

/** List start offsets of the concatenation of `parts`. */
function starts(parts: readonly Buffer[]): number[] {
  const s: number[] = [];
  let o = 0;
  for (const p of parts) {
    s.push(o);
    o += p.length;
  }
  return s;
}

/** Forbid cuts 1 and 2 bytes after a list start: the first 3 bytes of each list arrive together. */
function keepStarts(parts: readonly Buffer[]): (offset: number) => boolean {
  const forbidden = new Set<number>();
  for (const s of starts(parts)) {
    forbidden.add(s + 1);
    forbidden.add(s + 2);
  }
  return (c) => !forbidden.has(c);
}

test('one list, fed whole', () => {
  assert.deepEqual(feed([req('seed', ['size', '32'])]), [L(['request', 'seed'], ['size', '32']), END_CLEAN]);
});

test('empty values, empty lists, and a list without the request attribute', () => {
  // "a" with an empty value ends at the third NUL; each further NUL is an empty list.
  assert.deepEqual(feed([Buffer.from('a\0\0\0\0\0\0', 'latin1')]), [L(['a', '']), L(), L(), L(), END_CLEAN]);
  assert.deepEqual(feed([Buffer.from('size\x001\0\0', 'latin1')]), [L(['size', '1']), END_CLEAN]);
});

test('an empty name ends the list early: what follows starts the next list', () => {
  // list(['a', ''], ['', 'x']) is "a\0\0\0x\0\0": the empty name ends [a=""]; then x="" is pending.
  assert.deepEqual(feed([list(['a', ''], ['', 'x'])]), [
    L(['a', '']),
    `end ${JSON.stringify({ where: 'name', partial: '', name: '', attrs: [['x', '']], bare: null })}`,
  ]);
});

test('values keep their bytes: NUL-free binary, latin1 names, DATA text', () => {
  const id = Buffer.from([0x62, 0x61, 0x64, 0x2d, 0xff, 0xfe, 0x01]);
  const ev = feed([req('lookup', ['cache_type', 'smtpd'], ['cache_id', id], ['session', b64(Buffer.from([0, 0xff]))])]);
  assert.deepEqual(ev, [L(['request', 'lookup'], ['cache_type', 'smtpd'], ['cache_id', 'bad-\xff\xfe\x01'], ['session', 'AP8=']), END_CLEAN]);
});

test('events already returned are not changed by later input', () => {
  const r = new Attr0Reader(LIMITS);
  r.push(Buffer.concat([req('seed', ['size', '5']), Buffer.from('requ', 'latin1')]));
  const ev = r.next();
  assert.ok(ev !== null && ev.type === 'list');
  const before = ev.attrs.map((a) => a.value.toString('latin1'));
  r.push(Buffer.from('est\0policy\0cache_type\0smtp\0\0', 'latin1'));
  const ev2 = r.next();
  assert.ok(ev2 !== null && ev2.type === 'list');
  assert.deepEqual(ev.attrs.map((a) => a.value.toString('latin1')), before);
  assert.deepEqual(ev2.attrs.map((a) => [a.name, a.value.toString('latin1')]), [['request', 'policy'], ['cache_type', 'smtp']]);
});

/* ---- split fuzzing ---- */

const STREAM_PARTS: readonly Buffer[] = [
  req('seed', ['size', '32']),
  req('update', ['cache_type', 'smtpd'], ['cache_id', 'id\xff\x01'], ['session', b64(Buffer.from([0, 1, 0xfe, 0xff, 0x3d]))]),
  list(),
  req('tktkey', ['keyname', '']),
  req('lookup', ['cache_type', ''], ['cache_id', ''], ['extra', 'y']),
  list(['size', '1']),
  Buffer.from('\0\0', 'latin1'),
  req('policy', ['cache_type', 'smtpd']),
];
const STREAM_EVENTS = [
  L(['request', 'seed'], ['size', '32']),
  L(['request', 'update'], ['cache_type', 'smtpd'], ['cache_id', 'id\xff\x01'], ['session', 'AAH+/z0=']),
  L(),
  L(['request', 'tktkey'], ['keyname', '']),
  L(['request', 'lookup'], ['cache_type', ''], ['cache_id', ''], ['extra', 'y']),
  L(['size', '1']),
  L(),
  L(),
  L(['request', 'policy'], ['cache_type', 'smtpd']),
];

test('split fuzzing: a multi-request stream gives the same events for every chunking', () => {
  const stream = Buffer.concat(STREAM_PARTS);
  // The parts are not all lists ("\0\0" is two), so list starts come from the expected events.
  const listParts = [...STREAM_PARTS.slice(0, 6), Buffer.from('\0'), Buffer.from('\0'), STREAM_PARTS[7]];
  assert.equal(Buffer.concat(listParts).length, stream.length);
  const expected = [...STREAM_EVENTS, END_CLEAN];
  assert.deepEqual(feed([stream]), expected, 'whole');
  let n = 0;
  for (const { label, chunks } of splits(stream, { random: 200, seed: 7, keep: keepStarts(listParts) })) {
    assert.deepEqual(feed(chunks), expected, label);
    n++;
  }
  assert.ok(n > stream.length, `ran ${n} chunkings`);
});

test('split fuzzing: a stream cut off in a name, in a value, and at a token boundary', () => {
  const cases: Array<[Buffer, string]> = [
    [raw('request', 'seed', 'si').subarray(0, -1), JSON.stringify({ where: 'name', partial: 'si', name: '', attrs: [['request', 'seed']], bare: null })],
    [raw('request', 'se').subarray(0, -1), JSON.stringify({ where: 'value', partial: 'se', name: 'request', attrs: [], bare: null })],
    [raw('request', 'seed'), JSON.stringify({ where: 'name', partial: '', name: '', attrs: [['request', 'seed']], bare: null })],
    [raw('request', 'seed', 'size'), JSON.stringify({ where: 'value', partial: '', name: 'size', attrs: [['request', 'seed']], bare: null })],
    [Buffer.from('requ', 'latin1'), JSON.stringify({ where: 'name', partial: 'requ', name: '', attrs: [], bare: null })],
  ];
  for (const [tail, want] of cases) {
    const parts = [req('seed', ['size', '5']), tail];
    const stream = Buffer.concat(parts);
    const expected = [L(['request', 'seed'], ['size', '5']), `end ${want}`];
    for (const { label, chunks } of splits(stream, { random: 50, seed: 11, keep: keepStarts(parts) })) {
      assert.deepEqual(feed(chunks), expected, `${JSON.stringify(tail.toString('latin1'))} ${label}`);
    }
  }
});

test('split fuzzing: limit events do not depend on the chunking', () => {
  const longName = 'n'.repeat(LIMITS.nameLimit + 1);
  const longValue = 'v'.repeat(LIMITS.valueLimit + 1);
  const tooMany: Array<[string, string]> = [];
  for (let i = 0; i < LIMITS.countLimit; i++) tooMany.push([`a${i}`, 'x']);
  const cases: Array<[Buffer, string]> = [
    [list([longName, 'x']), JSON.stringify({ limit: 'name', at: LIMITS.nameLimit })],
    [req('update', ['session', longValue]), JSON.stringify({ limit: 'value', at: LIMITS.valueLimit })],
    [req('update', ...tooMany), JSON.stringify({ limit: 'count', at: LIMITS.countLimit })],
    // no NUL at all: the bound is hit before the token ends
    [Buffer.from(longName, 'latin1'), JSON.stringify({ limit: 'name', at: LIMITS.nameLimit })],
    [Buffer.concat([raw('request'), Buffer.from(longValue, 'latin1')]), JSON.stringify({ limit: 'value', at: LIMITS.valueLimit })],
  ];
  for (const [bad, want] of cases) {
    const parts = [req('seed', ['size', '5']), bad, req('seed', ['size', '6'])];
    const stream = Buffer.concat(parts);
    // After a limit event the reader is dead: no further events, and finish() reports nothing.
    const expected = [L(['request', 'seed'], ['size', '5']), want, END_CLEAN];
    for (const { label, chunks } of splits(stream, { random: 30, seed: 3, keep: keepStarts(parts) })) {
      assert.deepEqual(feed(chunks), expected, `${want} ${label}`);
    }
  }
});

/* ---- limits at the limit and at limit + 1 ---- */

test('name limit: a name of nameLimit bytes is accepted, nameLimit + 1 is not', () => {
  const at = 'n'.repeat(LIMITS.nameLimit);
  assert.deepEqual(feed([list([at, 'x'])]), [L([at, 'x']), END_CLEAN]);
  assert.deepEqual(feed([list([`${at}n`, 'x'])]), [JSON.stringify({ limit: 'name', at: LIMITS.nameLimit }), END_CLEAN]);
  // Streaming, without the NUL yet: nameLimit bytes wait for more, nameLimit + 1 bytes fail at once.
  const r = new Attr0Reader(LIMITS);
  r.push(Buffer.from(at, 'latin1'));
  assert.equal(r.next(), null);
  r.push(Buffer.from('n', 'latin1'));
  assert.deepEqual(r.next(), { type: 'limit', what: 'name', limit: LIMITS.nameLimit });
});

test('value limit: a value of valueLimit bytes is accepted, valueLimit + 1 is not', () => {
  const at = 'v'.repeat(LIMITS.valueLimit);
  assert.deepEqual(feed([req('x', ['session', at])]), [L(['request', 'x'], ['session', at]), END_CLEAN]);
  assert.deepEqual(feed([req('x', ['session', `${at}v`])]), [JSON.stringify({ limit: 'value', at: LIMITS.valueLimit }), END_CLEAN]);
  const r = new Attr0Reader(LIMITS);
  r.push(Buffer.concat([raw('request', 'x', 'session'), Buffer.from(at, 'latin1')]));
  assert.equal(r.next(), null, 'valueLimit bytes without NUL: waiting');
  r.push(Buffer.from('v', 'latin1'));
  assert.deepEqual(r.next(), { type: 'limit', what: 'value', limit: LIMITS.valueLimit });
});

test('count limit: countLimit attributes are accepted, countLimit + 1 are not', () => {
  const attrs: Array<[string, string]> = [['request', 'x']];
  for (let i = 1; i < LIMITS.countLimit; i++) attrs.push([`a${i}`, String(i)]);
  assert.equal(attrs.length, LIMITS.countLimit);
  assert.deepEqual(feed([list(...attrs)]), [L(...attrs), END_CLEAN]);
  assert.deepEqual(feed([list(...attrs, ['one', 'more'])]), [JSON.stringify({ limit: 'count', at: LIMITS.countLimit }), END_CLEAN]);
});

test('after a limit event the reader is dead', () => {
  const r = new Attr0Reader(LIMITS);
  r.push(list(['n'.repeat(LIMITS.nameLimit + 1), 'x']));
  assert.equal(r.next()?.type, 'limit');
  assert.equal(r.next(), null);
  r.push(req('seed', ['size', '5']));
  assert.equal(r.next(), null, 'input after the limit is ignored');
  assert.equal(r.finish(), null);
});

/* ---- the short path (spec 2.2 step 2) ---- */

test('short path: "W\\0" in one chunk, or "W" and "\\0" in two, is a bare name', () => {
  assert.deepEqual(feed([Buffer.from('W\0', 'latin1')]), [JSON.stringify({ bare: 'W' }), END_CLEAN]);
  assert.deepEqual(feed([Buffer.from('W', 'latin1'), Buffer.from('\0', 'latin1')]), [JSON.stringify({ bare: 'W' }), END_CLEAN]);
  assert.deepEqual(feed([Buffer.from('\0', 'latin1')]), [JSON.stringify({ bare: '' }), END_CLEAN], 'an empty bare name');
});

test('short path: lone "W" then end of input is a bare truncation (scenario 51)', () => {
  assert.deepEqual(feed([Buffer.from('W', 'latin1')]), [`end ${JSON.stringify({ where: 'bare', partial: 'W', name: '', attrs: [], bare: null })}`]);
});

test('short path: "x\\0" dropped, then a later request parses normally (scenario 52)', () => {
  assert.deepEqual(feed([Buffer.from('x\0', 'latin1'), req('seed', ['size', '5'])]), [
    JSON.stringify({ bare: 'x' }),
    L(['request', 'seed'], ['size', '5']),
    END_CLEAN,
  ]);
});

test('short path: a known bare name continues with the request attributes', () => {
  const ev = feed([Buffer.from('se', 'latin1'), Buffer.from('ed\0size\x005\0\0', 'latin1')], LIMITS, (n) => (n === 'seed' ? 'continue' : 'drop'));
  assert.deepEqual(ev, [JSON.stringify({ bare: 'seed' }), JSON.stringify({ list: [['size', '5']], bare: 'seed' }), END_CLEAN]);
  // End of input after the bare name: the truncation keeps it.
  const ev2 = feed([Buffer.from('se', 'latin1'), Buffer.from('ed\0', 'latin1')], LIMITS, () => 'continue');
  assert.deepEqual(ev2, [JSON.stringify({ bare: 'seed' }), `end ${JSON.stringify({ where: 'name', partial: '', name: '', attrs: [], bare: 'seed' })}`]);
});

test('short path: a real request whose first chunk is 1 or 2 bytes is misread, as in Postfix', () => {
  for (const k of [1, 2]) {
    const r = req('seed', ['size', '5']);
    assert.deepEqual(feed([r.subarray(0, k), r.subarray(k)]), [JSON.stringify({ bare: 'request' }), END_CLEAN], `first chunk ${k} bytes`);
  }
  // 3 bytes is enough to take the attr0 path.
  const r = req('seed', ['size', '5']);
  assert.deepEqual(feed([r.subarray(0, 3), r.subarray(3)]), [L(['request', 'seed'], ['size', '5']), END_CLEAN]);
});

test('short path: not taken in the middle of a list, nor with bytes already buffered', () => {
  assert.deepEqual(feed([Buffer.from('request\0se', 'latin1'), Buffer.from('ed', 'latin1'), Buffer.from('\0', 'latin1'), Buffer.from('size\x005\0\0', 'latin1')]), [
    L(['request', 'seed'], ['size', '5']),
    END_CLEAN,
  ]);
  // "re" left over after a list (not dropped), then 1-byte chunks: still one attr0 list.
  const r = new Attr0Reader(LIMITS);
  r.push(Buffer.concat([req('seed', ['size', '5']), Buffer.from('re', 'latin1')]));
  assert.equal(r.next()?.type, 'list');
  assert.equal(r.next(), null);
  for (const c of ['q', 'u', 'est\0seed\0size\x006\0\0']) r.push(Buffer.from(c, 'latin1'));
  const ev = r.next();
  assert.ok(ev !== null);
  assert.equal(serEvent(ev), L(['request', 'seed'], ['size', '6']));
});

test('while a bare name awaits the decision, next() returns nothing', () => {
  const r = new Attr0Reader(LIMITS);
  r.push(Buffer.from('se', 'latin1'));
  r.push(Buffer.from('ed\0size\x005\0\0', 'latin1'));
  assert.equal(r.next()?.type, 'bare');
  assert.equal(r.next(), null);
  assert.equal(r.next(), null);
  r.bareContinue();
  assert.equal(r.next()?.type, 'list');
});

/* ---- dropBuffered, idle, finish ---- */

test('dropBuffered() after a list drops the rest of the buffered input', () => {
  const r = new Attr0Reader(LIMITS);
  r.push(Buffer.concat([req('seed', ['size', '5']), req('seed', ['size', '6'])]));
  assert.equal(r.next()?.type, 'list');
  r.dropBuffered();
  assert.equal(r.next(), null);
  assert.equal(r.idle, true);
  assert.equal(r.finish(), null);
});

test('dropBuffered() in the middle of a list keeps it', () => {
  const r = new Attr0Reader(LIMITS);
  r.push(Buffer.from('request\0seed\0si', 'latin1'));
  assert.equal(r.next(), null);
  r.dropBuffered();
  r.push(Buffer.from('ze\x005\0\0', 'latin1'));
  const ev = r.next();
  assert.ok(ev !== null);
  assert.equal(serEvent(ev), L(['request', 'seed'], ['size', '5']));
});

test('idle is true only between lists with nothing buffered', () => {
  const r = new Attr0Reader(LIMITS);
  assert.equal(r.idle, true);
  r.push(Buffer.from('req', 'latin1'));
  assert.equal(r.next(), null);
  assert.equal(r.idle, false);
  r.push(Buffer.from('uest\0seed\0size\x005\0\0', 'latin1'));
  assert.equal(r.next()?.type, 'list');
  assert.equal(r.idle, true);
});

test('finish() between lists is null, and the reader accepts nothing afterwards', () => {
  const r = new Attr0Reader(LIMITS);
  r.push(req('seed', ['size', '5']));
  assert.equal(r.next()?.type, 'list');
  assert.equal(r.finish(), null);
  r.push(req('seed', ['size', '5']));
  assert.equal(r.next(), null);
});

/* ---- cost of input spread over many chunks ---- */

/**
 * Count the bytes copied by Buffer.concat, Buffer#copy, Buffer.from(view) and TypedArray#set
 * while fn runs (a call made inside another counted call is not counted again).
 */
function bytesCopied(fn: () => void): number {
  type SetFn = (this: Uint8Array, src: ArrayLike<number>, offset?: number) => void;
  const typedArrayProto = Object.getPrototypeOf(Uint8Array.prototype) as { set: SetFn };
  const orig = { concat: Buffer.concat, copy: Buffer.prototype.copy, from: Buffer.from, set: typedArrayProto.set };
  let total = 0;
  let depth = 0;
  const count = <R>(f: () => R, size: (r: R) => number): R => {
    depth++;
    try {
      const r = f();
      if (depth === 1) total += size(r);
      return r;
    } finally {
      depth--;
    }
  };
  Buffer.concat = (list, len) => count(() => orig.concat(list, len), (r) => r.length);
  Buffer.prototype.copy = function (this: Buffer, ...a: Parameters<Buffer['copy']>): number {
    return count(() => orig.copy.apply(this, a), (r) => r);
  };
  const from = (...a: unknown[]): Buffer =>
    count(() => (orig.from as (...x: unknown[]) => Buffer)(...a), (r) => (ArrayBuffer.isView(a[0]) ? r.length : 0));
  (Buffer as { from: unknown }).from = from;
  typedArrayProto.set = function (this: Uint8Array, src: ArrayLike<number>, offset?: number): void {
    count(() => orig.set.call(this, src, offset), () => src.length);
  };
  try {
    fn();
  } finally {
    Buffer.concat = orig.concat;
    Buffer.prototype.copy = orig.copy;
    Buffer.from = orig.from;
    typedArrayProto.set = orig.set;
  }
  return total;
}

test('a 1.4 MB value trickled in 100-byte chunks is copied less than three times its length', () => {
  const VALUE = 1_400_000;
  const limits: AttrLimits = { nameLimit: 256, valueLimit: 1_500_000, countLimit: 32 };
  const value = Buffer.alloc(VALUE, 'QUJD');
  const stream = Buffer.concat([raw('request', 'update', 'cache_type', 'smtpd', 'cache_id', 'host:25', 'session'), value, Buffer.from('\0\0')]);
  const chunks: Buffer[] = [];
  for (let i = 0; i < stream.length; i += 100) chunks.push(Buffer.from(stream.subarray(i, i + 100)));
  const r = new Attr0Reader(limits);
  const events: ReadEvent[] = [];
  let held = 0;
  const copied = bytesCopied(() => {
    for (const c of chunks) {
      r.push(c);
      for (let ev = r.next(); ev !== null; ev = r.next()) events.push(ev);
      held = Math.max(held, r.buffered);
    }
  });
  assert.equal(events.length, 1);
  const ev = events[0];
  assert.ok(ev.type === 'list');
  assert.deepEqual(ev.attrs.map((a) => a.name), ['request', 'cache_type', 'cache_id', 'session']);
  assert.ok(ev.attrs[3].value.equals(value), 'the value arrives whole and intact');
  assert.ok(copied < 3 * VALUE, `${copied} bytes copied for a ${VALUE}-byte value`);
  assert.ok(held >= VALUE - 100 && held <= VALUE, `at most the value is held (${held})`);
  assert.equal(r.buffered, 0);
});

test('a request that arrives in one chunk is not copied', () => {
  const chunk = req('update', ['cache_type', 'smtpd'], ['cache_id', 'host:25'], ['session', b64(Buffer.alloc(300, 7))]);
  const r = new Attr0Reader(LIMITS_BIG);
  let ev: ReadEvent | null = null;
  const copied = bytesCopied(() => {
    r.push(chunk);
    ev = r.next();
  });
  assert.equal(copied, 0);
  const got = ev as ReadEvent | null;
  assert.ok(got !== null && got.type === 'list');
  assert.equal(got.attrs[3].value.buffer, chunk.buffer, 'values are views of the chunk');
});

/* ---- buffered ---- */

const LIMITS_BIG: AttrLimits = { nameLimit: 256, valueLimit: 4096, countLimit: 32 };

test('buffered counts the unconsumed bytes held, across chunks and queued pushes', () => {
  const r = new Attr0Reader(LIMITS_BIG);
  assert.equal(r.buffered, 0);
  r.push(Buffer.from('request\0se', 'latin1'));
  assert.equal(r.buffered, 10, 'nothing parsed yet');
  assert.equal(r.next(), null);
  assert.equal(r.buffered, 2, '"se" of an unfinished value');
  r.push(Buffer.from('ed\0si', 'latin1'));
  assert.equal(r.buffered, 7);
  r.push(Buffer.from('ze\x005\0\0request', 'latin1')); // pushed before next(): queued
  assert.equal(r.buffered, 7 + 13);
  const ev = r.next();
  assert.ok(ev !== null && ev.type === 'list');
  assert.equal(serEvent(ev), L(['request', 'seed'], ['size', '5']));
  assert.equal(r.buffered, 7, '"request" of the next list');
  assert.equal(r.next(), null);
  assert.equal(r.buffered, 7);
  r.dropBuffered();
  assert.equal(r.buffered, 0);
  assert.equal(r.idle, true);
});

test('buffered is 0 after a limit and after finish()', () => {
  const r = new Attr0Reader(LIMITS);
  r.push(Buffer.from('n'.repeat(LIMITS.nameLimit), 'latin1'));
  assert.equal(r.next(), null);
  assert.equal(r.buffered, LIMITS.nameLimit);
  r.push(Buffer.from('nn', 'latin1'));
  assert.equal(r.next()?.type, 'limit');
  assert.equal(r.buffered, 0);
  const r2 = new Attr0Reader(LIMITS);
  r2.push(Buffer.from('request\0se', 'latin1'));
  r2.push(Buffer.from('ed', 'latin1'));
  assert.equal(r2.next(), null);
  const t = r2.finish();
  assert.equal(t?.partial.toString('latin1'), 'seed');
  assert.equal(r2.buffered, 0);
});

test('chunks pushed before next() is called parse as one stream', () => {
  const parts = ['requ', 'est\0s', 'eed\0', 'size', '\x005\0\0req', 'uest\0po', 'licy\0cache_type\0smtpd\0\0'];
  const r = new Attr0Reader(LIMITS);
  for (const p of parts) r.push(Buffer.from(p, 'latin1'));
  const out: string[] = [];
  for (let ev = r.next(); ev !== null; ev = r.next()) out.push(serEvent(ev));
  assert.deepEqual(out, [L(['request', 'seed'], ['size', '5']), L(['request', 'policy'], ['cache_type', 'smtpd'])]);
  assert.equal(r.buffered, 0);
});

/* ---- zeroing (SECURITY) ---- */

test('chunk bytes copied into a value spread over chunks are zeroed; the value is intact', () => {
  const secret = b64(Buffer.alloc(90, 0xa5));
  const stream = req('update', ['cache_type', 'smtpd'], ['cache_id', 'host:25'], ['session', secret]);
  const at = stream.indexOf(Buffer.from(secret, 'latin1'));
  // Cut inside the session value: its bytes arrive in three chunks.
  const cuts = [at + 10, at + 70];
  const chunks = [stream.subarray(0, cuts[0]), stream.subarray(cuts[0], cuts[1]), stream.subarray(cuts[1])].map((c) => Buffer.from(c));
  const r = new Attr0Reader(LIMITS_BIG);
  let ev: ReadEvent | null = null;
  for (const c of chunks) {
    r.push(c);
    ev ??= r.next();
  }
  assert.ok(ev !== null && ev.type === 'list');
  assert.equal(ev.attrs[3].value.toString('latin1'), secret);
  assert.equal(ev.attrs[2].value.toString('latin1'), 'host:25', 'a value inside one chunk is untouched');
  const left = Buffer.concat(chunks).toString('latin1');
  assert.ok(!left.includes(secret.slice(0, 8)) && !left.includes(secret.slice(-8)), 'no piece of the value left in the chunks');
  // The open list's earlier values were copied out before the first chunk was let go (held
  // memory stays what the reader counts); the event carries them intact.
  assert.deepEqual(ev.attrs.slice(0, 3).map((a) => a.value.toString('latin1')), ['update', 'smtpd', 'host:25']);
});

test('dropBuffered() zeroes the dropped bytes and leaves the values of the list alone', () => {
  const chunk = Buffer.concat([req('seed', ['size', '5']), Buffer.from('request\0update\0session\0c2VjcmV0', 'latin1')]);
  const r = new Attr0Reader(LIMITS);
  r.push(chunk);
  const ev = r.next();
  assert.ok(ev !== null && ev.type === 'list');
  r.dropBuffered();
  const n = req('seed', ['size', '5']).length;
  assert.equal(serEvent(ev), L(['request', 'seed'], ['size', '5']));
  assert.ok(chunk.subarray(n).every((b) => b === 0), 'the dropped tail is zeroed');
});

test('a limit zeroes the buffered input and the values of the list it cuts off', () => {
  const head = Buffer.from('request\0update\0session\0c2VjcmV0\0', 'latin1');
  const tail = Buffer.from('n'.repeat(LIMITS.nameLimit + 1), 'latin1');
  const r = new Attr0Reader(LIMITS);
  r.push(head);
  assert.equal(r.next(), null);
  r.push(tail);
  assert.equal(r.next()?.type, 'limit');
  assert.ok(head.subarray(head.indexOf('c2Vj')).every((b) => b === 0), 'the pending session value is zeroed');
  assert.ok(tail.every((b) => b === 0), 'the buffered name is zeroed');
});

test('finish(): a partial spread over chunks is collected; the chunk copies are zeroed', () => {
  const a = Buffer.from('request\0update\0session\0c2Vj', 'latin1');
  const b = Buffer.from('cmV0', 'latin1');
  const r = new Attr0Reader(LIMITS);
  r.push(a);
  assert.equal(r.next(), null);
  r.push(b);
  assert.equal(r.next(), null);
  const t = r.finish();
  assert.equal(t?.where, 'value');
  assert.equal(t?.partial.toString('latin1'), 'c2VjcmV0');
  assert.ok(a.subarray(a.indexOf('c2Vj')).every((x) => x === 0) && b.every((x) => x === 0));
});
