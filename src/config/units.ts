/*
 * NAME
 *   config/units - Postfix parameter value conversions (time, int, bool, string length)
 * DESCRIPTION
 *   strtol() mirrors C strtol(3) in base 10 on a 64-bit long: leading white space, an
 *   optional sign, digits; the end index tells how much was consumed, erange reports a
 *   clamped value. Everything else is built on it, as Postfix builds on strtol.
 *
 *   convTime() is conv_time(): a non-negative decimal that fits a C int, then one unit
 *   letter s m h d w (the default unit when there is none); only the first character
 *   after the number is looked at, so "1hour" is 3600 and "h" is 0.
 *
 *   parseTime(), parseConfInt(), parseBool() and the check*() functions turn a
 *   parameter's (already expanded) value into a number or boolean with Postfix's fatal
 *   diagnostics. atoi() mirrors glibc atoi(3) ((int) strtol) for the -s option.
 *
 *   compatLevelFromString() encodes a compatibility level "major[.minor[.patch]]" as one
 *   comparable number (major << 20 | minor << 10 | patch), or undefined when malformed.
 * LIMITS
 *   Values must fit a C int (-2147483648..2147483647), or a C long for parseConfLong(), like
 *   their Postfix counterparts.
 *   String lengths are counted in UTF-8 bytes, as strlen() would.
 * DIAGNOSTICS
 *   FatalError with the texts of global/mail_conf_{time,int,bool,str}.c:
 *   "parameter <name>: bad time value or unit: <value>", "invalid <name>: <v> (min <m>)",
 *   "invalid <name>: <v> (max <m>)", "bad numerical configuration: <name> = <value>",
 *   "invalid <name> parameter value <v> < <min>", "invalid <name> parameter value <v> > <max>",
 *   "bad boolean configuration: <name> = <value>", "bad string length <n> < <min>: <name> = <value>".
 * SEE ALSO
 *   global/conv_time.c, global/mail_conf_time.c, global/mail_conf_int.c,
 *   global/mail_conf_bool.c, global/mail_conf_str.c, global/compat_level.c
 */

import { FatalError } from '../util/errors.js';

const LONG_MAX = (1n << 63n) - 1n;
const LONG_MIN = -(1n << 63n);
const INT_MAX = 2147483647;
const INT_MIN = -2147483648;

/** isspace() in the C locale; Postfix's ISSPACE() adds an isascii() test, same set. */
export function isCSpace(ch: string | undefined): boolean {
  return ch === ' ' || ch === '\t' || ch === '\n' || ch === '\v' || ch === '\f' || ch === '\r';
}

function isDigit(ch: string | undefined): boolean {
  return ch !== undefined && ch >= '0' && ch <= '9';
}

export interface StrtolResult {
  /** The converted value, clamped to the C long range like strtol(). */
  readonly value: bigint;
  /** Index of the first character not consumed; `start` when no digits were found. */
  readonly end: number;
  /** True when the value was out of range (errno == ERANGE). */
  readonly erange: boolean;
}

/** C strtol(s + start, &end, 10) on an LP64 system. */
export function strtol(s: string, start = 0): StrtolResult {
  let i = start;
  while (isCSpace(s[i])) i++;
  let negative = false;
  if (s[i] === '+' || s[i] === '-') {
    negative = s[i] === '-';
    i++;
  }
  if (!isDigit(s[i])) return { value: 0n, end: start, erange: false };
  const first = i;
  while (isDigit(s[i])) i++;
  let value = BigInt(s.slice(first, i));
  if (negative) value = -value;
  let erange = false;
  if (value > LONG_MAX) {
    value = LONG_MAX;
    erange = true;
  } else if (value < LONG_MIN) {
    value = LONG_MIN;
    erange = true;
  }
  return { value, end: i, erange };
}

/** glibc atoi(): (int) strtol(s, NULL, 10), truncating to 32 bits like the C cast. */
export function atoi(s: string): number {
  return Number(BigInt.asIntN(32, strtol(s).value));
}

const UNIT_SECONDS: Readonly<Record<string, number>> = { s: 1, m: 60, h: 3600, d: 86400, w: 604800 };

