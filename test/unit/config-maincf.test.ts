// Tests for config/maincf.ts: readllines(), split_nameval(), dict_load_fp() behaviour.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { writeCold } from '../helpers/cold.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseMainCf, readLogicalLines, readMainCf, splitNameVal } from '../../src/config/maincf.js';
import { FatalError } from '../../src/util/errors.js';

const POSTCONF = '/usr/sbin/postconf';
const HAVE_POSTCONF = existsSync(POSTCONF);
const tmp = mkdtempSync(join(tmpdir(), 'tlsmgr-maincf-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

function fatal(fn: () => unknown, message: string): void {
  assert.throws(fn, (e: unknown) => e instanceof FatalError && e.message === message);
}

/** Run postconf on `text` as main.cf; returns stdout or the text after "fatal: ". */
function postconf(text: string, args: string[]): string {
  const dir = mkdtempSync(join(tmp, 'pc-'));
  writeCold(join(dir, 'main.cf'), text);
  try {
    return execFileSync(POSTCONF, ['-c', dir, ...args], { stdio: ['ignore', 'pipe', 'pipe'] }).toString();
  } catch (e) {
    const err = (e as { stderr: Buffer }).stderr.toString();
    const m = /fatal: (.*)/.exec(err);
    return m ? `FATAL ${m[1]}` : err;
  }
}

test('continuation lines keep their leading blanks; comments and blank lines inside are dropped', () => {
  const text = 'a = one\n  two\n# comment\n\n   \n\tthree  \nb=x\n   # indented comment\n y\n';
  assert.deepEqual(readLogicalLines(text, 'f'), [
    { text: 'a = one  two\tthree  ', line: 1 },
    { text: 'b=x y', line: 7 },
  ]);
  const t = parseMainCf(text, 'f');
  assert.deepEqual([...t], [['a', 'one  two\tthree'], ['b', 'x y']]);
});

test('line numbers: first physical line of the logical line; comments before it are skipped', () => {
  const lines = readLogicalLines('# c\n\n\na = 1\n\n\n  2\nb = 3', 'f');
  assert.deepEqual(lines, [{ text: 'a = 1  2', line: 4 }, { text: 'b = 3', line: 8 }]);
});

test('CRLF line ends and a missing final newline', () => {
  const t = parseMainCf('a = 1\r\nb = 2\r\n\r\nc = 3', 'f');
  assert.deepEqual([...t], [['a', '1'], ['b', '2'], ['c', '3']]);
});

test('a logical line that starts with white space is skipped with a warning', () => {
  const warnings: string[] = [];
  const long = ' lead = this value is more than thirty characters';
  const t = parseMainCf(' lead = x\n  more\na = 1\n', '/x/main.cf', { warn: (m) => warnings.push(m) });
  assert.deepEqual([...t], [['a', '1']]);
  const t2 = parseMainCf(`# c\n${long}\nb = 2\n`, '/x/main.cf', { warn: (m) => warnings.push(m) });
  assert.deepEqual([...t2], [['b', '2']]);
  assert.deepEqual(warnings, [
    '/x/main.cf: logical line must not start with whitespace: " lead = x  more"',
    `/x/main.cf: logical line must not start with whitespace: "${long.slice(0, 30)}..."`,
  ]);
});

test('split_nameval: blanks around = and trailing blanks are removed', () => {
  assert.deepEqual(splitNameVal('  name   =   some value \t '), { name: 'name', value: 'some value' });
  assert.deepEqual(splitNameVal('a=b=c'), { name: 'a', value: 'b=c' });
  assert.deepEqual(splitNameVal('a ='), { name: 'a', value: '' });
  assert.deepEqual(splitNameVal('=x'), { error: 'missing attribute name' });
  assert.deepEqual(splitNameVal('   '), { error: 'missing attribute name' });
  assert.deepEqual(splitNameVal('foo bar = x'), { error: "missing '=' after attribute name" });
  assert.deepEqual(splitNameVal('foo'), { error: "missing '=' after attribute name" });
});

test('syntax errors are fatal with the line of the logical line', () => {
  fatal(() => parseMainCf('a = 1\nfoo bar\n', '/x/main.cf'),
    '/x/main.cf, line 2: missing \'=\' after attribute name: "foo bar"');
  fatal(() => parseMainCf('a = 1\n= bar\n', '/x/main.cf'), '/x/main.cf, line 2: missing attribute name: "= bar"');
  fatal(() => parseMainCf('a = 1\n\n# c\nfoo\n  bar\n', '/x/main.cf'),
    '/x/main.cf, line 4: missing \'=\' after attribute name: "foo  bar"');
});

test('later definitions override in place; a different value warns with the old one', () => {
  const warnings: string[] = [];
  const t = parseMainCf('a = 1\nb = 2\na = 3\na = 3\n', '/x/main.cf', { warn: (m) => warnings.push(m) });
  assert.deepEqual([...t], [['a', '3'], ['b', '2']]);
  assert.deepEqual(warnings, ['/x/main.cf, line 3: overriding earlier entry: a=1']);
});

test('values of password and secret parameters, and lines naming them, never reach a message', () => {
  const warnings: string[] = [];
  const t = parseMainCf('relay_password = Pw-One\nRelay_Secret = S-One\nrelay_password = Pw-Two\nRelay_Secret = S-Two\n', '/x/main.cf', {
    warn: (m) => warnings.push(m),
  });
  assert.equal(t.get('relay_password'), 'Pw-Two');
  assert.deepEqual(warnings, [
    '/x/main.cf, line 3: overriding earlier entry: relay_password (value not shown)',
    '/x/main.cf, line 4: overriding earlier entry: Relay_Secret (value not shown)',
  ]);
  fatal(() => parseMainCf('a = 1\nmy_password Pw-Three\n', '/x/main.cf'), "/x/main.cf, line 2: missing '=' after attribute name (text not shown)");
  fatal(() => parseMainCf('= secret Pw-Four\n', '/x/main.cf'), '/x/main.cf, line 1: missing attribute name (text not shown)');
  warnings.length = 0;
  parseMainCf(' password = Pw-Five\na = 1\n', '/x/main.cf', { warn: (m) => warnings.push(m) });
  assert.deepEqual(warnings, ['/x/main.cf, line 1: logical line must not start with whitespace (text not shown)']);
});

test('hideValues (a file holding secrets): no value and no line text in any message', () => {
  const warnings: string[] = [];
  const opts = { warn: (m: string) => warnings.push(m), hideValues: true };
  parseMainCf('hosts = h1\nhosts = h2\n', '/x/r.cf', opts);
  assert.deepEqual(warnings, ['/x/r.cf, line 2: overriding earlier entry: hosts (value not shown)']);
  fatal(() => parseMainCf('hosts = h1\nPw-Six\n', '/x/r.cf', opts), "/x/r.cf, line 2: missing '=' after attribute name (text not shown)");
  warnings.length = 0;
  parseMainCf('  Pw-Seven\n', '/x/r.cf', opts);
  assert.deepEqual(warnings, ['/x/r.cf, line 1: logical line must not start with whitespace (text not shown)']);
});

test('entries already in the table (config_directory) are overridden with a warning', () => {
  const warnings: string[] = [];
  const into = new Map([['config_directory', '/etc/postfix']]);
  parseMainCf('config_directory = /foo\n', '/etc/postfix/main.cf', { into, warn: (m) => warnings.push(m) });
  assert.equal(into.get('config_directory'), '/foo');
  assert.deepEqual(warnings, ['/etc/postfix/main.cf, line 1: overriding earlier entry: config_directory=/etc/postfix']);
});

test('a NUL ends the text of a logical line, as in C', () => {
  assert.deepEqual([...parseMainCf('a = b\0c\n', 'f')], [['a', 'b']]);
});

test('missing or unreadable main.cf is fatal', () => {
  fatal(() => readMainCf(join(tmp, 'nope', 'main.cf')), `open ${join(tmp, 'nope', 'main.cf')}: No such file or directory`);
  const dir = join(tmp, 'dir');
  mkdirSync(join(dir, 'main.cf'), { recursive: true });
  fatal(() => readMainCf(join(dir, 'main.cf')), `read ${join(dir, 'main.cf')}: Is a directory`);
  const ok = join(tmp, 'ok.cf');
  writeCold(ok, 'x = 1\n');
  assert.deepEqual([...readMainCf(ok)], [['x', '1']]);
});

test('joined values agree with postconf -h', { skip: !HAVE_POSTCONF && 'no postconf' }, () => {
  const text = 'smtpd_banner = one\n  two\n# c\n\n\tthree $myhostname  \nmail_name = a\n # x\n b\n';
  const t = parseMainCf(text, 'f');
  const out = postconf(text, ['-h', 'smtpd_banner', 'mail_name']).split('\n');
  // postconf folds white space when it prints; compare with that folding.
  const fold = (v: string | undefined): string => (v ?? '').replace(/\s+/g, ' ');
  assert.equal(out[0], fold(t.get('smtpd_banner')));
  assert.equal(out[1], fold(t.get('mail_name')));
  assert.equal(t.get('smtpd_banner'), 'one  two\tthree $myhostname');
});

test('fatal texts agree with postconf', { skip: !HAVE_POSTCONF && 'no postconf' }, () => {
  for (const text of ['a = 1\nfoo bar\n', 'a = 1\n= bar\n', 'a = 1\n\n# c\nfoo\n  bar\n']) {
    const dir = mkdtempSync(join(tmp, 'pf-'));
    const path = join(dir, 'main.cf');
    writeCold(path, text);
    let mine = '';
    try {
      readMainCf(path);
    } catch (e) {
      mine = (e as Error).message;
    }
    let theirs = '';
    try {
      execFileSync(POSTCONF, ['-c', dir, '-n'], { stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (e) {
      theirs = /fatal: (.*)/.exec((e as { stderr: Buffer }).stderr.toString())?.[1] ?? '';
    }
    assert.equal(mine, theirs);
    assert.notEqual(mine, '');
  }
});
