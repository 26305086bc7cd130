/*
 * NAME
 *   config/expand - Postfix $name macro expansion of parameter values
 * DESCRIPTION
 *   macParse() splits a value into literal text and macro references like mac_parse():
 *   "$$" is a literal "$", "$name" takes [A-Za-z0-9_]*, "${...}" and "$(...)" take the
 *   text up to the balancing brace or parenthesis (only the same kind nests).
 *
 *   macExpand() is mac_expand() with mac_expand_callback(): "$name" (undefined = empty),
 *   "${name?text}", "${name:text}", "${name?{a}:{b}}", relational expressions
 *   "${{x} op {y}}" with == != < <= > >= (numeric when both sides are all digits, else
 *   byte-wise) optionally followed by ?/: results, and the compatibility-level operators
 *   "<level" etc. that mail_params_init() registers (compat_level_relop_register()).
 *   With `recursive` (the default, as mail_conf_eval()), looked-up values are expanded too.
 *
 *   dictEval() is dict_eval(): expand recursively and make any syntax error fatal.
 * LIMITS
 *   Like Postfix, more than 100 nested macro calls is an error. Postfix restarts that count
 *   in each relational operand and then overflows its stack on self-reference through one
 *   (it crashes); here a second, global count of 1000 makes that a nesting error too.
 * DIAGNOSTICS
 *   Syntax problems are reported through `warn` with mac_parse.c/mac_expand.c wording
 *   ("truncated macro reference", "empty macro name", "unreasonable macro call nesting",
 *   ...) and set MAC_PARSE_ERROR; dictEval() then throws
 *   FatalError("dictionary mail_dict: macro processing error"). An all-digit relational
 *   operand beyond the C long range throws FatalError("mac_exp_eval: bad conversion: <s>").
 * SEE ALSO
 *   util/mac_parse.c, util/mac_expand.c, util/dict.c (dict_eval), global/compat_level.c
 */

import { FatalError } from '../util/errors.js';
import { compatLevelFromString, strtol } from './units.js';

export const MAC_PARSE_ERROR = 1;
export const MAC_PARSE_UNDEF = 2;

/** Look up a parameter's raw value; `mode` tells ${name?..} tests ('test') from uses. */
export type MacroLookup = (name: string, mode: 'test' | 'use') => string | undefined;

export interface MacExpandOptions {
  /** Expand macros in looked-up values too (MAC_EXP_FLAG_RECURSE). Default true. */
  readonly recursive?: boolean;
  /** Receives the warnings Postfix logs before reporting an error. */
  readonly warn?: (msg: string) => void;
}

/** Character classes of mac_expand.c (CHARS_SPACE) and sys_defs.h (ISALNUM is ASCII-only). */
const WHITESPACE = ' \t\r\n';
const OP_CHARS = '<>!=?+-*/~&|%';
const isAlnum = (ch: string | undefined): boolean => ch !== undefined && /^[A-Za-z0-9]$/.test(ch);
const isNameChar = (ch: string | undefined): boolean => ch === '_' || isAlnum(ch);

function span(s: string, i: number, set: string): number {
  let n = 0;
  while (i + n < s.length && set.includes(s[i + n])) n++;
  return n;
}

/** The MAC_EXP_OP_STR_ANY text, with its stray quotes, verbatim from mac_expand.c. */
const OP_STR_ANY = '"==" or "!="" or "<"" or "<="" or ">="" or ">"';
/** The six operators of mac_exp_op_table, as tests on the sign of left - right. */
const RELOPS: Readonly<Record<string, (sign: number) => boolean>> = {
  '==': (d) => d === 0, '!=': (d) => d !== 0, '<': (d) => d < 0,
  '<=': (d) => d <= 0, '>=': (d) => d >= 0, '>': (d) => d > 0,
};
const sign = (d: bigint): number => (d < 0n ? -1 : d > 0n ? 1 : 0);
const allDigits = (s: string): boolean => /^[0-9]+$/.test(s);

function atolOrDie(s: string): bigint {
  const r = strtol(s);
  if (r.erange) throw new FatalError(`mac_exp_eval: bad conversion: ${s}`);
  return r.value;
}

/** mac_exp_eval(), or compat_relop_eval() for the "level" suffix; undefined = error. */
function evalRelop(left: string, op: string, suffix: string, rite: string,
  warn: (m: string) => void): boolean | undefined {
  const test = RELOPS[op];
  if (suffix === 'level') {
    const l = compatLevelFromString(left);
    const r = l === undefined ? undefined : compatLevelFromString(rite);
    if (l === undefined || r === undefined) {
      warn(`malformed compatibility level syntax: "${l === undefined ? left : rite}"`);
      return undefined;
    }
    return test(sign(l - r));
  }
  if (allDigits(left) && allDigits(rite)) return test(sign(atolOrDie(left) - atolOrDie(rite)));
  // strcmp() compares bytes; UTF-16 code unit order differs from UTF-8 byte order.
  return test(Buffer.compare(Buffer.from(left, 'utf8'), Buffer.from(rite, 'utf8')));
}

