/*
 * attr-writer - src/attr/writer.ts, the attr0 encoder (spec 1.2; scenarios 3, 4, 6): INT as
 * printf("%u") of the 32-bit value (-1 -> 4294967295, -2 -> 4294967294), STR verbatim, DATA
 * as padded base64 (empty data = empty value), one terminating NUL, attributes in call order,
 * and no state shared between writers.
 */

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Attr0Reader } from '../../src/attr/reader.js';
import { Attr0Writer } from '../../src/attr/writer.js';
import { parseReply, show } from '../helpers/attr.js';

const bytes = (s: string): Buffer => Buffer.from(s, 'latin1');

test('INT: unsigned decimal of the 32-bit value', () => {
  const cases: Array<[number, string]> = [
    [0, '0'],
    [1, '1'],
    [3600, '3600'],
    [-1, '4294967295'],
    [-2, '4294967294'],
    [2147483647, '2147483647'],
    [-2147483648, '2147483648'],
    [4294967295, '4294967295'],
  ];
  for (const [v, text] of cases) {
    assert.equal(show(new Attr0Writer().int('status', v).end()), show(bytes(`status\0${text}\0\0`)), String(v));
  }
});

test('STR: verbatim latin1 bytes; empty value', () => {
  assert.equal(show(new Attr0Writer().str('protocol', 'tlsmgr_protocol').end()), show(bytes('protocol\0tlsmgr_protocol\0\0')));
  assert.equal(show(new Attr0Writer().str('cache_id', 'bad-\xff').end()), show(bytes('cache_id\0bad-\xff\0\0')));
  assert.equal(show(new Attr0Writer().str('x', '').end()), show(bytes('x\0\0\0')));
});

test('STR with a NUL is a programming error (TypeError), not silent corruption', () => {
  assert.throws(() => new Attr0Writer().str('x', 'a\0b'), TypeError);
});

test('DATA: base64 with + / and = padding; empty data is an empty value', () => {
  const cases: Array<[number[], string]> = [
    [[], ''],
    [[0x00], 'AA=='],
    [[0x00, 0xff], 'AP8='],
    [[0xfb, 0xef, 0xff], '++//'],
    [[0xff, 0xff, 0xff, 0x00], '////AA=='],
  ];
  for (const [data, text] of cases) {
    assert.equal(show(new Attr0Writer().data('seed', Buffer.from(data)).end()), show(bytes(`seed\0${text}\0\0`)), text);
  }
  // A Uint8Array view is encoded as its own bytes only.
  const backing = new Uint8Array([1, 2, 3, 4]);
  assert.equal(show(new Attr0Writer().data('d', backing.subarray(1, 2)).end()), show(bytes('d\0Ag==\0\0')));
});

test('an empty list is a single NUL', () => {
  assert.equal(show(new Attr0Writer().end()), show(bytes('\0')));
});

test('attribute order is call order (spec 2.9 reply shapes)', () => {
  const policy = new Attr0Writer().int('status', 0).int('cachable', 1).int('timeout', 3600).end();
  assert.equal(show(policy), show(bytes('status\x000\0cachable\x001\0timeout\x003600\0\0')));
  const miss = new Attr0Writer().int('status', -1).data('session', Buffer.alloc(0)).end();
  assert.equal(show(miss), show(bytes('status\x004294967295\0session\0\0\0')), 'scenario 3');
});

test('writers share no state', () => {
  const a = new Attr0Writer().int('status', 0);
  const b = new Attr0Writer().int('status', -2);
  assert.equal(show(b.end()), show(bytes('status\x004294967294\0\0')));
  assert.equal(show(a.data('seed', Buffer.from([1])).end()), show(bytes('status\x000\0seed\0AQ==\0\0')));
});

test('round trip through Attr0Reader and an independent parser, for DATA lengths 0,1,2,3,255,4096', () => {
  for (const n of [0, 1, 2, 3, 255, 4096]) {
    const data = Buffer.alloc(n);
    for (let i = 0; i < n; i++) data[i] = i % 3 === 0 ? 0x00 : i % 3 === 1 ? 0xff : i & 0xff;
    const out = new Attr0Writer().int('status', 0).data('session', data).end();
    const reply = parseReply(out);
    assert.deepEqual(reply.names, ['status', 'session']);
    assert.equal(reply.data('session').toString('hex'), data.toString('hex'), `length ${n}`);
    const r = new Attr0Reader({ nameLimit: 64, valueLimit: 8192, countLimit: 4 });
    r.push(out);
    const ev = r.next();
    assert.ok(ev !== null && ev.type === 'list');
    assert.equal(ev.attrs[1].value.toString('latin1'), data.toString('base64'));
  }
});
