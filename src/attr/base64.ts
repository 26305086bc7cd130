/*
 * NAME
 *   attr/base64 - Postfix's base64 encoder and its strict validating decoder
 * SYNOPSIS
 *   base64Encode(data: Uint8Array): string
 *   base64Length(n: number): number         encoded length of n bytes
 *   base64EncodeInto(data, out, at): number  encode into out[at..), returns the end offset
 *   base64Decode(src: Buffer, start?: number, end?: number): Buffer | null
 * DESCRIPTION
 *   Encoding is RFC 4648 with `+/` and `=` padding, no line breaks (Node's encoder matches).
 *   base64EncodeInto() writes the same characters straight into a caller's buffer: a reply
 *   carrying a session or seed is then built without a JS string of it (a string cannot be
 *   wiped and lives until the GC takes it) and without a second copy of the bytes.
 *   Decoding follows util/base64_code.c base64_decode_opt() exactly (spec 1.5): the length must
 *   be a multiple of 4; positions 1 and 2 of a quartet must be alphabet characters; a `=` in
 *   position 3 or 4 ends decoding at once and everything after it is ignored (`QQ=x`, `QQ==AAAA`
 *   decode to "A"); the unused low bits before padding are not checked (`QR==` is "A"); no
 *   whitespace and no base64url. Node's Buffer.from(s, 'base64') is too lenient for this.
 * LIMITS
 *   base64EncodeInto() needs base64Length(data.length) bytes of room at `at` (RangeError
 *   otherwise, before anything is written).
 * SECURITY
 *   Decoded data may be a TLS session: when decoding fails part way, the bytes decoded so far
 *   are zeroed before null is returned. The input is left alone (the caller owns it).
 * DIAGNOSTICS
 *   base64Decode() returns null for malformed input; the caller logs "malformed base64 data".
 * SEE ALSO
 *   util/base64_code.c
 */

const INVALID = 0xff;
const PAD = 0x3d; // '='

/** Alphabet character -> 6-bit value; INVALID elsewhere (including '='). */
const DECODE = (() => {
  const t = new Uint8Array(256).fill(INVALID);
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
  for (let i = 0; i < alphabet.length; i++) t[alphabet.charCodeAt(i)] = i;
  return t;
})();

const ALPHABET = (() => {
  const t = new Uint8Array(64);
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
  for (let i = 0; i < 64; i++) t[i] = alphabet.charCodeAt(i);
  return t;
})();

/** Characters of the encoding of n bytes (padded). */
export function base64Length(n: number): number {
  return Math.ceil(n / 3) * 4;
}

/** Encode data into out from offset at (RFC 4648, padded); returns the offset after the last character. */
export function base64EncodeInto(data: Uint8Array, out: Uint8Array, at: number): number {
  const n = data.length;
  if (at < 0 || at + base64Length(n) > out.length) throw new RangeError(`base64: no room for ${n} bytes at ${at}`);
  const whole = n - (n % 3);
  let o = at;
  for (let i = 0; i < whole; i += 3) {
    const v = (data[i] << 16) | (data[i + 1] << 8) | data[i + 2];
    out[o] = ALPHABET[v >>> 18];
    out[o + 1] = ALPHABET[(v >>> 12) & 0x3f];
    out[o + 2] = ALPHABET[(v >>> 6) & 0x3f];
    out[o + 3] = ALPHABET[v & 0x3f];
    o += 4;
  }
  if (n - whole === 1) {
    const v = data[whole];
    out[o] = ALPHABET[v >>> 2];
    out[o + 1] = ALPHABET[(v & 0x03) << 4];
    out[o + 2] = PAD;
    out[o + 3] = PAD;
    o += 4;
  } else if (n - whole === 2) {
    const v = (data[whole] << 8) | data[whole + 1];
    out[o] = ALPHABET[v >>> 10];
    out[o + 1] = ALPHABET[(v >>> 4) & 0x3f];
    out[o + 2] = ALPHABET[(v & 0x0f) << 2];
    out[o + 3] = PAD;
    o += 4;
  }
  return o;
}

export function base64Encode(data: Uint8Array): string {
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('base64');
}

/** Decode src[start, end) with Postfix's rules; null if malformed. */
export function base64Decode(src: Buffer, start = 0, end = src.length): Buffer | null {
  const len = end - start;
  if (len % 4 !== 0) return null;
  const out = Buffer.allocUnsafe((len / 4) * 3);
  let o = 0;
  for (let i = start; i < end; i += 4) {
    const a = DECODE[src[i]];
    const b = DECODE[src[i + 1]];
    if (a === INVALID || b === INVALID) return malformed(out, o);
    out[o++] = (a << 2) | (b >> 4);
    const c3 = src[i + 2];
    if (c3 === PAD) return out.subarray(0, o);
    const c = DECODE[c3];
    if (c === INVALID) return malformed(out, o);
    out[o++] = ((b & 0x0f) << 4) | (c >> 2);
    const c4 = src[i + 3];
    if (c4 === PAD) return out.subarray(0, o);
    const d = DECODE[c4];
    if (d === INVALID) return malformed(out, o);
    out[o++] = ((c & 0x03) << 6) | d;
  }
  return out.subarray(0, o);
}

/* malformed - zero what was decoded before the bad character; the result is null */
function malformed(out: Buffer, decoded: number): null {
  out.fill(0, 0, decoded);
  return null;
}
