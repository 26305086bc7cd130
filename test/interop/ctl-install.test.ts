/*
 * NAME
 *   ctl-install.test - the packed tarball, installed into a temporary prefix, switches a real
 *   Postfix to this tlsmgr and back (tlsmgr-ctl install, check, uninstall)
 *
 * DESCRIPTION
 *   1. `npm pack` in a temporary copy of the checkout (node_modules linked, for tsc): its
 *      prepack script builds dist/src. The tarball holds bin/tlsmgr, bin/tlsmgr-ctl,
 *      dist/src/**.js, man/tlsmgr.8, man/tlsmgr-ctl.8, package.json and README.md, and nothing
 *      of test/, bench/, src/*.ts or source maps; the global install links the man pages into
 *      <prefix>/share/man/man8.
 *   2. `npm install -g --prefix <tmp>/prefix <tarball>`: dependencies come from the npm cache
 *      that `npm ci` filled (--prefer-offline; the registry otherwise), and the four native
 *      modules are compiled right there by node-gyp, as on an operator's machine. To keep
 *      that short, CFLAGS/CXXFLAGS=-O0 (SQLite's amalgamation takes over a minute at -O3);
 *      it runs under nice(1) so that the test files running beside it keep the CPU.
 *   3. A Postfix 3.7 instance (test/helpers/postfix.ts, mode "postfix": master.cf runs
 *      Postfix's own tlsmgr) whose daemon_directory is a directory of links to Debian's
 *      /usr/lib/postfix/sbin, so that install writes nothing into the system's.
 *   Then, each with <prefix>/bin/tlsmgr-ctl -c <config dir>:
 *     - check: exit 1, "warning: master.cf runs Postfix's own tlsmgr";
 *     - install --dry-run: exit 0, "would ..." lines, nothing changed;
 *     - install: exit 0; $daemon_directory/tlsmgr-node is root's, 0755, and execs this node
 *       with the installed bin/tlsmgr; master.cf differs only in the tlsmgr entry, whose
 *       command field is tlsmgr-node; the old master.cf is kept beside it; after the reload
 *       master(8) runs node for tlsmgr (/proc: exe is node, the script is the installed
 *       bin/tlsmgr) and a TLS 1.3 session resumes through it (smtpd's tktkey requests);
 *     - install again: exit 0, "nothing to do", master.cf and the entry untouched;
 *     - check: exit 0, every line "ok:"; with data_directory made world-writable, exit 1
 *       and an "error:" line naming it;
 *     - uninstall: exit 0; the command field is tlsmgr again, the entry gone, and master(8)
 *       runs /usr/lib/postfix/sbin/tlsmgr; uninstall again: "nothing to do".
 *   The durations of pack, install and the whole test are reported as diagnostics.
 *
 * LIMITS
 *   Needs root, Postfix, openssl, swaks, npm, a C/C++ toolchain, and either a filled npm
 *   cache or the npm registry. Without Postfix it is skipped with a loud message, except
 *   under CI=true where it fails. About 55-60 s on an otherwise idle 2-core machine (npm pack
 *   12 s, npm install -g 36 s: the native modules compiling, Postfix starting meanwhile),
 *   longer when other test files share the cores.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { spawnSync } from 'node:child_process';
import {
  chmodSync, cpSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, realpathSync, rmSync,
  statSync, symlinkSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, sep } from 'node:path';
import {
  POSTFIX_DAEMON_DIR, REPO_ROOT, pollUntil, postfixAvailability, readGreeting, runCommand, scriptIndex, startPostfix,
  tlsmgrProcesses, type PostfixInstance, type ProcInfo, type RunResult,
} from '../helpers/postfix.js';
import { runStarttlsResume, starttlsResumeProblems } from './resume-scenarios.js';

const NATIVE = 'better-sqlite3,fs-ext,posix,unix-dgram';
const POSTFIX_TLSMGR = join(POSTFIX_DAEMON_DIR, 'tlsmgr');

/** The environment for npm: the caller's without the npm_* variables of an enclosing `npm test`. */
function npmEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^npm_/i.test(k)) env[k] = v;
  return { ...env, ...extra };
}

