/*
 * NAME
 *   attr/base64 - Postfix's base64 encoder and its strict validating decoder
 * SYNOPSIS
 *   base64Encode(data: Uint8Array): string
 *   base64Decode(src: Buffer, start?: number, end?: number): Buffer | null
 * DESCRIPTION
 *   Encoding is RFC 4648 with `+/` and `=` padding, no line breaks (Node's encoder matches).
 *   Decoding follows util/base64_code.c base64_decode_opt() exactly (spec 1.5): the length must
 *   be a multiple of 4; positions 1 and 2 of a quartet must be alphabet characters; a `=` in
 *   position 3 or 4 ends decoding at once and everything after it is ignored (`QQ=x`, `QQ==AAAA`
 *   decode to "A"); the unused low bits before padding are not checked (`QR==` is "A"); no
 *   whitespace and no base64url. Node's Buffer.from(s, 'base64') is too lenient for this.
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