type MacParseAction = (type: 'literal' | 'expr', text: string) => number;

/** mac_parse(): feed literal text and macro references to `action`; returns status bits. */
export function macParse(value: string, action: MacParseAction, warn: (m: string) => void): number {
  let status = 0;
  let buf = '';
  let vp = 0;
  while (vp < value.length) {
    if (value[vp] !== '$') {
      buf += value[vp++];
    } else if (value[vp + 1] === '$') {
      buf += '$';
      vp += 2;
    } else {
      if (buf.length > 0) status |= action('literal', buf);
      buf = '';
      vp += 1;
      const open = value[vp];
      if (open === '{' || open === '(') {
        const close = open === '{' ? '}' : ')';
        let level = 1;
        let ep = ++vp;
        for (; level > 0; ep++) {
          if (ep >= value.length) break;
          if (value[ep] === open) level++;
          if (value[ep] === close) level--;
        }
        if (level > 0) {
          warn(`truncated macro reference: "${value}"`);
          status |= MAC_PARSE_ERROR;
          break;
        }
        buf = value.slice(vp, ep - 1);
        vp = ep;
      } else {
        let ep = vp;
        while (isNameChar(value[ep])) ep++;
        buf = value.slice(vp, ep);
        vp = ep;
      }
      if (buf.length === 0) {
        status |= MAC_PARSE_ERROR;
        warn(`empty macro name: "${value}"`);
        break;
      }
      status |= action('expr', buf);
      buf = '';
    }
  }
  if (buf.length > 0 && (status & MAC_PARSE_ERROR) === 0) status |= action('literal', buf);
  return status;
}

interface Ctx {
  result: string;
  status: number;
  level: number;
  readonly recursive: boolean;
  readonly lookup: MacroLookup;
  readonly warn: (m: string) => void;
  /** Callback depth across relational operands too (see LIMITS). */
  readonly shared: { depth: number };
}

const TOTAL_DEPTH_LIMIT = 1000;

function parseError(mc: Ctx, msg: string): number {
  mc.warn(msg);
  return (mc.status |= MAC_PARSE_ERROR);
}

/** MAC_EXP_FIND_LEFT_CURLY: index of a '{' after optional white space, or -1. */
function findLeftCurly(s: string, cp: number): number {
  const i = cp + span(s, cp, WHITESPACE);
  return s[i] === '{' ? i : -1;
}

/** mac_exp_extract_curly_payload(): `at` is the '{'; returns payload and the index after
 * the balancing '}' and any white space, or undefined after reporting the error. */
function extractCurly(mc: Ctx, s: string, at: number): { payload: string; next: number } | undefined {
  let level = 1;
  let cp = at + 1;
  for (; ; cp++) {
    if (cp >= s.length) {
      parseError(mc, `unbalanced {} in attribute expression: "${s.slice(at)}"`);
      return undefined;
    }
    if (s[cp] === '{') level++;
    else if (s[cp] === '}' && --level <= 0) break;
  }
  const next = cp + 1;
  return { payload: s.slice(at + 1, cp), next: next + span(s, next, WHITESPACE) };
}

/** mac_exp_parse_relational(): `at` is the left '{'; returns the fake lookup result. */
function parseRelational(mc: Ctx, s: string, at: number): { lookup: string; next: number } | undefined {
  const left = extractCurly(mc, s, at);
  if (left === undefined) return undefined;
  let cp = left.next;
  const opLen = span(s, cp, OP_CHARS);
  const op = s.slice(cp, cp + opLen);
  if (!Object.hasOwn(RELOPS, op)) {
    parseError(mc, `${OP_STR_ANY} expected at: "...${left.payload}}>>>${s.slice(cp, cp + 20)}"`);
    return undefined;
  }
  cp += opLen;
  let suffix = '';
  if (isAlnum(s[cp])) {
    // Only "level" is registered (compat_level_relop_register), for all six operators.
    let n = 1;
    while (isAlnum(s[cp + n])) n++;
    suffix = s.slice(cp, cp + n);
    if (suffix !== 'level') {
      parseError(mc, `bad operator suffix at: "...${op}>>>${suffix}"`);
      return undefined;
    }
    cp += n;
  }
  const ra = findLeftCurly(s, cp);
  if (ra < 0) {
    parseError(mc, `"{expression}" expected at: "...{${left.payload}} ${op}>>>${s.slice(cp, cp + 20)}"`);
    return undefined;
  }
  const rite = extractCurly(mc, s, ra);
  if (rite === undefined) return undefined;
  // Operands are expanded by fresh mac_expand() calls, whose nesting count starts at 0.
  const l = expandInner(left.payload, mc);
  const r = expandInner(rite.payload, mc);
  mc.status |= l.status | r.status;
  const res = evalRelop(l.result, op, suffix, r.result, mc.warn);
  if (res === undefined) mc.status |= MAC_PARSE_ERROR;
  if (mc.status & MAC_PARSE_ERROR) return undefined;
  return { lookup: res ? 'true' : '', next: rite.next };
}