function masterCfWithout(text: string, service: string): string {
  // An entry is its first line and the indented lines after it.
  const out: string[] = [];
  let skipping = false;
  for (const line of text.split('\n')) {
    if (/^\S/.test(line)) skipping = line.startsWith(`${service} `);
    if (!skipping) out.push(line);
  }
  return out.join('\n');
}

function backups(configDir: string): string[] {
  return readdirSync(configDir).filter((n) => n.startsWith('master.cf.tlsmgr-ctl.')).sort();
}

function commandField(inst: PostfixInstance): string {
  const r = spawnSync('/usr/sbin/postconf', ['-c', inst.configDir, '-Fh', 'tlsmgr/unix/command'], { encoding: 'utf8', timeout: 30_000 });
  return r.stdout.trim();
}

function show(r: RunResult): string {
  return `exit ${String(r.code)}${r.timedOut ? ' (timed out)' : ''}\n--- stdout ---\n${r.stdout}--- stderr ---\n${r.stderr}`;
}

/**
 * tlsmgrNow - make master(8) start its tlsmgr (a connection to private/tlsmgr), then wait
 * until exactly one tlsmgr process runs and it is the one wanted (an old one exits after a
 * reload).
 */
async function tlsmgrNow(inst: PostfixInstance, want: (p: ProcInfo) => boolean, what: string): Promise<ProcInfo> {
  return pollUntil(async () => {
    await readGreeting(inst.tlsmgrSocketPath, 2_000);
    const ps = tlsmgrProcesses(inst);
    return ps.length === 1 && want(ps[0]) ? ps[0] : undefined;
  }, {
    timeoutMs: 30_000, intervalMs: 250,
    what: `${what}; running now: ${JSON.stringify(tlsmgrProcesses(inst).map((p) => ({ pid: p.pid, exe: p.exe, argv: p.argv })))}`,
  });
}

