/*
 * attr-number - src/attr/number.ts: attr0 INT values as sscanf("%u%c") on glibc/x86-64 reads
 * them into a C int (spec 1.2, 2.3; scenarios 10, 54): leading blanks and one sign accepted,
 * modulo-2^32 wrap through a 64-bit unsigned long, saturation past 2^64-1, nothing trailing.
 */

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseAttrInt } from '../../src/attr/number.js';

const parse = (s: string): number | null => {
  const b = Buffer.from(s, 'latin1');
  return parseAttrInt(b, 0, b.length);
};

test('plain decimal values', () => {
  const cases: Array<[string, number]> = [
    ['0', 0],
    ['5', 5],
    ['32', 32],
    ['255', 255],
    ['999999999', 999999999], // 9 digits: the fast path
    ['1000000000', 1000000000], // 10 digits: the wide path
    ['2147483647', 2147483647],
  ];
  for (const [s, n] of cases) assert.equal(parse(s), n, s);
});

test('scenario 54: leading blank, plus sign, leading zero', () => {
  assert.equal(parse(' 5'), 5);
  assert.equal(parse('+5'), 5);
  assert.equal(parse('05'), 5);
  assert.equal(parse('\t\n\v\f\r 5'), 5, 'every C isspace() character');
  assert.equal(parse('  +0005'), 5);
  assert.equal(parse('0000000000000000000000000000042'), 42, 'many leading zeros');
});

test('unsigned text reinterpreted as signed 32-bit (spec 2.1 status texts)', () => {
  assert.equal(parse('4294967295'), -1);
  assert.equal(parse('4294967294'), -2);
  assert.equal(parse('2147483648'), -2147483648);
  assert.equal(parse('-1'), -1);
  assert.equal(parse('-5'), -5);
  assert.equal(parse('-0'), 0);
  assert.ok(Object.is(parse('-0'), 0), '-0 reads as +0');
});

test('values of 2^32 and more wrap modulo 2^32 (scenario 54: 4294967297 -> 1)', () => {
  assert.equal(parse('4294967296'), 0);
  assert.equal(parse('4294967297'), 1);
  assert.equal(parse('4294967552'), 256);
  assert.equal(parse('8589934597'), 5);
  assert.equal(parse('18446744073709551615'), -1, '2^64-1');
  assert.equal(parse('-4294967297'), -1);
  assert.equal(parse('-18446744073709551615'), 1, 'strtoul negates modulo 2^64');
});

test('values beyond 2^64-1 saturate to -1, with or without a sign', () => {
  assert.equal(parse('18446744073709551616'), -1);
  assert.equal(parse('99999999999999999999999999'), -1);
  assert.equal(parse('-18446744073709551616'), -1);
  assert.equal(parse('-99999999999999999999999999'), -1);
});

test('scenario 54: trailing characters, hex, empty and sign-only text are malformed', () => {
  const bad = ['', ' ', '5 ', '5\t', '0x5', '5x', 'abc', '+', '-', '+-5', '-+5', '- 5', '1.0', '1e3', '5\n', '\xb5'];
  for (const s of bad) assert.equal(parse(s), null, JSON.stringify(s));
});

test('start/end select a range of a larger buffer', () => {
  const b = Buffer.from('xx123yy4294967297', 'latin1');
  assert.equal(parseAttrInt(b, 2, 5), 123);
  assert.equal(parseAttrInt(b, 2, 6), null, 'the range includes y');
  assert.equal(parseAttrInt(b, 7, b.length), 1);
  assert.equal(parseAttrInt(b, 3, 3), null, 'empty range');
});

/**
 * Run fn while BigInt() refuses text longer than 40 characters: a parser that hands an
 * unbounded digit string to BigInt (quadratic in its length) fails instead of passing slowly.
 */
function withoutLongBigInt<T>(fn: () => T): T {
  const real = globalThis.BigInt;
  const guarded = Object.assign((v: string | number | bigint | boolean): bigint => {
    if (typeof v === 'string' && v.length > 40) throw new Error(`BigInt() on ${v.length} characters`);
    return real(v);
  }, { asIntN: real.asIntN, asUintN: real.asUintN });
  globalThis.BigInt = guarded as BigIntConstructor;
  try {
    return fn();
  } finally {
    globalThis.BigInt = real;
  }
}

test('a million digits: parsed in one pass, saturating or not as the significant digits say', () => {
  const M = 1_000_000;
  const cases: Array<[string, number]> = [
    ['1' + '0'.repeat(M - 1), -1], // saturates
    ['0'.repeat(M) + '1', 1], // leading zeros only
    ['0'.repeat(M), 0],
    ['-' + '0'.repeat(M) + '5', -5],
    ['-' + '0'.repeat(M), 0],
    [' \t+' + '0'.repeat(M) + '4294967297', 1],
    ['0'.repeat(M) + '18446744073709551615', -1],
    ['0'.repeat(M) + '18446744069414584320', 0], // 2^64 - 2^32: 20 digits, low 32 bits 0
    ['-' + '0'.repeat(M) + '18446744073709551615', 1],
    ['0'.repeat(M) + '18446744073709551616', -1],
    ['-' + '9'.repeat(M), -1],
    ['0'.repeat(M) + '1x', null as unknown as number],
  ];
  withoutLongBigInt(() => {
    for (const [s, n] of cases) assert.equal(parse(s), n, `${s.slice(0, 12)}... (${s.length} characters)`);
  });
});

test('20 significant digits are compared with 2^64-1 digit by digit', () => {
  assert.equal(parse('18446744073709551614'), -2);
  assert.equal(parse('18446744073709551615'), -1);
  assert.equal(parse('18446744073709551616'), -1);
  assert.equal(parse('18446744073709551625'), -1);
  assert.equal(parse('18446744083709551615'), -1);
  assert.equal(parse('10000000000000000000'), Number(BigInt.asIntN(32, 10n ** 19n)));
  assert.equal(parse('-10000000000000000000'), Number(BigInt.asIntN(32, (1n << 64n) - 10n ** 19n)));
  assert.equal(parse('99999999999999999999'), -1);
  assert.equal(parse('00000000000000000000000000000000000000004294967298'), 2);
});
