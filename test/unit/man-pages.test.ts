// Tests for man/tlsmgr.8 and man/tlsmgr-ctl.8: both render without a single roff warning
// (man --warnings -l, else groff -man -ww -z), and they name what the code implements, so the
// pages cannot drift from it silently: every parameter with a built-in default in
// config/load.ts DEFAULTS (Postfix's and the tlsmgr.cf extensions) has a .TP entry in
// tlsmgr(8) with its default, and every tlsmgr-ctl command of ctl/main.ts COMMANDS has a .TP
// entry in tlsmgr-ctl(8) with its synopsis.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { DEFAULTS } from '../../src/config/load.js';
import { isExtensionName } from '../../src/config/tlsmgrcf.js';
import { COMMANDS } from '../../src/ctl/main.js';

// dist/test/unit/ -> the package root.
const MAN_DIR = fileURLToPath(new URL('../../../man/', import.meta.url));
const PAGES = ['tlsmgr.8', 'tlsmgr-ctl.8'];

/** cmd --version runs and names itself (not a stand-in such as a minimized system's stub). */
function available(cmd: string, banner: RegExp): boolean {
  const r = spawnSync(cmd, ['--version'], { encoding: 'utf8', timeout: 10_000 });
  return r.error === undefined && r.status === 0 && banner.test(r.stdout);
}

const HAVE_MAN = available('man', /^man /m);
const HAVE_GROFF = available('groff', /GNU groff/);

/** One text line of roff with font escapes removed and \- as -: what a reader sees. */
function plain(line: string): string {
  return line.replace(/\\f[BIRP]/g, '').replace(/\\-/g, '-').replace(/\\&/g, '');
}

/** The tag lines of every .TP entry (the line after .TP), as plain text. */
function tags(page: string): string[] {
  const lines = readFileSync(MAN_DIR + page, 'utf8').split('\n');
  const out: string[] = [];
  for (let i = 1; i < lines.length; i++) {
    if (lines[i - 1] === '.TP') out.push(plain(lines[i]));
  }
  return out;
}

/** `name` in `text` as a whole word (not part of a longer parameter or command name). */
function hasWord(text: string, name: string): boolean {
  const esc = name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`(?:^|[^A-Za-z0-9_-])${esc}(?:$|[^A-Za-z0-9_-])`).test(text);
}

for (const page of PAGES) {
  test(`${page} renders with man --warnings -l: exit 0, nothing on stderr`, { skip: HAVE_MAN ? false : 'man(1) is not installed' }, () => {
    const r = spawnSync('man', ['--warnings', '-l', MAN_DIR + page], {
      encoding: 'utf8', timeout: 30_000, env: { ...process.env, MANWIDTH: '80', MANPAGER: 'cat', PAGER: 'cat' },
    });
    assert.equal(r.error, undefined);
    assert.equal(r.stderr, '');
    assert.equal(r.status, 0);
    assert.match(r.stdout, /NAME/);
  });

  test(`${page} renders with groff -man -ww -z: exit 0, nothing on stderr`, { skip: HAVE_GROFF ? false : 'groff is not installed' }, () => {
    const r = spawnSync('groff', ['-man', '-ww', '-z', MAN_DIR + page], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.error, undefined);
    assert.equal(r.stderr, '');
    assert.equal(r.status, 0);
  });
}

test('tlsmgr.8 has an entry, with its default, for every parameter tlsmgr reads and every tlsmgr.cf extension', () => {
  const entries = tags('tlsmgr.8');
  const names = Object.keys(DEFAULTS) as (keyof typeof DEFAULTS)[];
  const extensions = names.filter((n) => isExtensionName(n));
  // The lists come from the code: make sure they are the ones meant, not empty by accident.
  assert.ok(extensions.includes('tlsmgr_stats_interval') && extensions.includes('lmtp_tls_session_cache_max_entry_size'));
  assert.ok(!extensions.includes('tlsmgr_service_name'));
  assert.ok(names.includes('smtpd_tls_session_cache_database'));
  const missing: string[] = [];
  for (const name of names) {
    const v = String(DEFAULTS[name]);
    const want = `(default: ${v === '' ? 'empty' : v})`;
    if (!entries.some((t) => hasWord(t, name) && t.includes(want))) missing.push(`${name} ${want}`);
  }
  assert.deepEqual(missing, [], 'parameters without a .TP entry naming them with their default in man/tlsmgr.8');
  // Extensions sit in their own section, after its heading.
  const text = plain(readFileSync(MAN_DIR + 'tlsmgr.8', 'utf8'));
  const from = text.indexOf('.SH EXTENSIONS IN TLSMGR.CF');
  const to = text.indexOf('.SH SESSION CACHE DATABASES');
  assert.ok(from >= 0 && to > from, 'the EXTENSIONS IN TLSMGR.CF section, then SESSION CACHE DATABASES');
  const section = text.slice(from, to);
  for (const name of extensions) assert.ok(hasWord(section, name), `${name} in EXTENSIONS IN TLSMGR.CF`);
});

test('tlsmgr-ctl.8 has an entry, with its synopsis, for every tlsmgr-ctl command', () => {
  const entries = tags('tlsmgr-ctl.8');
  const commands = [...COMMANDS.map((c) => ({ name: c.name, synopsis: c.synopsis })), { name: 'help', synopsis: 'help [command]' }];
  assert.ok(commands.some((c) => c.name === 'keys') && commands.some((c) => c.name === 'install'));
  const missing = commands.filter((c) => !entries.some((t) => t.startsWith(c.name) && t.includes(c.synopsis)));
  assert.deepEqual(missing.map((c) => c.synopsis), [], 'commands without a .TP entry showing their synopsis in man/tlsmgr-ctl.8');
});
