/*
 * ctl-install-refusals - tlsmgr-ctl install and uninstall on a scratch Postfix configuration
 * that master(8) does not run, with the real postconf(1) and postfix(1): every refusal
 * leaves master.cf and $daemon_directory as they were, and a failing `postfix check` undoes
 * the change it followed.
 *   - master.cf's tlsmgr service runs something else: refused;
 *   - no tlsmgr unix service: refused;
 *   - $daemon_directory writable by others (0777): refused, the path on an "error:" line;
 *   - a $daemon_directory/tlsmgr-node not written by tlsmgr-ctl: refused, left alone;
 *   - `postfix check` fails (maillog_file set, no postlog service: check-fatal): the command
 *     field is put back and the new entry removed, exit 1;
 *   - Postfix not running: --dry-run lists no reload and says Postfix is not running;
 *   - uninstall without Postfix's own tlsmgr in $daemon_directory: refused.
 * Needs root and Postfix; skipped otherwise (failing under CI=true).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../src/ctl/main.js';
import { POSTFIX_DAEMON_DIR, postfixAvailability } from '../helpers/postfix.js';

const TLSMGR_LINE = 'tlsmgr    unix  -       -       n       1000?   1       ';
const POSTLOG_LINE = 'postlog   unix-dgram n  -       n       -       1       postlogd';

interface Run {
  code: number;
  out: string;
  err: string;
}

function defineSuite(): void {
  describe('tlsmgr-ctl install/uninstall refusals (Postfix not running)', { concurrency: 1 }, () => {
    let dir = '';
    let configDir = '';
    let daemonDir = '';
    const masterCf = (): string => join(configDir, 'master.cf');
    const entry = (): string => join(daemonDir, 'tlsmgr-node');

    /** A fresh configuration: main.cf, master.cf with `tlsmgr` as given, daemon_directory links. */
    function layout(command: string | undefined, opts: { maillog?: boolean; postlog?: boolean; postfixTlsmgr?: boolean } = {}): void {
      rmSync(configDir, { recursive: true, force: true });
      rmSync(daemonDir, { recursive: true, force: true });
      mkdirSync(configDir, { mode: 0o755 });
      mkdirSync(daemonDir, { mode: 0o755 });
      for (const name of readdirSync(POSTFIX_DAEMON_DIR)) {
        if (name !== 'tlsmgr' || opts.postfixTlsmgr !== false) symlinkSync(join(POSTFIX_DAEMON_DIR, name), join(daemonDir, name));
      }
      writeFileSync(join(configDir, 'main.cf'), [
        'compatibility_level = 3.6',
        `queue_directory = ${join(dir, 'queue')}`,
        `data_directory = ${join(dir, 'data')}`,
        `daemon_directory = ${daemonDir}`,
        `maillog_file = ${opts.maillog ? join(dir, 'maillog') : ''}`,
        '',
      ].join('\n'));
      const lines = ['# scratch master.cf', 'pickup    unix  n       -       n       60      1       pickup'];
      if (command !== undefined) lines.push(`${TLSMGR_LINE}${command}`);
      if (opts.postlog !== false) lines.push(POSTLOG_LINE);
      writeFileSync(masterCf(), `${lines.join('\n')}\n`);
    }

    async function ctl(...args: string[]): Promise<Run> {
      const out: string[] = [];
      const err: string[] = [];
      const code = await main(['-c', configDir, ...args], { out: (l) => out.push(l), err: (l) => err.push(l) }, {});
      return { code, out: out.join('\n'), err: err.join('\n') };
    }
    const show = (r: Run): string => `exit ${r.code}\n--- stdout ---\n${r.out}\n--- stderr ---\n${r.err}`;
    const command = (): string =>
      spawnSync('/usr/sbin/postconf', ['-c', configDir, '-Fh', 'tlsmgr/unix/command'], { encoding: 'utf8', timeout: 30_000 }).stdout.trim();
    const backups = (): string[] => readdirSync(configDir).filter((n) => n.startsWith('master.cf.tlsmgr-ctl.'));

    before(() => {
      dir = mkdtempSync(join(tmpdir(), 'tlsmgr-ctl-refuse-'));
      chmodSync(dir, 0o755);
      configDir = join(dir, 'etc');
      daemonDir = join(dir, 'libexec');
      mkdirSync(join(dir, 'queue'), { mode: 0o755 });
    });
    after(() => rmSync(dir, { recursive: true, force: true }));

    test('a command field that is neither tlsmgr nor tlsmgr-node: refused, nothing changed', async () => {
      layout('my-tlsmgr -v');
      const before = readFileSync(masterCf(), 'utf8');
      for (const cmd of ['install', 'uninstall']) {
        const r = await ctl(cmd);
        assert.equal(r.code, 1, show(r));
        assert.match(r.err, /^tlsmgr-ctl: fatal: .*master\.cf: the tlsmgr\/unix service runs "my-tlsmgr", neither Postfix's tlsmgr nor tlsmgr-node; not changing it$/, show(r));
      }
      assert.equal(readFileSync(masterCf(), 'utf8'), before);
      assert.equal(existsSync(entry()), false);
      assert.deepEqual(backups(), []);
    });

    test('no tlsmgr unix service: refused', async () => {
      layout(undefined);
      const r = await ctl('install', '--dry-run');
      assert.equal(r.code, 1, show(r));
      assert.equal(r.err, `tlsmgr-ctl: fatal: ${masterCf()} has no "tlsmgr unix" service`);
    });

    test('$daemon_directory writable by others: refused before anything is written', async () => {
      layout('tlsmgr');
      chmodSync(daemonDir, 0o777);
      const r = await ctl('install');
      assert.equal(r.code, 1, show(r));
      assert.ok(r.err.split('\n').includes(`tlsmgr-ctl: error: ${daemonDir}: writable by group or others (mode 0777)`), show(r));
      assert.match(r.err, /fatal: not installing: root would write into or run from paths that others can change/);
      assert.equal(existsSync(entry()), false);
      assert.equal(command(), 'tlsmgr');
      assert.deepEqual(backups(), []);
      const u = await ctl('uninstall', '--dry-run');
      assert.equal(u.code, 1, show(u));
      assert.match(u.err, /fatal: not uninstalling: /);
    });

    test('a tlsmgr-node tlsmgr-ctl did not write: neither replaced nor removed', async () => {
      layout('tlsmgr');
      writeFileSync(entry(), '#!/bin/sh\nexec /opt/other/tlsmgr "$@"\n', { mode: 0o755 });
      const r = await ctl('install');
      assert.equal(r.code, 1, show(r));
      assert.equal(r.err, `tlsmgr-ctl: fatal: ${entry()} exists and is not written by tlsmgr-ctl; not replacing it`);
      assert.equal(readFileSync(entry(), 'utf8'), '#!/bin/sh\nexec /opt/other/tlsmgr "$@"\n');
      assert.equal(command(), 'tlsmgr');
      const u = await ctl('uninstall');
      assert.equal(u.code, 0, show(u));
      assert.match(u.err, /warning: leaving .*tlsmgr-node alone: it is not written by tlsmgr-ctl/);
      assert.match(u.out, /nothing to do$/);
      assert.equal(existsSync(entry()), true);
    });

    test('postfix check fails: the command field is put back and the new entry removed', async () => {
      layout('tlsmgr -v', { maillog: true, postlog: false });
      const before = readFileSync(masterCf(), 'utf8');
      const r = await ctl('install');
      assert.equal(r.code, 1, show(r));
      assert.match(r.out, /wrote .*tlsmgr-node/, show(r));
      assert.match(r.out, /tlsmgr\/unix\/command: "tlsmgr -v" -> "tlsmgr-node -v"/, show(r));
      assert.match(r.err, /^tlsmgr-ctl: fatal: postfix -c .* check failed \(exit status 1\); the change is undone/, show(r));
      assert.equal(command(), 'tlsmgr -v');
      assert.equal(existsSync(entry()), false);
      assert.equal(backups().length, 1, 'the backup stays');
      assert.equal(readFileSync(join(configDir, backups()[0]), 'utf8'), before);
    });

    test('Postfix not running: the dry run plans no reload', async () => {
      layout('tlsmgr');
      const r = await ctl('install', '--dry-run');
      assert.equal(r.code, 0, show(r));
      assert.doesNotMatch(r.out, /reload/);
      assert.match(r.out, /would run postfix -c .* check\n/);
      assert.match(r.out, /Postfix is not running; master\(8\) will run this tlsmgr once it starts\n.*nothing changed$/);
      assert.equal(existsSync(entry()), false);
      assert.deepEqual(backups(), []);
    });

    test('uninstall without Postfix\'s own tlsmgr in $daemon_directory: refused', async () => {
      layout('tlsmgr-node', { postfixTlsmgr: false });
      const r = await ctl('uninstall');
      assert.equal(r.code, 1, show(r));
      assert.equal(r.err, `tlsmgr-ctl: fatal: ${join(daemonDir, 'tlsmgr')} is missing: no Postfix tlsmgr to switch back to`);
      assert.equal(command(), 'tlsmgr-node');
    });
  });
}

const avail = postfixAvailability();
if (!avail.ok) {
  if (process.env.CI === 'true') {
    test('tlsmgr-ctl refusals', () => assert.fail(`CI=true but this test cannot run: ${avail.reason}`));
  } else {
    test('tlsmgr-ctl refusals', { skip: avail.reason }, () => undefined);
  }
} else {
  defineSuite();
}
