// Tests for config/expand.ts: mac_parse()/mac_expand()/dict_eval() behaviour.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { writeCold } from '../helpers/cold.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MAC_PARSE_ERROR, MAC_PARSE_UNDEF, dictEval, macExpand } from '../../src/config/expand.js';
import { compatLevelFromString } from '../../src/config/units.js';
import { parseMainCf } from '../../src/config/maincf.js';
import { FatalError } from '../../src/util/errors.js';

const POSTCONF = '/usr/sbin/postconf';
const HAVE_POSTCONF = existsSync(POSTCONF);
const tmp = mkdtempSync(join(tmpdir(), 'tlsmgr-expand-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const DEFS = 'foo = bar\nempty =\nnum = 10\nlvl = 3.6\nnested = $foo-$num\nsp = a b\ndollar = $$foo\n';
const table = parseMainCf(DEFS, 'defs');
const lookup = (n: string): string | undefined => table.get(n);

/** Expansion, or "ERR <warnings>" after the dict_eval() fatal. */
function ev(value: string): string {
  const warnings: string[] = [];
  try {
    return dictEval(value, lookup, { warn: (m) => warnings.push(m) });
  } catch (e) {
    assert.ok(e instanceof FatalError);
    assert.equal(e.message, 'dictionary mail_dict: macro processing error');
    return `ERR ${warnings.join(' | ')}`;
  }
}

test('scenario 45: $name, ${name}, $(name), ${name?x}, ${name:x}', () => {
  assert.equal(ev('$foo'), 'bar');
  assert.equal(ev('${foo}'), 'bar');
  assert.equal(ev('$(foo)'), 'bar');
  assert.equal(ev('<$foo/${foo}.$(foo)>'), '<bar/bar.bar>');
  assert.equal(ev('${foo?yes}'), 'yes');
  assert.equal(ev('${empty?yes}'), '');
  assert.equal(ev('${undefined_x?yes}'), '');
  assert.equal(ev('${foo:no}'), '');
  assert.equal(ev('${empty:no}'), 'no');
  assert.equal(ev('${undefined_x:no}'), 'no');
});

test('$$, undefined names, name characters, recursion', () => {
  assert.equal(ev('$$foo'), '$foo');
  assert.equal(ev('a$$'), 'a$');
  assert.equal(ev('x$undefined_x.y'), 'x.y');
  assert.equal(ev('a$foo_b'), 'a'); // "_" belongs to the name
  assert.equal(ev('$nested/${nested?$nested}'), 'bar-10/bar-10');
  assert.equal(ev('$dollar'), '$foo'); // a literal from a looked-up value is not re-expanded
  assert.equal(ev('${ foo }'), 'bar');
  assert.equal(ev('${foo?foo:bar}'), 'foo:bar'); // Postfix 2.11 compatibility: plain text
  assert.equal(ev('${foo?$(foo)$(foo)}'), 'barbar');
  assert.equal(ev('${sp}'), 'a b');
});

test('ternary ${name?{a}:{b}} and white space around operands', () => {
  assert.equal(ev('${foo?{T}:{F}}'), 'T');
  assert.equal(ev('${empty?{T}:{F}}'), 'F');
  assert.equal(ev('${undefined_x ? {T} : {F}}'), 'F');
  assert.equal(ev('${foo? {x} }'), 'x');
  assert.equal(ev('${empty?{x}:y}'), 'y');
  assert.equal(ev('${foo:{a}}'), '');
  assert.equal(ev('${foo?{ {nested} }}'), ' {nested} ');
});

test('relational operators: numeric when both sides are digits, else byte-wise', () => {
  const cases: [string, string][] = [
    ['${{$foo} == {bar} ? {y} : {n}}', 'y'], ['${{$foo} != {bar} ? {y} : {n}}', 'n'],
    ['${{10} < {9} ? {y} : {n}}', 'n'], ['${{abc} < {b} ? {y} : {n}}', 'y'],
    ['${{$num} <= {10} ? {y} : {n}}', 'y'], ['${{$num} > {9} ? {y} : {n}}', 'y'],
    ['${{$num} >= {11} ? {y} : {n}}', 'n'], ['${{010} == {10} ? {y} : {n}}', 'y'],
    ['${{$foo}=={bar}}', 'true'], ['${{$foo}!={bar}}', ''], ['${{}=={}}', 'true'],
    ['${{a}=={b}?{x}}trail', 'trail'], ['${{1}=={1}:{x}}', ''], ['${{1}=={2}:{x}}', 'x'],
  ];
  for (const [e, want] of cases) assert.equal(ev(e), want, e);
});

test('compatibility-level operators', () => {
  const cases: [string, string][] = [
    ['${{3.6} <level {3.10} ? {lt} : {ge}}', 'lt'], ['${{3.10} <level {3.6} ? {lt} : {ge}}', 'ge'],
    ['${{$lvl} >=level {3.6} ? {y} : {n}}', 'y'], ['${{$lvl} >level {3.6} ? {y} : {n}}', 'n'],
    ['${{3.6.1} >level {3.6} ? {y} : {n}}', 'y'], ['${{2} <=level {3} ? {y} : {n}}', 'y'],
    ['${{0} <level {1} ? {no} : {yes}}', 'no'], ['${{3.6} <level {1} ? {no} : {yes}}', 'yes'],
    ['${{3.6} ==level {3.6.0} ? {y} : {n}}', 'y'], ['${{1} !=level {1.0} ? {y} : {n}}', 'n'],
  ];
  for (const [e, want] of cases) assert.equal(ev(e), want, e);
  assert.equal(ev('${{x} <level {1} ? {no} : {yes}}'), 'ERR malformed compatibility level syntax: "x"');
});

test('compatLevelFromString', () => {
  assert.equal(compatLevelFromString('0'), 0n);
  assert.equal(compatLevelFromString('1'), 1n << 20n);
  assert.equal(compatLevelFromString('3.6'), (3n << 20n) | (6n << 10n));
  assert.equal(compatLevelFromString('3.6.2'), (3n << 20n) | (6n << 10n) | 2n);
  for (const s of ['', 'x', '3.', '3.6.', '3.6.1.2', '-1', '3.1024', '3.6.1024', '3x']) {
    assert.equal(compatLevelFromString(s), undefined, s);
  }
});

test('syntax errors: warning text, then "macro processing error"', () => {
  const cases: [string, string][] = [
    ['${foo', 'truncated macro reference: "${foo"'],
    ['$(foo}', 'truncated macro reference: "$(foo}"'],
    ['a$', 'empty macro name: "a$"'],
    ['a$-b', 'empty macro name: "a$-b"'],
    ['${}', 'empty macro name: "${}"'],
    ['${foo)}', 'attribute name syntax error at: "...foo>>>)"'],
    ['${foo bar}', 'attribute name syntax error at: "...foo>>> bar"'],
    ['${foo?{a}{b}}', '":" expected at: "...a}>>>{b}"'],
    ['${foo:{a}:{b}}', 'unexpected input at: "...a}>>>:{b}"'],
    ['${foo?{a}', 'truncated macro reference: "${foo?{a}"'],
    ['${foo?{a}:{b}', 'truncated macro reference: "${foo?{a}:{b}"'],
    ['${{a} {b}}', '"==" or "!="" or "<"" or "<="" or ">="" or ">" expected at: "...a}>>>{b}"'],
    ['${{a} =~ {b}}', '"==" or "!="" or "<"" or "<="" or ">="" or ">" expected at: "...a}>>>=~ {b}"'],
    ['${{a} == b}', '"{expression}" expected at: "...{a} ==>>> b"'],
    ['${{a} ==lvl {b}}', 'bad operator suffix at: "...==>>>lvl"'],
    ['${{a} == {b} x}', '"?" or ":" expected at: "...}>>>x"'],
  ];
  for (const [e, want] of cases) assert.equal(ev(e), `ERR ${want}`, e);
});

test('nesting: 100 levels are fine, 101 are an error; self-reference is an error', () => {
  const chain = (n: number): Map<string, string> => {
    const m = new Map<string, string>();
    for (let i = 0; i < n; i++) m.set(`p${i}`, `$p${i + 1}`);
    m.set(`p${n}`, 'end');
    return m;
  };
  const ok = chain(99);
  assert.equal(dictEval('$p0', (n) => ok.get(n)), 'end');
  const deep = chain(100);
  const w: string[] = [];
  assert.throws(() => dictEval('$p0', (n) => deep.get(n), { warn: (m) => w.push(m) }),
    (e: unknown) => e instanceof FatalError && e.message === 'dictionary mail_dict: macro processing error');
  assert.deepEqual(w, ['unreasonable macro call nesting: "end"']);
  const self = new Map([['a', '$a']]);
  const w2: string[] = [];
  assert.throws(() => dictEval('$a$a', (n) => self.get(n), { warn: (m) => w2.push(m) }), FatalError);
  assert.deepEqual(w2, ['unreasonable macro call nesting: "a"']);
});

test('self-reference through a relational operand is an error, not a stack overflow', () => {
  const m = new Map([['x', '${{$x} == {1}}']]);
  const w: string[] = [];
  assert.throws(() => dictEval('$x', (n) => m.get(n), { warn: (s) => w.push(s) }), FatalError);
  assert.match(w[0], /^unreasonable macro call nesting: /);
});

test('an all-digit operand out of long range is fatal at once', () => {
  assert.throws(() => dictEval('${{99999999999999999999} == {1}}', lookup),
    (e: unknown) => e instanceof FatalError && e.message === 'mac_exp_eval: bad conversion: 99999999999999999999');
});

test('macExpand: status bits, non-recursive mode, lookup modes', () => {
  assert.deepEqual(macExpand('a$undefined_x', lookup), { result: 'a', status: MAC_PARSE_UNDEF });
  assert.deepEqual(macExpand('$foo', lookup), { result: 'bar', status: 0 });
  assert.equal(macExpand('${foo', lookup).status & MAC_PARSE_ERROR, MAC_PARSE_ERROR);
  assert.deepEqual(macExpand('$nested', lookup, { recursive: false }), { result: '$foo-$num', status: 0 });
  const modes: string[] = [];
  macExpand('$foo${foo?x}${foo:y}', (n, mode) => {
    modes.push(mode);
    return lookup(n);
  });
  assert.deepEqual(modes, ['use', 'test', 'test']);
});

const POSTCONF_CASES = [
  '$foo', '${foo}', '$(foo)', '$$foo', 'x$undefined_x', '${foo?yes}', '${foo:no}', '${empty?yes}',
  '${empty:no}', '${undefined_x:dflt}', '${foo?{T}:{F}}', '${empty?{T}:{F}}',
  '${{$foo} == {bar} ? {eq} : {ne}}', '${{10} < {9}?{lt}:{ge}}', '${{abc} < {b}?{lt}:{ge}}',
  '${{3.6} <level {3.10} ? {lt}:{ge}}', '${{$foo}=={bar}}', '${foo?foo:bar}', '${ foo }',
  '${foo ? {x} : {y}}', '$nested/${nested?$nested}', '${{$lvl} >=level {3.6}?{y}:{n}}',
  '${{$compatibility_level} <level {1} ? {no} : {yes}}', 'a$foo_b', '${{a}=={b}?{x}}trail', '$dollar',
];

test('expansions agree with postconf -x', { skip: !HAVE_POSTCONF && 'no postconf' }, () => {
  const defs = `${DEFS}compatibility_level = 3.6\n`;
  const t = parseMainCf(defs, 'defs');
  const dir = mkdtempSync(join(tmp, 'pc-'));
  for (const e of POSTCONF_CASES) {
    writeCold(join(dir, 'main.cf'), `${defs}smtpd_banner = ${e}\n`);
    const theirs = execFileSync(POSTCONF, ['-c', dir, '-xh', 'smtpd_banner'], { stdio: ['ignore', 'pipe', 'ignore'] })
      .toString().replace(/\n$/, '');
    assert.equal(dictEval(e, (n) => t.get(n)), theirs, e);
  }
});

test('syntax-error warnings agree with postconf -x', { skip: !HAVE_POSTCONF && 'no postconf' }, () => {
  const dir = mkdtempSync(join(tmp, 'pe-'));
  for (const e of ['$(foo}', '${foo)}', '${foo?{a}{b}}', '${foo:{a}:{b}}', '${{a} == b}']) {
    writeCold(join(dir, 'main.cf'), `${DEFS}smtpd_banner = ${e}\n`);
    let stderr = '';
    try {
      execFileSync(POSTCONF, ['-c', dir, '-xh', 'smtpd_banner'], { stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (err) {
      stderr = (err as { stderr: Buffer }).stderr.toString();
    }
    const mine = ev(e).replace(/^ERR /, '');
    assert.ok(stderr.includes(`warning: ${mine}\n`), `${e}: ${mine} vs ${stderr}`);
  }
});
