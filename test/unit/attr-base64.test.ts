/*
 * attr-base64 - src/attr/base64.ts against spec 1.5 (util/base64_code.c) and scenarios 4, 55.
 * Encoder: RFC 4648 vectors, `+/` and `=` padding. Decoder: Postfix's validator, quartet by
 * quartet: length a multiple of 4, `=` invalid in positions 1-2, `=` in position 3 or 4 ends
 * decoding (`QQ=x`, `QQ==AAAA`), unchecked low bits (`QR==`), no whitespace / base64url.
 */

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { base64Decode, base64Encode } from '../../src/attr/base64.js';
import { prng } from '../helpers/splits.js';

const dec = (s: string): Buffer | null => base64Decode(Buffer.from(s, 'latin1'));
const hex = (b: Buffer | null): string | null => (b === null ? null : b.toString('hex'));

test('encode: RFC 4648 section 10 vectors', () => {
  const vectors: Array<[string, string]> = [
    ['', ''],
    ['f', 'Zg=='],
    ['fo', 'Zm8='],
    ['foo', 'Zm9v'],
    ['foob', 'Zm9vYg=='],
    ['fooba', 'Zm9vYmE='],
    ['foobar', 'Zm9vYmFy'],
  ];
  for (const [plain, enc] of vectors) assert.equal(base64Encode(Buffer.from(plain, 'latin1')), enc, plain);
});

test('encode: uses + and / (not base64url) and honours the view of a Uint8Array', () => {
  assert.equal(base64Encode(Buffer.from([0xfb, 0xef, 0xff])), '++//');
  assert.equal(base64Encode(Buffer.from([0x00, 0x00, 0x00, 0xff])), 'AAAA/w==');
  const backing = new Uint8Array([0x41, 0x42, 0x43, 0x44, 0x45]);
  assert.equal(base64Encode(backing.subarray(1, 3)), 'QkM='); // "BC", not the whole buffer
});

test('decode: RFC 4648 vectors and empty input', () => {
  assert.equal(hex(dec('')), '');
  assert.equal(dec('Zg==')?.toString('latin1'), 'f');
  assert.equal(dec('Zm8=')?.toString('latin1'), 'fo');
  assert.equal(dec('Zm9v')?.toString('latin1'), 'foo');
  assert.equal(dec('Zm9vYmFy')?.toString('latin1'), 'foobar');
  assert.equal(hex(dec('++//')), 'fbefff');
});

test('decode: spec 1.5 / scenario 55 acceptance quirks', () => {
  assert.equal(dec('QQ==')?.toString('latin1'), 'A');
  assert.equal(dec('QQ=x')?.toString('latin1'), 'A', 'position 4 is never examined after = in position 3');
  assert.equal(dec('QQ=A')?.toString('latin1'), 'A');
  assert.equal(dec('QR==')?.toString('latin1'), 'A', 'unused low bits are not checked');
  assert.equal(dec('QUI=')?.toString('latin1'), 'AB');
  assert.equal(dec('QUJ=')?.toString('latin1'), 'AB', 'unused low bits before one = are not checked');
  assert.equal(dec('QQ==AAAA')?.toString('latin1'), 'A', 'anything after the first = is ignored');
  assert.equal(dec('QQ==!!!!')?.toString('latin1'), 'A', 'even invalid characters after =');
  assert.equal(dec('QUJDQQ==')?.toString('latin1'), 'ABCA');
});

test('decode: spec 1.5 / scenario 55 rejections', () => {
  const bad = [
    'QQ=', // length not a multiple of 4
    'Q',
    'QQ',
    'QUJDQ',
    '====', // = in position 1
    'Q===', // = in position 2
    '=QQQ',
    'QUJD!!!!', // invalid after a good quartet (Postfix leaves "ABC" in its target; we return null)
    'QUJD====',
    'QQ-_', // base64url
    '-_-_',
    'Q Q=',
    'QQ==\n',
    ' QQ=',
    'QQ\n=',
    'QUJD\r\nQQ==',
    'QUJDQQ=',
    '\u00c1QQ=',
  ];
  for (const s of bad) assert.equal(dec(s), null, JSON.stringify(s));
  // ...whereas a blank in position 4 after '=' is never looked at.
  assert.equal(dec('QQ= ')?.toString('latin1'), 'A');
});

test('decode: every single non-alphabet byte is rejected in each position of a quartet', () => {
  const alphabet = new Set('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/');
  for (let c = 0; c < 256; c++) {
    const ch = String.fromCharCode(c);
    if (alphabet.has(ch)) continue;
    for (let pos = 0; pos < 4; pos++) {
      const q = ['Q', 'U', 'J', 'D'];
      q[pos] = ch;
      const s = q.join('');
      const got = dec(s);
      // '=' in positions 3 and 4 is padding; everything else outside the alphabet fails.
      if (ch === '=' && pos >= 2) assert.notEqual(got, null, JSON.stringify(s));
      else assert.equal(got, null, JSON.stringify(s));
    }
  }
});

test('decode: start/end select a range of the source buffer', () => {
  const src = Buffer.from('xxQUJDyy', 'latin1');
  assert.equal(base64Decode(src, 2, 6)?.toString('latin1'), 'ABC');
  assert.equal(base64Decode(src, 2, 5), null, 'range length 3');
  assert.equal(hex(base64Decode(src, 3, 3)), '', 'empty range');
});

test('round trip: 0..300 bytes of seeded random data, and all byte values', () => {
  const rnd = prng(55);
  for (let n = 0; n <= 300; n++) {
    const data = Buffer.alloc(n);
    for (let i = 0; i < n; i++) data[i] = Math.floor(rnd() * 256);
    const enc = base64Encode(data);
    assert.equal(enc.length, Math.ceil(n / 3) * 4, `length for ${n}`);
    assert.match(enc, /^[A-Za-z0-9+/]*={0,2}$/);
    assert.equal(hex(dec(enc)), data.toString('hex'), `round trip ${n}`);
  }
  const all = Buffer.alloc(256);
  for (let i = 0; i < 256; i++) all[i] = i;
  assert.equal(hex(dec(base64Encode(all))), all.toString('hex'));
});

/** Decode while recording every Buffer the decoder allocates (its output buffer). */
function decodeCapturing(s: string): { result: Buffer | null; allocated: Buffer[] } {
  const allocated: Buffer[] = [];
  const orig = { unsafe: Buffer.allocUnsafe, slow: Buffer.allocUnsafeSlow };
  Buffer.allocUnsafe = (n) => {
    const b = orig.unsafe(n);
    allocated.push(b);
    return b;
  };
  Buffer.allocUnsafeSlow = (n) => {
    const b = orig.slow(n);
    allocated.push(b);
    return b;
  };
  try {
    return { result: dec(s), allocated };
  } finally {
    Buffer.allocUnsafe = orig.unsafe;
    Buffer.allocUnsafeSlow = orig.slow;
  }
}

test('decode: a failure part way zeroes the bytes decoded before it (a partial session)', () => {
  const good = Buffer.from('partial session bytes!', 'latin1').subarray(0, 21); // 21 bytes: 28 characters, no padding
  for (const bad of ['!AAA', 'A!AA', 'AA!A', 'AAA!', 'AA!=', 'A=AA']) {
    const { result, allocated } = decodeCapturing(good.toString('base64') + bad);
    assert.equal(result, null, bad);
    assert.ok(allocated.length > 0, 'the decoder allocated its output');
    for (const b of allocated) assert.ok(b.subarray(0, good.length).every((x) => x === 0), `decoded bytes zeroed (${bad})`);
  }
});