/** The operand after ? or :: a {payload}, or else all the remaining text (2.11 syntax). */
function resultOperand(mc: Ctx, s: string, cp: number): { text: string; next: number } | undefined {
  const c = findLeftCurly(s, cp);
  if (c < 0) return { text: s.slice(cp), next: s.length };
  const p = extractCurly(mc, s, c);
  return p && { text: p.payload, next: p.next };
}

/** mac_expand_callback(). */
function callback(mc: Ctx, type: 'literal' | 'expr', s: string): number {
  if (mc.level++ > 100 || ++mc.shared.depth > TOTAL_DEPTH_LIMIT) {
    parseError(mc, `unreasonable macro call nesting: "${s}"`);
  }
  if (mc.status & MAC_PARSE_ERROR) return mc.status;
  const sub = (text: string): void => {
    mc.status |= macParse(text, (t, x) => callback(mc, t, x), mc.warn);
  };
  if (type === 'expr') {
    let lookup: string | undefined;
    let ch: string;
    let cp = 0;
    const curly = findLeftCurly(s, 0);
    if (curly >= 0) {
      const rel = parseRelational(mc, s, curly);
      if (rel === undefined) return mc.status;
      lookup = rel.lookup;
      cp = rel.next;
      ch = s[cp] ?? '';
      if (ch !== '' && ch !== '?' && ch !== ':') {
        return parseError(mc, `"?" or ":" expected at: "...}>>>${s.slice(cp, cp + 20)}"`);
      }
      if (ch !== '') cp++;
    } else {
      const start = (cp = span(s, 0, WHITESPACE));
      for (; ; cp++) {
        ch = s[cp + span(s, cp, WHITESPACE)] ?? '';
        if (ch === '' || ch === '?' || ch === ':') break;
        if (!isNameChar(s[cp])) {
          return parseError(mc, `attribute name syntax error at: "...${s.slice(0, cp)}>>>${s.slice(cp, cp + 20)}"`);
        }
      }
      lookup = mc.lookup(s.slice(start, cp), ch === '' ? 'use' : 'test');
      if (ch !== '') cp += span(s, cp, WHITESPACE) + 1;
    }
    const isSet = lookup !== undefined && lookup !== '';
    if (ch === '?') {
      const t = resultOperand(mc, s, cp);
      if (t === undefined) return mc.status;
      if (isSet) sub(t.text);
      cp = t.next;
      if (cp < s.length) {
        if (s[cp] !== ':') return parseError(mc, `":" expected at: "...${t.text}}>>>${s.slice(cp, cp + 20)}"`);
        cp += 1;
        ch = ':'; // mac_expand_callback falls through to the ':' case here
      }
    }
    if (ch === ':') {
      const f = resultOperand(mc, s, cp);
      if (f === undefined) return mc.status;
      if (!isSet) sub(f.text);
      if (f.next < s.length) return parseError(mc, `unexpected input at: "...${f.text}}>>>${s.slice(f.next, f.next + 20)}"`);
    } else if (ch === '') {
      if (lookup === undefined) mc.status |= MAC_PARSE_UNDEF;
      else if (lookup === '') { /* nothing to add */ }
      else if (mc.recursive) sub(lookup);
      else mc.result += lookup;
    }
  } else {
    mc.result += s;
  }
  mc.level--;
  mc.shared.depth--;
  return mc.status;
}

function expandInner(pattern: string, parent: Ctx): { result: string; status: number } {
  const mc: Ctx = { ...parent, result: '', status: 0, level: 0 };
  const status = macParse(pattern, (t, x) => callback(mc, t, x), mc.warn);
  return { result: mc.result, status };
}

/** mac_expand() without filters: the expansion and MAC_PARSE_ERROR/MAC_PARSE_UNDEF bits. */
export function macExpand(pattern: string, lookup: MacroLookup,
  opts: MacExpandOptions = {}): { result: string; status: number } {
  const root: Ctx = {
    result: '', status: 0, level: 0, recursive: opts.recursive ?? true, lookup,
    warn: opts.warn ?? ((): void => undefined), shared: { depth: 0 },
  };
  return expandInner(pattern, root);
}

/** dict_eval() on the "mail_dict" configuration dictionary: expansion or FatalError. */
export function dictEval(value: string, lookup: MacroLookup, opts: MacExpandOptions = {},
  dictName = 'mail_dict'): string {
  const { result, status } = macExpand(value, lookup, opts);
  if (status & MAC_PARSE_ERROR) throw new FatalError(`dictionary ${dictName}: macro processing error`);
  return result;
}
