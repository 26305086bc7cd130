/*
 * attr-base64.property - src/attr/base64.ts under fast-check, against a reference model of
 * Postfix's base64_decode_opt() rules as base64.ts documents them (spec 1.5), written in a
 * different form: a regular expression per quartet decides validity and where decoding stops,
 * and Node's (lenient) decoder then decodes the accepted prefix with its padding normalised.
 * Also: round trips with Node's encoder for valid input, decoding of a sub-range, and the
 * encoder's agreement with Node's.
 */

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { base64Decode, base64Encode } from '../../src/attr/base64.js';
import { checkProperty } from '../helpers/fuzz.js';

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const FULL = /^[A-Za-z0-9+/]{4}$/;
/** Two alphabet characters, then '=' (anything after it ignored) or one more and '='. */
const STOP = /^[A-Za-z0-9+/]{2}(=.|[A-Za-z0-9+/]=)$/s;

/** Postfix's rules: null if malformed, else the decoded bytes. */
function model(text: string): Buffer | null {
  if (text.length % 4 !== 0) return null;
  let accepted = '';
  for (let i = 0; i < text.length; i += 4) {
    const q = text.slice(i, i + 4);
    if (FULL.test(q)) {
      accepted += q;
      continue;
    }
    if (!STOP.test(q)) return null;
    // Decoding ends here; the character after a third-position '=' is never looked at.
    accepted += q[2] === '=' ? `${q.slice(0, 2)}==` : q;
    break;
  }
  return Buffer.from(accepted, 'base64');
}

const CHARS = [...ALPHABET, '=', '=', '=', '-', '_', ' ', '\n', '\0', '\xff', '.'];
const quartet = fc.string({ unit: fc.constantFrom(...CHARS), minLength: 4, maxLength: 4 });
const text = fc.oneof(
  fc.array(quartet, { maxLength: 12 }).map((qs) => qs.join('')),
  fc.uint8Array({ maxLength: 40 }).map((u) => Buffer.from(u).toString('base64')),
  fc.string({ unit: fc.constantFrom(...CHARS), maxLength: 30 }),
);

test('decode agrees with the model of Postfix\'s rules, also on a sub-range', (t) => {
  const prop = fc.property(text, fc.string({ maxLength: 5 }), fc.string({ maxLength: 5 }), (s, before, after) => {
    const want = model(s);
    const got = base64Decode(Buffer.from(s, 'latin1'));
    assert.equal(got === null ? null : got.toString('hex'), want === null ? null : want.toString('hex'), JSON.stringify(s));
    const wide = Buffer.from(before + s + after, 'latin1');
    const start = Buffer.byteLength(before, 'latin1');
    const sub = base64Decode(wide, start, start + s.length);
    assert.equal(sub === null ? null : sub.toString('hex'), want === null ? null : want.toString('hex'), 'sub-range');
  });
  checkProperty(t, prop, 2000);
});

test('round trip with Node\'s base64 for valid input; the encoder agrees with Node\'s', (t) => {
  const prop = fc.property(fc.uint8Array({ maxLength: 600 }), fc.nat(8), (u, off) => {
    const data = Buffer.from(u);
    const enc = data.toString('base64');
    assert.equal(base64Encode(data), enc);
    // A view inside a larger buffer encodes only its own bytes.
    const big = Buffer.concat([Buffer.alloc(off, 0x55), data, Buffer.alloc(3, 0xaa)]);
    assert.equal(base64Encode(big.subarray(off, off + data.length)), enc);
    const dec = base64Decode(Buffer.from(enc, 'latin1'));
    assert.ok(dec !== null && dec.equals(data));
  });
  checkProperty(t, prop, 500);
});
