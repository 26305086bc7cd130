/*
 * NAME
 *   ctl-install.test - the packed tarball, installed into a temporary prefix, switches a real
 *   Postfix to this tlsmgr, watches and steers it there, and switches back (tlsmgr-ctl install,
 *   check, status, flush, keys revoke, uninstall)
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
 *      /usr/lib/postfix/sbin, so that install writes nothing into the system's. Its
 *      tlsmgr.cf holds every extension (config/load.ts DEFAULTS that isExtensionName()
 *      accepts; the cache limits and tlsmgr_stats_interval not at their defaults), its
 *      main.cf none.
 *   Then, each with <prefix>/bin/tlsmgr-ctl -c <config dir>:
 *     - check: exit 1, "warning: master.cf runs Postfix's own tlsmgr";
 *     - install --dry-run: exit 0, "would ..." lines, nothing changed;
 *     - install: exit 0; $daemon_directory/tlsmgr-node is root's, 0755, and execs this node
 *       with the installed bin/tlsmgr; master.cf differs only in the tlsmgr entry, whose
 *       command field is tlsmgr-node; the old master.cf is kept beside it; after the reload
 *       master(8) runs node for tlsmgr (/proc: exe is node, the script is the installed
 *       bin/tlsmgr);
 *     - install again: exit 0, "nothing to do", master.cf and the entry untouched;
 *     - check: exit 0, every line "ok:"; with data_directory made world-writable, exit 1
 *       and an "error:" line naming it;
 *     - tlsmgr.cf: `postconf -n` prints nothing on stderr (negative control: the same
 *       setting in a copy of main.cf is warned about); `status --json` shows ours (mode
 *       master) with tlsmgr.cf's cache limits, and its statistics lines come every 2 s;
 *     - while the daemon master(8) started at install runs (the same pid throughout), with
 *       `status --json` read before and after each connection scenario, its counter deltas
 *       (lookups, hits, misses, updates of the smtpd and smtp caches) equal exactly the
 *       requests smtpd made, worked out from Postfix's behaviour (comments at the tests)
 *       and equal to the ones smtpd logged itself, and `tlsmgr-ctl metrics` (the
 *       postfix_tlsmgr_cache_lookups_total and _updates_total samples) shows the same deltas
 *       (both are COUNT_VIEWS):
 *       TLS 1.2 session-id resumption (1 update, 1 hit) and TLS 1.3 ticket resumption
 *       (1 update) through ours (resume-scenarios.ts);
 *       flush smtpd: the TLS 1.2 id resumes right before (1 hit), misses after (1 miss, and
 *       the new session's update);
 *       keys revoke: the TLS 1.3 ticket resumes right before, not after (a fresh smtpd,
 *       a full handshake); a ticket issued after the revoke resumes;
 *     - uninstall: exit 0; the command field is tlsmgr again, the entry gone, and master(8)
 *       runs /usr/lib/postfix/sbin/tlsmgr; uninstall again: "nothing to do".
 *   The durations of pack, install and the whole test are reported as diagnostics.
 *
 * LIMITS
 *   Needs root, Postfix, openssl, swaks, npm, a C/C++ toolchain, and either a filled npm
 *   cache or the npm registry. Without Postfix it is skipped with a loud message, except
 *   under CI=true where it fails. About 55-60 s on an otherwise idle 2-core machine (npm pack
 *   12 s, npm install -g 36 s: the native modules compiling, Postfix starting meanwhile),
 *   plus the steps run while ours serves (each tlsmgr-ctl call starts node; some 16 s
 *   measured with other test runs sharing the cores), longer when other test files share them.
 *   The counts hold for one client at a time: nothing else may connect to the resume
 *   service or send mail through the instance while a step is measured.
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
import { writeCold } from '../helpers/cold.js';
import {
  POSTFIX_DAEMON_DIR, REPO_ROOT, pollUntil, postfixAvailability, readGreeting, runCommand, runSClient, scriptIndex, startPostfix,
  tlsmgrProcesses, type PostfixInstance, type ProcInfo, type RunResult, type SClientResult,
} from '../helpers/postfix.js';
import { RESUME_TAG, parseMaillog, runStarttlsResume, starttlsResumeProblems, type StarttlsObservation } from './resume-scenarios.js';
import { DEFAULTS } from '../../src/config/load.js';
import { parseMainCf } from '../../src/config/maincf.js';
import { isExtensionName } from '../../src/config/tlsmgrcf.js';
import type { StatusReply } from '../../src/daemon/control-answers.js';

const NATIVE = 'better-sqlite3,fs-ext,posix,unix-dgram';
const POSTFIX_TLSMGR = join(POSTFIX_DAEMON_DIR, 'tlsmgr');
const POSTCONF = '/usr/sbin/postconf';

/* ------------------------------------------------------------------ */
/* tlsmgr.cf: every extension, a few of them visibly not at defaults   */
/* ------------------------------------------------------------------ */

