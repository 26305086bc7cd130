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
 * LIMITS
 *   Linear in the length of the text and free of BigInt: leading zeros are skipped, and a text
 *   of more than 20 significant digits saturates without further arithmetic (2^64-1 has 20).
 * DIAGNOSTICS
 *   Returns null for malformed text ("5 ", "0x5", "", "+"); the caller logs
 *   "malformed numerical data".
 */

/** 2^64-1, the strtoul() saturation value, as decimal digits. */
const ULONG_MAX_DIGITS = Buffer.from('18446744073709551615', 'latin1');
const TWO_32 = 4294967296;

function isCSpace(c: number): boolean {
  return c === 0x20 || (c >= 0x09 && c <= 0x0d);
}

/* exceedsUlong - whether the 20 digits src[from, from + 20) are above 2^64-1 */
function exceedsUlong(src: Buffer, from: number): boolean {
  for (let k = 0; k < ULONG_MAX_DIGITS.length; k++) {
    const d = src[from + k];
    if (d !== ULONG_MAX_DIGITS[k]) return d > ULONG_MAX_DIGITS[k];
  }
  return false;
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
  let first = digitsStart;
  while (first < end - 1 && src[first] === 0x30) first++;
  const significant = end - first;
  // strtoul saturates (ERANGE) past 2^64-1, also with a minus sign; its low 32 bits read -1.
  if (significant > 20 || (significant === 20 && exceedsUlong(src, first))) return -1;
  // Only the low 32 bits survive the final cast, and negation modulo 2^64 keeps them
  // consistent, so the arithmetic runs modulo 2^32 (each step stays below 2^36: exact).
  let v = 0;
  for (let k = first; k < end; k++) v = (v * 10 + (src[k] - 0x30)) % TWO_32;
  if (negative) v = (TWO_32 - v) % TWO_32;
  return v | 0;
}
