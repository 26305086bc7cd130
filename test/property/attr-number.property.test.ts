/*
 * attr-number.property - src/attr/number.ts under fast-check, against a BigInt reference
 * model of glibc's sscanf("%u%c") into a C int (number.ts header): C-space blanks, one sign,
 * decimal digits and nothing after; strtoul saturates past 2^64-1, negates modulo 2^64; the
 * low 32 bits are read as signed. Texts up to about 45 characters, with leading blanks, signs,
 * runs of leading zeros and values around 2^32 and 2^64; also within a larger buffer.
 */

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { parseAttrInt } from '../../src/attr/number.js';
import { checkProperty } from '../helpers/fuzz.js';

const ULONG_MAX = (1n << 64n) - 1n;

function model(s: string): number | null {
  const m = /^[ \t\n\v\f\r]*([+-]?)([0-9]+)$/.exec(s);
  if (m === null) return null;
  let v = BigInt(m[2]);
  if (v > ULONG_MAX) v = ULONG_MAX;
  else if (m[1] === '-') v = (ULONG_MAX + 1n - v) & ULONG_MAX;
  return Number(BigInt.asIntN(32, v));
}

const near = [0n, 1n << 31n, 1n << 32n, 10n ** 19n, 1n << 63n, ULONG_MAX, ULONG_MAX + 1n, 10n ** 20n];
const digits = fc.oneof(
  fc.string({ unit: fc.constantFrom(...'0123456789'), minLength: 1, maxLength: 24 }),
  fc.tuple(fc.constantFrom(...near), fc.bigInt({ min: -1000n, max: 1000n })).map(([b, d]) => (b + d < 0n ? 0n : b + d).toString()),
  fc.bigInt({ min: 0n, max: 1n << 80n }).map(String),
);
const text = fc.oneof(
  fc.tuple(
    fc.string({ unit: fc.constantFrom(' ', '\t', '\n', '\v', '\f', '\r'), maxLength: 3 }),
    fc.constantFrom('', '', '+', '-'),
    fc.string({ unit: fc.constant('0'), maxLength: 20 }),
    digits,
    fc.constantFrom('', '', '', ' ', 'x', '\0', '-'),
  ).map((p) => p.join('')),
  fc.string({ unit: fc.constantFrom(...' +-0123456789x\t.'), maxLength: 45 }),
);

test('parseAttrInt agrees with the BigInt model of sscanf("%u%c"), also on a sub-range', (t) => {
  const prop = fc.property(text, fc.string({ unit: fc.constantFrom('1', '9', ' ', '-'), maxLength: 4 }), (s, pad) => {
    const want = model(s);
    const b = Buffer.from(s, 'latin1');
    assert.equal(parseAttrInt(b, 0, b.length), want, JSON.stringify(s));
    const wide = Buffer.from(pad + s + pad, 'latin1');
    assert.equal(parseAttrInt(wide, pad.length, pad.length + b.length), want, 'sub-range');
  });
  checkProperty(t, prop, 3000);
});