function defineSuite(): void {
  describe('tlsmgr-ctl from the packed tarball against real Postfix', { concurrency: 1 }, () => {
    const t0 = Date.now();
    let work = '';
    let prefix = '';
    let ctlBin = '';
    let installedDaemon = '';
    let tarFiles: string[] = [];
    let inst: PostfixInstance | undefined;
    let daemonDir = '';
    let setupError: unknown;
    const times: string[] = [];
    const ready = (): PostfixInstance => {
      if (setupError !== undefined) throw setupError;
      assert.ok(inst, 'no Postfix instance');
      return inst;
    };
    const ctl = (...args: string[]): Promise<RunResult> =>
      runCommand(ctlBin, ['-c', ready().configDir, ...args], { timeoutMs: 120_000, env: npmEnv() });

    /* packAndInstall - steps 1 and 2; sets prefix, tarFiles, ctlBin, installedDaemon */
    async function packAndInstall(): Promise<void> {
      // npm pack in a copy of the checkout: its prepack must not rebuild the dist/ the other
      // test files are running from.
      const copy = join(work, 'checkout');
      const skip = new Set(['node_modules', 'dist', 'run']);
      cpSync(REPO_ROOT, copy, { recursive: true, filter: (src) => {
        const top = relative(REPO_ROOT, src).split(sep)[0];
        return top === '' || !(skip.has(top) || top.startsWith('.'));
      } });
      symlinkSync(realpathSync(join(REPO_ROOT, 'node_modules')), join(copy, 'node_modules'));
      const packDir = join(work, 'pack');
      mkdirSync(packDir);
      let t = Date.now();
      const pack = await runCommand('npm', ['pack', '--json', '--pack-destination', packDir], { cwd: copy, timeoutMs: 300_000, env: npmEnv() });
      times.push(`npm pack ${((Date.now() - t) / 1000).toFixed(1)} s`);
      assert.equal(pack.code, 0, `npm pack failed: ${show(pack)}`);
      const info = JSON.parse(pack.stdout.slice(pack.stdout.indexOf('['))) as { filename: string; files: { path: string }[] }[];
      tarFiles = info[0].files.map((f) => f.path);
      const tarball = join(packDir, info[0].filename);
      // npm install -g into a temporary prefix: the native modules are built here.
      prefix = join(work, 'prefix');
      mkdirSync(prefix, { mode: 0o755 });
      t = Date.now();
      const nice = existsSync('/usr/bin/nice') ? ['/usr/bin/nice', '-n', '10'] : [];
      const cmd = [...nice, 'npm', 'install', '-g', '--prefix', prefix, '--prefer-offline', '--no-audit', '--no-fund',
        `--allow-scripts=${NATIVE}`, tarball];
      const r = await runCommand(cmd[0], cmd.slice(1), {
        cwd: work, timeoutMs: 600_000, env: npmEnv({ CFLAGS: '-O0', CXXFLAGS: '-O0' }),
      });
      times.push(`npm install -g ${((Date.now() - t) / 1000).toFixed(1)} s`);
      assert.equal(r.code, 0, `npm install -g failed: ${show(r)}`);
      ctlBin = join(prefix, 'bin', 'tlsmgr-ctl');
      installedDaemon = join(prefix, 'lib', 'node_modules', 'tlsmgr', 'bin', 'tlsmgr');
    }

    before(async () => {
      try {
        work = mkdtempSync(join(tmpdir(), 'tlsmgr-ctl-pkg-'));
        chmodSync(work, 0o755);
        // 3. Postfix with its own tlsmgr, from a daemon_directory of links to Debian's; it
        //    starts while the package is packed and installed.
        daemonDir = join(work, 'libexec');
        mkdirSync(daemonDir, { mode: 0o755 });
        for (const name of readdirSync(POSTFIX_DAEMON_DIR)) symlinkSync(join(POSTFIX_DAEMON_DIR, name), join(daemonDir, name));
        const [pkg, pf] = await Promise.allSettled([
          packAndInstall(),
          startPostfix({ tlsmgr: 'postfix', mainCf: { daemon_directory: daemonDir } }).then((i) => { inst = i; }),
        ]);
        for (const r of [pkg, pf]) if (r.status === 'rejected') throw r.reason;
      } catch (err) {
        setupError = err;
      }
    });

    after(async () => {
      await inst?.stop();
      if (work !== '' && process.env.TLSMGR_INTEROP_KEEP !== '1') rmSync(work, { recursive: true, force: true, maxRetries: 3 });
    });

    test('the tarball: both commands and the compiled daemon; no tests, sources or maps', (t) => {
      ready();
      for (const f of ['package.json', 'README.md', 'bin/tlsmgr', 'bin/tlsmgr-ctl', 'dist/src/cli/main.js', 'dist/src/ctl/main.js', 'man/tlsmgr.8', 'man/tlsmgr-ctl.8']) {
        assert.ok(tarFiles.includes(f), `${f} is in the tarball: ${tarFiles.join(' ')}`);
      }
      const stray = tarFiles.filter((f) => !/^(package\.json|README\.md|bin\/tlsmgr(-ctl)?|dist\/src\/.*\.js|man\/tlsmgr(-ctl)?\.8)$/.test(f));
      assert.deepEqual(stray, []);
      for (const f of ['tlsmgr', 'tlsmgr-ctl']) assert.ok(lstatSync(join(prefix, 'bin', f)).isSymbolicLink(), `${prefix}/bin/${f}`);
      for (const f of ['tlsmgr.8', 'tlsmgr-ctl.8']) assert.ok(existsSync(join(prefix, 'share', 'man', 'man8', f)), `${prefix}/share/man/man8/${f}`);
      t.diagnostic(`${tarFiles.length} files; ${times.join(', ')}`);
    });

    test('check on Postfix\'s own tlsmgr: exit 1, says so', async () => {
      const i = ready();
      const own = await tlsmgrNow(i, (p) => p.exe === POSTFIX_TLSMGR, 'Postfix\'s tlsmgr to run');
      assert.equal(own.argv[0], 'tlsmgr');
      const r = await ctl('check');
      assert.equal(r.code, 1, show(r));
      assert.match(r.stdout, /^warning: master\.cf runs Postfix's own tlsmgr for tlsmgr\/unix/m, show(r));
      assert.match(r.stdout, /^ok: native module better-sqlite3 loads$/m, show(r));
    });

    test('install --dry-run: says what it would do and changes nothing', async () => {
      const i = ready();
      const before = readFileSync(join(i.configDir, 'master.cf'), 'utf8');
      const r = await ctl('install', '--dry-run');
      assert.equal(r.code, 0, show(r));
      const lines = r.stdout.trim().split('\n');
      assert.ok(lines.every((l) => l.startsWith('tlsmgr-ctl: dry run: ')), show(r));
      assert.match(r.stdout, new RegExp(`would write ${daemonDir}/tlsmgr-node .*exec ${process.execPath} .*${installedDaemon}`));
      assert.match(r.stdout, /would change tlsmgr\/unix\/command in .*: "tlsmgr" -> "tlsmgr-node"/);
      assert.match(r.stdout, /would run postfix -c .* reload \(Postfix is running\)/);
      assert.equal(readFileSync(join(i.configDir, 'master.cf'), 'utf8'), before);
      assert.equal(existsSync(join(daemonDir, 'tlsmgr-node')), false);
      assert.deepEqual(backups(i.configDir), []);
    });

    test('install: the entry, one changed field, a backup; master(8) runs node and TLS 1.3 resumes through it', async (t) => {
      const i = ready();
      const cf = join(i.configDir, 'master.cf');
      const before = readFileSync(cf, 'utf8');
      const started = Date.now();
      const r = await ctl('install');
      assert.equal(r.code, 0, show(r));
      t.diagnostic(`install: ${((Date.now() - started) / 1000).toFixed(1)} s`);
      assert.equal(commandField(i), 'tlsmgr-node');
      const after = readFileSync(cf, 'utf8');
      assert.equal(masterCfWithout(after, 'tlsmgr'), masterCfWithout(before, 'tlsmgr'), 'only the tlsmgr entry changed');
      const saved = backups(i.configDir);
      assert.equal(saved.length, 1, saved.join(' '));
      assert.equal(readFileSync(join(i.configDir, saved[0]), 'utf8'), before);
      const entry = join(daemonDir, 'tlsmgr-node');
      const st = lstatSync(entry);
      assert.ok(st.isFile());
      assert.deepEqual([st.uid, st.gid, st.mode & 0o7777], [0, 0, 0o755]);
      const text = readFileSync(entry, 'utf8');
      assert.match(text, /^#!\/bin\/sh\n/);
      assert.ok(text.includes(`exec '${process.execPath}' '--max-semi-space-size=1' '--max-old-space-size=1024' '--v8-pool-size=1' '${installedDaemon}' "$@"\n`), text);
      assert.equal(statSync(POSTFIX_TLSMGR).isFile(), true, 'Postfix\'s own tlsmgr is still there');

      const node = realpathSync(process.execPath);
      const ours = await tlsmgrNow(i, (p) => p.exe === node, 'master(8) to run our node tlsmgr');
      assert.equal(ours.argv[scriptIndex(ours.argv)], installedDaemon, JSON.stringify(ours.argv));
      const obs = await runStarttlsResume(i, '1.3');
      assert.deepEqual(starttlsResumeProblems(obs), [], `TLS 1.3 resumption through the installed tlsmgr:\n${obs.log}`);
      assert.deepEqual(tlsmgrProcesses(i).map((p) => p.pid), [ours.pid], 'the same node tlsmgr served it');
    });

    test('install again: nothing to do, nothing touched', async () => {
      const i = ready();
      const cf = join(i.configDir, 'master.cf');
      const entry = join(daemonDir, 'tlsmgr-node');
      const [cfBefore, cfTime, entryTime] = [readFileSync(cf, 'utf8'), statSync(cf).mtimeMs, statSync(entry).mtimeMs];
      const r = await ctl('install');
      assert.equal(r.code, 0, show(r));
      assert.match(r.stdout, /^tlsmgr-ctl: master\(8\) already runs this tlsmgr for tlsmgr\/unix .*; nothing to do\n$/, show(r));
      assert.equal(readFileSync(cf, 'utf8'), cfBefore);
      assert.deepEqual([statSync(cf).mtimeMs, statSync(entry).mtimeMs], [cfTime, entryTime]);
      assert.equal(backups(i.configDir).length, 1);
    });

    test('check: exit 0 on the installed instance; exit 1 with an error line when data_directory is world-writable', async () => {
      const i = ready();
      const good = await ctl('check');
      assert.equal(good.code, 0, show(good));
      assert.ok(good.stdout.trim().split('\n').every((l) => l.startsWith('ok: ')), show(good));
      assert.match(good.stdout, /^ok: master\.cf runs tlsmgr-node for tlsmgr\/unix: /m);
      assert.match(good.stdout, new RegExp(`^ok: master\\(8\\) pid ${i.masterPid} runs tlsmgr as pid \\d+: ${realpathSync(process.execPath)}$`, 'm'));
      const mode = statSync(i.dataDir).mode & 0o7777;
      chmodSync(i.dataDir, 0o777);
      try {
        const bad = await ctl('check');
        assert.equal(bad.code, 1, show(bad));
        assert.match(bad.stdout, new RegExp(`^error: data_directory ${i.dataDir} is writable by group or others \\(mode 0777\\)$`, 'm'), show(bad));
      } finally {
        chmodSync(i.dataDir, mode);
      }
    });

    test('uninstall: Postfix\'s own tlsmgr back, the entry gone; again: nothing to do', async (t) => {
      const i = ready();
      const started = Date.now();
      const r = await ctl('uninstall');
      assert.equal(r.code, 0, show(r));
      t.diagnostic(`uninstall: ${((Date.now() - started) / 1000).toFixed(1)} s`);
      assert.equal(commandField(i), 'tlsmgr');
      assert.equal(existsSync(join(daemonDir, 'tlsmgr-node')), false);
      assert.equal(backups(i.configDir).length, 2);
      const own = await tlsmgrNow(i, (p) => p.exe === POSTFIX_TLSMGR, 'master(8) to run Postfix\'s tlsmgr again');
      assert.equal(own.argv[0], 'tlsmgr');
      const again = await ctl('uninstall');
      assert.equal(again.code, 0, show(again));
      assert.match(again.stdout, /nothing to do\n$/, show(again));
      assert.equal(backups(i.configDir).length, 2);
      t.diagnostic(`whole suite so far: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    });
  });
}

const avail = postfixAvailability();
const npm = avail.ok ? spawnSync('npm', ['--version'], { encoding: 'utf8', timeout: 30_000 }) : undefined;
const reason = !avail.ok ? avail.reason : npm?.status !== 0 ? 'npm is not available' : '';
if (reason !== '') {
  if (process.env.CI === 'true') {
    test('tlsmgr-ctl package interop', () => {
      assert.fail(`CI=true but the tlsmgr-ctl package test cannot run: ${reason}`);
    });
  } else {
    console.error(`\n${'*'.repeat(72)}\n*** SKIPPING the tlsmgr-ctl package test: ${reason}\n` +
      `*** (under CI=true this is a failure)\n${'*'.repeat(72)}\n`);
    test('tlsmgr-ctl package interop', { skip: reason }, () => undefined);
  }
} else {
  defineSuite();
}