const EXTENSIONS = Object.keys(DEFAULTS).filter(isExtensionName);

/**
 * The extensions given other values than their defaults, each visible from outside: the cache
 * limits in `status --json`, tlsmgr_stats_interval as "statistics:" lines in the maillog (every
 * 2 s instead of every hour). Every other extension is written with its default value.
 */
const NON_DEFAULT: Readonly<Record<string, string>> = {
  smtpd_tls_session_cache_max_entries: '5000',
  smtpd_tls_session_cache_max_size: '16777216',
  smtpd_tls_session_cache_max_entry_size: '32768',
  smtp_tls_session_cache_max_entries: '4000',
  smtp_tls_session_cache_max_size: '8388608',
  smtp_tls_session_cache_max_entry_size: '16384',
  tlsmgr_stats_interval: '2s',
};

function completeTlsmgrCf(): string {
  const lines = ['# every tlsmgr(8) extension (written by test/interop/ctl-install.test.ts)'];
  for (const name of EXTENSIONS) lines.push(`${name} = ${NON_DEFAULT[name] ?? String(DEFAULTS[name as keyof typeof DEFAULTS])}`);
  return `${lines.join('\n')}\n`;
}

/* ------------------------------------------------------------------ */
/* The counters: what smtpd asked, as the daemon shows it               */
/* ------------------------------------------------------------------ */

/** The cache types the instance enables (main.cf names smtpd's and smtp's database, not lmtp's). */
const COUNTED = ['smtpd', 'smtp'] as const;
const COUNTERS = ['lookups', 'hits', 'misses', 'updates'] as const;
type CacheCounts = Record<(typeof COUNTERS)[number], number>;
type Counts = Record<(typeof COUNTED)[number], CacheCounts>;

const ZERO: CacheCounts = { lookups: 0, hits: 0, misses: 0, updates: 0 };

/** Expected deltas: these smtpd counters (the others 0), and nothing at all in the smtp cache. */
function smtpdOnly(c: Partial<CacheCounts>): Counts {
  return { smtpd: { ...ZERO, ...c }, smtp: { ...ZERO } };
}

/** countsFromStatus - the counters of one `status --json` reply. */
function countsFromStatus(st: StatusReply): Counts {
  const out = {} as Counts;
  for (const type of COUNTED) {
    const c = st.caches[type];
    assert.equal(c.enabled, true, `status: the ${type} cache is enabled`);
    const counts = { ...ZERO };
    for (const name of COUNTERS) {
      const v = c[name];
      assert.ok(typeof v === 'number' && Number.isSafeInteger(v) && v >= 0, `status: caches.${type}.${name} = ${String(v)}`);
      counts[name] = v;
    }
    out[type] = counts;
  }
  return out;
}

/**
 * countsFromMetrics - the same counters from `tlsmgr-ctl metrics` (Prometheus text):
 * lookups = hit + miss samples of postfix_tlsmgr_cache_lookups_total, updates =
 * postfix_tlsmgr_cache_updates_total. Every sample must be there exactly once.
 */
