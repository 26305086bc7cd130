/*
 * NAME
 *   attr/number - parse an attr0 INT value the way sscanf("%u%c") does on glibc/x86-64
 * SYNOPSIS
 *   parseAttrInt(src: Buffer, start: number, end: number): number | null
 * DESCRIPTION
 *   Mirrors util/attr_scan0.c attr_scan0_number() (spec 1.2): leading isspace() blanks and one
 *   optional sign are accepted; at least one decimal digit; no trailing character at all. glibc
 *   converts through a 64-bit unsigned long: a value past 2^64-1 saturates to 2^64-1, a minus
 *   sign negates modulo 2^64, and the result is truncated to 32 bits and read as a signed C int
 *   (" 5", "+5", "05" -> 5; "4294967297" -> 1; "4294967295" and "-1" -> -1).
 * DIAGNOSTICS
 *   Returns null for malformed text ("5 ", "0x5", "", "+"); the caller logs
 *   "malformed numerical data".
 */

const ULONG_MAX = (1n << 64n) - 1n;

function isCSpace(c: number): boolean {
  return c === 0x20 || (c >= 0x09 && c <= 0x0d);
}

export function parseAttrInt(src: Buffer, start: number, end: number): number | null {
  let i = start;
  while (i < end && isCSpace(src[i])) i++;
  let negative = false;
  if (i < end && (src[i] === 0x2b || src[i] === 0x2d)) {
    negative = src[i] === 0x2d;
    i++;
  }
  const digitsStart = i;
  while (i < end && src[i] >= 0x30 && src[i] <= 0x39) i++;
  if (i === digitsStart || i !== end) return null;
  // Fast path: up to 9 digits cannot overflow anything.
  if (i - digitsStart <= 9) {
    let v = 0;
    for (let k = digitsStart; k < end; k++) v = v * 10 + (src[k] - 0x30);
    return negative ? -v | 0 : v | 0;
  }
  let v = BigInt(src.toString('latin1', digitsStart, end));
  if (v > ULONG_MAX) v = ULONG_MAX; // strtoul saturates (ERANGE), also with a minus sign
  else if (negative) v = (ULONG_MAX + 1n - v) & ULONG_MAX;
  return Number(BigInt.asIntN(32, v));
}