/** conv_time(): seconds, or undefined where conv_time() returns 0 (bad value or unit). */
export function convTime(value: string, defUnit: string): number | undefined {
  if (value === '') return undefined;
  const r = strtol(value);
  if (r.erange || r.value > BigInt(INT_MAX) || r.value < BigInt(INT_MIN) || r.value < 0n) {
    return undefined;
  }
  const n = Number(r.value);
  const unit = r.end < value.length ? value[r.end] : defUnit;
  const mult = Object.hasOwn(UNIT_SECONDS, unit) ? UNIT_SECONDS[unit] : undefined;
  if (mult === undefined) return undefined;
  // conv_time() rejects n >= INT_MAX / unit (integer division), not only real overflow.
  if (mult > 1 && n >= Math.trunc(INT_MAX / mult)) return undefined;
  return n * mult;
}

/** get_mail_conf_time() conversion of an expanded value; fatal when conv_time() fails. */
export function parseTime(name: string, value: string, defUnit = 's'): number {
  const t = convTime(value, defUnit);
  if (t === undefined) throw new FatalError(`parameter ${name}: bad time value or unit: ${value}`);
  return t;
}

/** check_mail_conf_time(): a zero min or max means "no limit". */
export function checkTime(name: string, value: number, min: number, max: number): number {
  if (min && value < min) throw new FatalError(`invalid ${name}: ${value} (min ${min})`);
  if (max && value > max) throw new FatalError(`invalid ${name}: ${value} (max ${max})`);
  return value;
}

/** convert_mail_conf_int(): the whole value must be a base-10 C int. */
export function parseConfInt(name: string, value: string): number {
  const r = strtol(value);
  if (value === '' || r.end !== value.length || r.erange
    || r.value > BigInt(INT_MAX) || r.value < BigInt(INT_MIN)) {
    throw new FatalError(`bad numerical configuration: ${name} = ${value}`);
  }
  return Number(r.value);
}

/**
 * convert_mail_conf_long(): the whole value must be a base-10 C long. A JS number holds it
 * exactly only up to 2^53; callers bound it with checkLong()'s max.
 */
export function parseConfLong(name: string, value: string): number {
  const r = strtol(value);
  if (value === '' || r.end !== value.length || r.erange) {
    throw new FatalError(`bad numerical configuration: ${name} = ${value}`);
  }
  return Number(r.value);
}

/** check_mail_conf_long(): as checkInt(), with the same messages. */
export function checkLong(name: string, value: number, min: number, max: number): number {
  return checkInt(name, value, min, max);
}

/** check_mail_conf_int(): a zero min or max means "no limit". */
export function checkInt(name: string, value: number, min: number, max: number): number {
  if (min && value < min) throw new FatalError(`invalid ${name} parameter value ${value} < ${min}`);
  if (max && value > max) throw new FatalError(`invalid ${name} parameter value ${value} > ${max}`);
  return value;
}

/** strcasecmp() folds ASCII letters only; toLowerCase() would also fold other scripts. */
function asciiLower(s: string): string {
  return s.replace(/[A-Z]/g, (c) => String.fromCharCode(c.charCodeAt(0) + 32));
}

/** convert_mail_conf_bool() / convert_mail_conf_nbool(): "yes" or "no", any ASCII case. */
export function parseBool(name: string, value: string): boolean {
  const v = asciiLower(value);
  if (v === 'yes') return true;
  if (v === 'no') return false;
  throw new FatalError(`bad boolean configuration: ${name} = ${value}`);
}

/** check_mail_conf_str(): length limits in bytes; a zero min or max means "no limit". */
export function checkStr(name: string, value: string, min: number, max: number): string {
  const len = Buffer.byteLength(value, 'utf8');
  if (min && len < min) throw new FatalError(`bad string length ${len} < ${min}: ${name} = ${value}`);
  if (max && len > max) throw new FatalError(`bad string length ${len} > ${max}: ${name} = ${value}`);
  return value;
}

/** compat_level_from_string(): the encoded level, or undefined for bad syntax. */
export function compatLevelFromString(str: string): bigint | undefined {
  const limits = [(1n << 43n) - 1n, 0x3ffn, 0x3ffn]; // LONG_MAX >> 20, 10-bit minor and patch
  let res = 0n;
  let start = 0;
  for (let part = 0; part < 3; part++) {
    const r = strtol(str, start);
    const next = str[r.end];
    const endOk = r.end === str.length || (part < 2 && next === '.');
    if (r.end === start || !endOk || r.erange || r.value < 0n || r.value > limits[part]) return undefined;
    res |= r.value << BigInt(20 - 10 * part);
    if (r.end === str.length) return res;
    start = r.end + 1;
  }
  return undefined;
}