function countsFromMetrics(text: string): Counts {
  const samples = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^(postfix_tlsmgr_cache_(?:lookups|updates)_total)\{([^}]*)\} (\S+)$/.exec(line);
    if (m === null) continue;
    const labels = m[2].split(',').sort().join(',');
    const key = `${m[1]}{${labels}}`;
    assert.ok(!samples.has(key), `metrics: ${key} twice`);
    samples.set(key, Number(m[3]));
  }
  const sample = (key: string): number => {
    const v = samples.get(key);
    assert.ok(v !== undefined && Number.isSafeInteger(v) && v >= 0, `metrics: ${key} = ${String(v)}\n${text}`);
    return v;
  };
  const out = {} as Counts;
  for (const type of COUNTED) {
    const hits = sample(`postfix_tlsmgr_cache_lookups_total{cache="${type}",result="hit"}`);
    const misses = sample(`postfix_tlsmgr_cache_lookups_total{cache="${type}",result="miss"}`);
    out[type] = { lookups: hits + misses, hits, misses, updates: sample(`postfix_tlsmgr_cache_updates_total{cache="${type}"}`) };
  }
  return out;
}

function countsDelta(before: Counts, after: Counts): Counts {
  const out = {} as Counts;
  for (const type of COUNTED) {
    const d = { ...ZERO };
    for (const name of COUNTERS) d[name] = after[type][name] - before[type][name];
    out[type] = d;
  }
  return out;
}

/**
 * smtpdLogCounts - the same counters as smtpd itself logs them at smtpd_tls_loglevel 2
 * (tls_server.c): one "looking up session <id> in smtpd cache" per lookup request, "reloaded
 * session <id> from smtpd cache" when the lookup found it, "save session <id> to smtpd cache" per
 * update request. An independent witness of what was asked, next to the daemon's own account.
 */
function smtpdLogCounts(log: string): CacheCounts {
  const lines = parseMaillog(log).filter((l) => l.tag === RESUME_TAG);
  const count = (re: RegExp): number => lines.filter((l) => re.test(l.text)).length;
  const lookups = count(/: looking up session \S+ in smtpd cache$/);
  const hits = count(/: reloaded session \S+ from smtpd cache$/);
  return { lookups, hits, misses: lookups - hits, updates: count(/: save session \S+ to smtpd cache$/) };
}

/** What one connection offering a saved session (s_client -sess_in) did. */
interface Offer {
  result: SClientResult;
  /** The maillog written meanwhile. */
  log: string;
  /** The smtpd that served it logged "initializing the server-side TLS engine": a fresh process, no keys of its own. */
  freshSmtpd: boolean;
}

