/*
 * NAME
 *   test/unit/reply-encoding - base64 written into a reply buffer; data replies byte for byte
 * SYNOPSIS
 *   node --test dist/test/unit/reply-encoding.test.js
 * DESCRIPTION
 *   base64EncodeInto() against Node's encoder for every length 0..300 at several offsets,
 *   leaving the bytes around the encoding alone, and refusing a buffer without room before
 *   writing anything. encodeResponse()'s data replies (seed, lookup hit, tktkey; every status)
 *   against the general Attr0Writer encoder, which is the reference.
 * SEE ALSO
 *   src/attr/base64.ts, src/protocol/responses.ts
 */

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { base64EncodeInto, base64Length } from '../../src/attr/base64.js';
import { STAT } from '../../src/protocol/names.js';
import { encodeResponse, encodeWithWriter, type Response } from '../../src/protocol/responses.js';

test('base64EncodeInto writes what Node encodes, at the offset given, and nothing else', () => {
  const data = randomBytes(301);
  for (let n = 0; n <= 300; n++) {
    for (const at of [0, 1, 5]) {
      const src = data.subarray(1, 1 + n); // a view that does not start its backing store
      const want = Buffer.from(src).toString('base64');
      assert.equal(base64Length(n), want.length);
      const out = Buffer.alloc(at + want.length + 3, 0xee);
      const end = base64EncodeInto(src, out, at);
      assert.equal(end, at + want.length, `end for ${n} bytes at ${at}`);
      assert.equal(out.toString('latin1', at, end), want, `${n} bytes at ${at}`);
      assert.ok(out.subarray(0, at).every((b) => b === 0xee), 'bytes before untouched');
      assert.ok(out.subarray(end).every((b) => b === 0xee), 'bytes after untouched');
    }
  }
});

test('base64EncodeInto refuses a buffer without room, before writing', () => {
  const out = Buffer.alloc(7, 0xee);
  assert.throws(() => base64EncodeInto(Buffer.from('abcd'), out, 0), RangeError);
  assert.throws(() => base64EncodeInto(Buffer.from('ab'), out, 4), RangeError);
  assert.throws(() => base64EncodeInto(Buffer.from('ab'), out, -1), RangeError);
  assert.ok(out.every((b) => b === 0xee));
  assert.equal(base64EncodeInto(Buffer.from('ab'), out, 3), 7);
  assert.equal(out.toString('latin1', 3), 'YWI=');
});

test('data replies are the bytes of the general encoder, for every status and length', () => {
  const statuses = [STAT.OK, STAT.ERR, STAT.FAIL];
  for (let n = 0; n <= 70; n++) {
    const d = randomBytes(n);
    for (const status of statuses) {
      const replies: Response[] = [
        { request: 'seed', status, seed: d },
        { request: 'lookup', status, session: d },
        { request: 'tktkey', status, keybuf: d },
        { request: 'lookup', status, session: new Uint8Array(d.buffer, d.byteOffset, d.byteLength) },
      ];
      for (const r of replies) assert.deepEqual(encodeResponse(r), encodeWithWriter(r), `${r.request} ${status} ${n}`);
    }
  }
});

test('a data reply is a buffer of its own, not a view of a shared one', () => {
  const a = encodeResponse({ request: 'seed', status: STAT.OK, seed: randomBytes(32) });
  const b = encodeResponse({ request: 'seed', status: STAT.OK, seed: randomBytes(32) });
  assert.equal(a.byteOffset, 0);
  assert.equal(a.buffer.byteLength, a.length);
  assert.notEqual(a.buffer, b.buffer);
});
