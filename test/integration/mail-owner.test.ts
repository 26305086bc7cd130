/*
 * mail-owner - the real daemon (node bin/tlsmgr) refuses a mail_owner that is root or unknown
 * at start, in every mode (standalone, -S, under master with GENERATION), as root or not, as
 * Postfix's mail_params_init() does (global/mail_params.c check_mail_owner): "fatal: file
 * <config_directory>/main.cf: parameter mail_owner: user root has privileged user ID", exit 1,
 * and not one file made (no socket, no cache database, no PRNG exchange file): a root-owned
 * file left behind would be one the next start, as the proper mail_owner, cannot open.
 * Postfix's own tlsmgr (Debian's, when installed) gives the same words for the same main.cf.
 */

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, lstatSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { makeInstanceDirs, REPO, shebangNodeArgs, writeInstanceMainCf } from '../../bench/daemon.js';
import { POSTFIX_TLSMGR } from '../../bench/postfix-tlsmgr.js';
import { captureChild } from '../helpers/child.js';

const BIN = join(REPO, 'bin', 'tlsmgr');
const EXIT_MS = 10_000;
const work = mkdtempSync(join(tmpdir(), 'tlsmgr-mailowner-'));
after(() => rmSync(work, { recursive: true, force: true }));
let serial = 0;

/** Every path under dir with its type, sorted: what a start must leave as it was. */
function tree(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      const st = lstatSync(p);
      out.push(`${p.slice(dir.length)} ${st.isDirectory() ? 'dir' : st.isSocket() ? 'socket' : 'file'}`);
      if (st.isDirectory()) walk(p);
    }
  };
  walk(dir);
  return out;
}

/** A scratch instance whose main.cf names `owner` as mail_owner, with files that a start would create. */
function instance(owner: string): string {
  const dir = mkdtempSync(join(work, `i${serial++}-`));
  makeInstanceDirs(dir);
  writeInstanceMainCf(dir, {
    mail_owner: owner,
    tls_random_exchange_name: '${data_directory}/prng_exch',
    // Under master the log goes to syslog; a socket that is not there: stderr (-V) only.
    tlsmgr_syslog_socket: join(work, 'no-such-log-socket'),
  });
  return dir;
}

/** Run `program args` on the instance (stdin: one seed request, for -S); exit code and stderr. */
async function run(dir: string, program: 'ours' | 'postfix', args: string[], env: Record<string, string> = {}): Promise<{ code: number | string; stderr: string }> {
  const argv = program === 'ours' ? [process.execPath, ...shebangNodeArgs(BIN), BIN, ...args] : [POSTFIX_TLSMGR, ...args];
  const child = spawn(argv[0], argv.slice(1), {
    argv0: program === 'postfix' ? 'tlsmgr' : undefined,
    cwd: work,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', MAIL_CONFIG: join(dir, 'etc'), ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const out = captureChild(child);
  child.stdin?.end(Buffer.from('request\0seed\0size\x0032\0\0', 'latin1'));
  const code = await out.exited(EXIT_MS);
  return { code, stderr: out.stderr() };
}

const MODES: ReadonlyArray<[string, string[], Record<string, string>]> = [
  ['standalone', [], {}],
  ['-S', ['-S'], {}],
  ['under master', ['-l', '-t', 'unix', '-u', '-V'], { GENERATION: '17' }],
];

for (const [mode, args, env] of MODES) {
  test(`${mode}: mail_owner = root is fatal at start, exit 1, no file made`, async () => {
    const dir = instance('root');
    const before = tree(dir);
    const r = await run(dir, 'ours', args, env);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`: fatal: file ${dir}/etc/main\\.cf: parameter mail_owner: user root has privileged user ID\\n`));
    assert.deepEqual(tree(dir), before);
  });
}

test('an unknown mail_owner is fatal at start in Postfix\'s words, no file made', async () => {
  const dir = instance('no-such-user-tlsmgr');
  const before = tree(dir);
  const r = await run(dir, 'ours', []);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, new RegExp(`: fatal: file ${dir}/etc/main\\.cf: parameter mail_owner: unknown user name value: no-such-user-tlsmgr\\n`));
  assert.deepEqual(tree(dir), before);
});

test('Postfix\'s tlsmgr -S says the same for the same main.cf', { skip: !existsSync(POSTFIX_TLSMGR) && `${POSTFIX_TLSMGR} not installed` }, async () => {
  for (const owner of ['root', 'no-such-user-tlsmgr']) {
    const dir = instance(owner);
    const ours = await run(dir, 'ours', ['-S']);
    const theirs = await run(dir, 'postfix', ['-S', '-V']);
    const fatalOf = (s: string): string => /fatal: (.*)\n/.exec(s)?.[1] ?? `no fatal in: ${s}`;
    assert.equal(theirs.code, 1, theirs.stderr);
    assert.equal(fatalOf(ours.stderr), fatalOf(theirs.stderr));
  }
});