/** offerSession - one STARTTLS connection to the resume service offering the session in sessFile. */
async function offerSession(inst: PostfixInstance, tls: '1.2' | '1.3', sessFile: string): Promise<Offer> {
  const mark = inst.logMark();
  const result = await runSClient({ port: inst.resumePort, tls, noTicket: tls === '1.2', sessIn: sessFile, timeoutMs: 30_000 });
  // smtpd logs "disconnect" last: the slice then has all its requests.
  await inst.waitForLog(/postfix\/resume\/smtpd\[\d+\]: disconnect from/, { since: mark, timeoutMs: 10_000 });
  const log = inst.readMaillog(mark);
  const lines = parseMaillog(log).filter((l) => l.tag === RESUME_TAG);
  const pid = lines.find((l) => l.text.startsWith('connect from '))?.pid;
  const freshSmtpd = pid !== undefined && lines.some((l) => l.pid === pid && l.text === 'initializing the server-side TLS engine');
  return { result, log, freshSmtpd };
}

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
    /* Set by the tests that make them, for the ones after. */
    let oursPid = 0;
    let tls12: StarttlsObservation | undefined;
    let tls13: StarttlsObservation | undefined;

    /** The last `status --json` reply, whoever asked for it. */
    let lastStatus: StatusReply | undefined;
    const status = async (): Promise<StatusReply> => {
      const r = await ctl('status', '--json');
      assert.equal(r.code, 0, show(r));
      lastStatus = JSON.parse(r.stdout) as StatusReply;
      return lastStatus;
    };

    /**
     * COUNT_VIEWS - every way the running daemon shows its counters: `status --json` and
     * `tlsmgr-ctl metrics`. Each must show exactly the requests smtpd made.
     */
    const COUNT_VIEWS: readonly { readonly name: string; read(): Promise<Counts> }[] = [
      { name: 'status --json', read: async () => countsFromStatus(await status()) },
      {
        name: 'metrics',
        read: async () => {
          const r = await ctl('metrics');
          assert.equal(r.code, 0, show(r));
          return countsFromMetrics(r.stdout);
        },
      },
    ];

    async function readViews(): Promise<Map<string, Counts>> {
      const out = new Map<string, Counts>();
      for (const v of COUNT_VIEWS) out.set(v.name, await v.read());
      return out;
    }

    interface Measured<T> {
      value: T;
      /** Per view, the counters after the scenario minus those before. */
      deltas: Map<string, Counts>;
    }

    /**
     * counting - read every count view now; each step(scenario) runs a scenario and gives the
     * deltas since the previous reading (one reading per step: what happens between two steps,
     * a flush or a revoke, must not count, and is checked to count nothing).
     */
    async function counting(): Promise<{ step<T>(scenario: () => Promise<T>): Promise<Measured<T>> }> {
      let previous = await readViews();
      return {
        async step<T>(scenario: () => Promise<T>): Promise<Measured<T>> {
          const value = await scenario();
          const now = await readViews();
          const deltas = new Map<string, Counts>();
          for (const [name, counts] of now) {
            const b = previous.get(name);
            assert.ok(b);
            deltas.set(name, countsDelta(b, counts));
          }
          previous = now;
          return { value, deltas };
        },
      };
    }

    /**
     * assertCounts - smtpd logged exactly the requests `want` says, and every view counted exactly
     * those: no request lost, none counted twice, none in another cache.
     */
    function assertCounts(m: Measured<unknown>, want: Counts, log: string, what: string): void {
      assert.deepEqual(smtpdLogCounts(log), want.smtpd, `${what}: smtpd's own log lines\n${log}`);
      for (const [view, delta] of m.deltas) assert.deepEqual(delta, want, `${what}: the counters of ${view}`);
    }

    /** The daemon master(8) started at install still serves: no restart emptied its caches or keys. */
    function sameDaemon(inst: PostfixInstance): void {
      assert.deepEqual(tlsmgrProcesses(inst).map((p) => p.pid), [oursPid], 'the node tlsmgr started at install still runs');
    }

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
          startPostfix({ tlsmgr: 'postfix', mainCf: { daemon_directory: daemonDir } }).then((i) => {
            inst = i;
            // Read by ours from its start (install); Postfix's own tlsmgr never reads it.
            writeCold(join(i.configDir, 'tlsmgr.cf'), completeTlsmgrCf());
          }),
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

    test('install: the entry, one changed field, a backup; master(8) runs node', async (t) => {
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
      oursPid = ours.pid;
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

    test('tlsmgr.cf holds every extension, main.cf none: postconf -n prints no warning; ours applies them', async () => {
      const i = ready();
      const main = parseMainCf(readFileSync(join(i.configDir, 'main.cf'), 'utf8'), 'main.cf');
      assert.deepEqual([...main.keys()].filter(isExtensionName), [], 'main.cf holds only Postfix parameters');
      const ext = parseMainCf(readFileSync(join(i.configDir, 'tlsmgr.cf'), 'utf8'), 'tlsmgr.cf');
      assert.deepEqual([...ext.keys()], EXTENSIONS);
      for (const [name, value] of Object.entries(NON_DEFAULT)) {
        assert.ok(EXTENSIONS.includes(name), `${name} is an extension`);
        assert.notEqual(value, String(DEFAULTS[name as keyof typeof DEFAULTS]), `${name} is not at its default`);
      }
      const pc = await runCommand(POSTCONF, ['-c', i.configDir, '-n'], { timeoutMs: 20_000 });
      assert.equal(pc.code, 0, show(pc));
      assert.match(pc.stdout, new RegExp(`^config_directory = ${i.configDir}$|^queue_directory = ${i.queueDir}$`, 'm'), show(pc));
      assert.equal(pc.stderr, '', 'postconf -n warns about nothing');
      // Negative control: one extension moved into a copy of main.cf is warned about.
      const scratch = join(work, 'postconf-control');
      mkdirSync(scratch);
      writeCold(join(scratch, 'main.cf'), `${readFileSync(join(i.configDir, 'main.cf'), 'utf8')}tlsmgr_stats_interval = 2s\n`);
      writeCold(join(scratch, 'master.cf'), readFileSync(join(i.configDir, 'master.cf'), 'utf8'));
      const bad = await runCommand(POSTCONF, ['-c', scratch, '-n'], { timeoutMs: 20_000 });
      assert.match(bad.stderr, /warning: .*main\.cf: unused parameter: tlsmgr_stats_interval=2s/, show(bad));

      // Ours (master(8)'s, the one started at install) read tlsmgr.cf: the limits...
      const st = await status();
      assert.deepEqual([st.pid, st.mode], [oursPid, 'master']);
      for (const type of COUNTED) {
        assert.deepEqual(st.caches[type].limits, {
          maxEntries: Number(NON_DEFAULT[`${type}_tls_session_cache_max_entries`]),
          maxSize: Number(NON_DEFAULT[`${type}_tls_session_cache_max_size`]),
          maxEntrySize: Number(NON_DEFAULT[`${type}_tls_session_cache_max_entry_size`]),
        }, `status: ${type} limits from tlsmgr.cf`);
      }
      // ...and tlsmgr_stats_interval: a statistics line from it within seconds (by default, an hour).
      await i.waitForLog(new RegExp(`\\[${oursPid}\\]: statistics: smtpd TLS session cache: entries=\\d+ `),
        { since: i.logMark(), timeoutMs: 10_000 });
      sameDaemon(i);
    });

    // The expected counts below follow from Postfix 3.7's smtpd (tls_server.c) over OpenSSL 3:
    // smtpd asks tlsmgr "lookup" only when a ClientHello offers a TLS 1.2 session id
    // (get_server_session_cb), and "update" when OpenSSL hands it a new session
    // (new_server_session_cb); TLS 1.3 tickets go through "tktkey", which the cache counters
    // do not count. Nothing here makes the smtp client connect, so the smtp cache stays at 0.
    test('TLS 1.2 session-id resumption through ours; status and metrics count one update and one hit', async () => {
      const i = ready();
      const m = await (await counting()).step(() => runStarttlsResume(i, '1.2'));
      tls12 = m.value;
      assert.deepEqual(starttlsResumeProblems(m.value), [], `TLS 1.2 resumption through the installed tlsmgr:\n${m.value.log}`);
      // The first connection offers no id (no lookup) and makes a full handshake: 1 update.
      // The second offers that id: 1 lookup, found (hit), and a resumed session is not new: no update.
      assertCounts(m, smtpdOnly({ lookups: 1, hits: 1, updates: 1 }), m.value.log, 'TLS 1.2 resumption');
      sameDaemon(i);
    });

    // TLS 1.3: a full handshake ends with smtpd issuing a stateless ticket ("Issuing session
    // ticket"), and OpenSSL calls the new-session callback for the session it sent (spec 6.5):
    // 1 update, an entry never looked up. A resumed handshake (the ticket decrypted, its key
    // still fresh, so smtpd's ticket callback asks for no renewal) sends no new ticket: no
    // update. A TLS 1.3 server resumes only from the ticket (PSK) and never looks up the
    // ClientHello's legacy session id: no lookup either way.
    const TLS13_FULL = smtpdOnly({ updates: 1 });
    const TLS13_RESUMED = smtpdOnly({});

    test('TLS 1.3 ticket resumption through ours; status and metrics count the one update of the full handshake', async () => {
      const i = ready();
      const m = await (await counting()).step(() => runStarttlsResume(i, '1.3'));
      tls13 = m.value;
      assert.deepEqual(starttlsResumeProblems(m.value), [], `TLS 1.3 resumption through the installed tlsmgr:\n${m.value.log}`);
      assertCounts(m, TLS13_FULL, m.value.log, 'TLS 1.3 resumption');
      sameDaemon(i);
    });

    test('flush smtpd: a TLS 1.2 session id that resumed before the flush misses after it', async () => {
      const i = ready();
      assert.ok(tls12, 'the TLS 1.2 scenario ran');
      const sessFile = tls12.sessionFile;
      const saved = /: save session (\S+) to smtpd cache$/m.exec(tls12.log.split('\n').filter((l) => l.includes(RESUME_TAG)).join('\n'));
      assert.ok(saved, tls12.log);
      const cacheId = saved[1];
      const lookedUp = `looking up session ${cacheId} in smtpd cache`;
      const reloaded = `reloaded session ${cacheId} from smtpd cache`;

      // Negative control: right before the flush the stored id still resumes (a lookup hit).
      const c = await counting();
      const pre = await c.step(() => offerSession(i, '1.2', sessFile));
      assert.ok(pre.value.result.reused, `before the flush the id resumes:\n${pre.value.result.output}`);
      assert.ok(pre.value.log.includes(reloaded), pre.value.log);
      assertCounts(pre, smtpdOnly({ lookups: 1, hits: 1 }), pre.value.log, 'the id offered before the flush');

      const stored = lastStatus?.caches.smtpd.entries;
      assert.ok(stored !== undefined && stored >= 1, `entries before the flush: ${String(stored)}`);
      const f = await ctl('flush', 'smtpd');
      assert.equal(f.code, 0, show(f));
      assert.equal(f.stdout, `flushed smtpd TLS session cache: ${stored} entries removed\n`, show(f));

      // After it: looked up, not found (a miss), a full handshake, whose new session is stored (update).
      const post = await c.step(() => offerSession(i, '1.2', sessFile));
      assert.ok(!post.value.result.reused && /^New, TLSv1\.2,/m.test(post.value.result.output),
        `after the flush the id does not resume:\n${post.value.result.output}`);
      assert.ok(post.value.log.includes(lookedUp) && !post.value.log.includes(reloaded), post.value.log);
      assertCounts(post, smtpdOnly({ lookups: 1, misses: 1, updates: 1 }), post.value.log, 'the id offered after the flush');
      assert.equal(lastStatus?.caches.smtpd.entries, 1, 'only the session made after the flush');
      sameDaemon(i);
    });

    // The keys live in ours only (no restart here: `postfix reload` would restart ours under
    // master(8), which alone forgets every key, and this check would then pass even if revoke did
    // nothing). smtpd processes keep their own copy of the keys they fetched (tls_mgr_key()), so an
    // operator follows a revoke with `postfix reload`; here every connection is served by a fresh
    // smtpd (the resume service has max_use=1; offerSession() checks it), which has no key of its
    // own and must ask ours by the ticket's key name.
    test('keys revoke: a TLS 1.3 ticket issued before no longer resumes; one issued after does', async () => {
      const i = ready();
      assert.ok(tls13, 'the TLS 1.3 scenario ran');
      const ticket = tls13.sessionFile;
      // Negative control: right before the revoke the ticket still resumes.
      const c = await counting();
      const pre = await c.step(() => offerSession(i, '1.3', ticket));
      assert.ok(pre.value.result.reused && pre.value.freshSmtpd, `before the revoke the ticket resumes:\n${pre.value.result.output}\n${pre.value.log}`);
      assertCounts(pre, TLS13_RESUMED, pre.value.log, 'the ticket offered before the revoke');

      const r = await ctl('keys', 'revoke');
      assert.equal(r.code, 0, show(r));
      assert.match(r.stdout, /^ticket keys revoked\n/, show(r));

      const old = await c.step(async () => {
        const keys = (await status()).ticketKeys;
        assert.deepEqual([keys.count, keys.current], [0, null], `no key left: ${JSON.stringify(keys)}`);
        return offerSession(i, '1.3', ticket);
      });
      assert.ok(old.value.freshSmtpd, `a fresh smtpd served the old ticket:\n${old.value.log}`);
      assert.ok(!old.value.result.reused && /^New, TLSv1\.3,/m.test(old.value.result.output),
        `after the revoke the old ticket does not resume:\n${old.value.result.output}`);
      assert.doesNotMatch(old.value.log, /Reusing old session|Decrypting session ticket/, old.value.log);
      // Its key name unknown to ours, smtpd falls back to a full handshake and a new ticket.
      assertCounts(old, TLS13_FULL, old.value.log, 'the ticket offered after the revoke');

      const fresh = await c.step(() => runStarttlsResume(i, '1.3'));
      assert.deepEqual(starttlsResumeProblems(fresh.value), [], `a ticket issued after the revoke resumes:\n${fresh.value.log}`);
      assertCounts(fresh, TLS13_FULL, fresh.value.log, 'a ticket made and resumed after the revoke');
      sameDaemon(i);
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
