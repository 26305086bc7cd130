/*
 * NAME
 *   postfix - a throw-away real Postfix instance for interop tests
 *
 * SYNOPSIS
 *   postfixAvailability(): Availability
 *   startPostfix(options): Promise<PostfixInstance>
 *   startOurTlsmgr(instance, options?): Promise<OurTlsmgr>
 *   startSClient(options) / runSClient(options): openssl s_client -starttls smtp
 *   sendMail(options): swaks, one plain-text message (STARTTLS with options.tls)
 *   freePort(host?) / portIsFree(host, port) / commonFreePort(hosts): TCP port probes
 *   runCommand(cmd, args, options): bounded child process run
 *   postfixCommand(instance, 'reload' | 'stop'): `postfix -c DIR <cmd>`, bounded
 *   tlsmgrProcesses(instance): the tlsmgr processes master(8) runs, from /proc
 *   instanceProcesses(instance): every process whose command line names the instance
 *
 * DESCRIPTION
 *   startPostfix() builds a self-contained Postfix (Debian's 3.7 binaries) in a
 *   mkdtemp() directory: its own config directory (generated main.cf and a
 *   minimal master.cf, every service chroot "n"), queue and data directories, a
 *   self-signed certificate, and maillog_file (through postlogd) in that
 *   directory. It listens on one address only (options.address, default
 *   127.0.0.1; any 127.0.0.0/8 address works on Linux), on two free ports
 *   (master.cf services "<address>:<port>"; inet_interfaces stays 127.0.0.1,
 *   as Postfix insists that it names an address of a local interface):
 *     resumePort  smtpd -o max_use=1 (each connection gets a fresh smtpd)
 *     sinkPort    smtpd -o max_use=1 -o content_filter=discard:dummy; the
 *                 relayhost, so mail relayed there is discarded (no loop)
 *   The smtp client relays everything to the sink with TLS required and no
 *   connection caching, so every message is one new TCP+TLS connection.
 *
 *   Several instances as one cluster (hosts behind a load balancer): smtpd's
 *   TLS 1.2 cache_id ends in "&s=<service name>", so instances can share
 *   sessions only when their smtpd services have the same name, as real
 *   hosts do (all "smtp"). The name is master.cf's service field, here
 *   "<address>:<port>", which differs per address; options.resumeServiceName
 *   gives smtpd another one: master.cf passes "-n <name>" after master's own
 *   "-n <address>:<port>", and the last -n wins (single_server's getopt).
 *   options.resumePort fixes the port (the same on every instance). Each
 *   instance keeps its own certificate: resumption does not send it again.
 *
 *   The tlsmgr service is chosen with options.tlsmgr:
 *     "ours"     master.cf line commented out; startOurTlsmgr() runs
 *                `node bin/tlsmgr` standalone (MAIL_CONFIG=<config dir>),
 *                which serves $queue_directory/private/tlsmgr itself.
 *     "postfix"  the real `tlsmgr unix - - n 1000? 1 tlsmgr` (harness control).
 *     "none"     commented out, nothing serves the socket (negative control).
 *     "ours-master"  master(8) spawns our daemon: daemon_directory is a
 *                directory of symlinks to every file of Debian's
 *                /usr/lib/postfix/sbin, except tlsmgr -> <repo>/bin/tlsmgr
 *                (options.tlsmgrBin), and master.cf has Debian's stock line
 *                `tlsmgr unix - - y 1000? 1 tlsmgr` (chroot y, unprivileged),
 *                so master runs it as `tlsmgr -l -t unix -u -c`.
 *
 *   The instance reads its maillog (readMaillog, logMark + since offsets,
 *   waitForLog / waitForLogCount: bounded polls). instance.stop() runs
 *   `postfix stop`, kills whatever is left of master's process group by pid,
 *   then stops our daemon (SIGTERM, SIGKILL after 5 s) and removes the
 *   directory (kept when TLSMGR_INTEROP_KEEP=1, for debugging). A process
 *   'exit' hook does the killing for instances never stopped.
 *
 * LIMITS
 *   Needs root (master(8) drops to mail_owner "postfix") and the Debian
 *   packages postfix, openssl and swaks. Linux only (/proc is read to find
 *   leftover processes). Every wait here is bounded in time and in count.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, chmodSync, constants as fsConstants, existsSync, mkdirSync, mkdtempSync, readdirSync,
  readFileSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, connect as netConnect, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const POSTFIX_BIN = '/usr/sbin/postfix';
export const OPENSSL_BIN = '/usr/bin/openssl';
export const SWAKS_BIN = '/usr/bin/swaks';

/** The repository root: this file is compiled to dist/test/helpers/postfix.js. */
export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** Exactly what tlsmgr sends on every accepted connection (spec 1.6). */
export const TLSMGR_GREETING = Buffer.from('protocol\0tlsmgr_protocol\0\0', 'latin1');

export type TlsmgrMode = 'ours' | 'postfix' | 'none' | 'ours-master';

/** Debian's daemon_directory: mode "ours-master" links every file of it but tlsmgr. */
export const POSTFIX_DAEMON_DIR = '/usr/lib/postfix/sbin';

/* ------------------------------------------------------------------ */
/* Small bounded primitives                                            */
/* ------------------------------------------------------------------ */

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * pollUntil - call probe() until it returns a value other than undefined.
 * Bounded twice: by timeoutMs and by a maximum number of probes, so a clock
 * jump or a slow probe cannot make it spin for ever.
 */
export async function pollUntil<T>(
  probe: () => T | undefined | Promise<T | undefined>,
  opts: { timeoutMs: number; intervalMs?: number; what: string },
): Promise<T> {
  const interval = opts.intervalMs ?? 100;
  const maxProbes = Math.ceil(opts.timeoutMs / interval) + 1;
  const deadline = Date.now() + opts.timeoutMs;
  for (let i = 0; i < maxProbes; i++) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() >= deadline) break;
    await sleep(interval);
  }
  throw new Error(`timed out after ${opts.timeoutMs} ms waiting for ${opts.what}`);
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

/** runCommand - run a program to completion, SIGKILLed after timeoutMs. */
export function runCommand(
  cmd: string,
  args: readonly string[],
  opts: { timeoutMs: number; input?: string; env?: NodeJS.ProcessEnv; cwd?: string },
): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, {
      env: opts.env ?? process.env,
      cwd: opts.cwd,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    const timer = setTimeout(() => { timedOut = true; child.kill('SIGKILL'); }, opts.timeoutMs);
    child.on('error', (err) => { stderr += `spawn ${cmd}: ${err.message}\n`; });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, timedOut });
    });
    // A child that exits without reading stdin must not crash us with EPIPE.
    child.stdin.on('error', () => undefined);
    child.stdin.end(opts.input ?? '');
  });
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM means it exists but is not ours to signal; count it as alive.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Pids whose process group is pgid (read from /proc/<pid>/stat). */
function processGroupMembers(pgid: number): number[] {
  const out: number[] = [];
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return out;
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'latin1');
      // Field 2 (comm) is parenthesised and may contain spaces: parse after
      // the last ')'. The rest is: state ppid pgrp ...
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(rest[2]) === pgid) out.push(Number(e));
    } catch {
      // The process went away while we looked.
    }
  }
  return out;
}

/** freePort - bind port 0 on host (default 127.0.0.1), read the port, close. */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const port = (srv.address() as AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

/** portIsFree - can port be bound on host right now (bind, close)? */
export function portIsFree(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, host, () => srv.close(() => resolve(true)));
  });
}

/** commonFreePort - a port free on every one of hosts (at most 20 tries). */
export async function commonFreePort(hosts: readonly string[]): Promise<number> {
  for (let i = 0; i < 20; i++) {
    const p = await freePort(hosts[0]);
    let ok = true;
    for (const h of hosts.slice(1)) if (!(await portIsFree(h, p))) ok = false;
    if (ok) return p;
  }
  throw new Error(`could not find a TCP port free on all of ${hosts.join(', ')}`);
}

/* ------------------------------------------------------------------ */
/* Availability                                                        */
/* ------------------------------------------------------------------ */

export interface Availability {
  ok: boolean;
  reason: string;
}

/** postfixAvailability - can this machine run the interop tests at all? */
export function postfixAvailability(): Availability {
  for (const bin of [POSTFIX_BIN, OPENSSL_BIN, SWAKS_BIN]) {
    try {
      accessSync(bin, fsConstants.X_OK);
    } catch {
      return { ok: false, reason: `${bin} is missing (apt-get install -y postfix openssl swaks)` };
    }
  }
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    return { ok: false, reason: 'the Postfix interop tests must run as root (master(8) switches to mail_owner)' };
  }
  return { ok: true, reason: '' };
}

/* ------------------------------------------------------------------ */
/* Configuration                                                       */
/* ------------------------------------------------------------------ */

export const TEST_HOSTNAME = 'tlsmgr-test.localdomain';
/** Recipients in this domain are relayed to the sink listener and discarded there. */
export const RELAY_DOMAIN = 'example.com';

function mainCf(dir: string, p: { address: string; sinkPort: number }, extra: Readonly<Record<string, string>>): string {
  const params: Record<string, string> = {
    compatibility_level: '3.6',
    queue_directory: join(dir, 'queue'),
    data_directory: join(dir, 'data'),
    mail_owner: 'postfix',
    setgid_group: 'postdrop',
    myhostname: TEST_HOSTNAME,
    mydomain: 'localdomain',
    myorigin: '$myhostname',
    mydestination: '',
    // Postfix wants an address of a local interface here (127.0.0.2 is not one,
    // though Linux accepts it on lo): the listeners name their address instead.
    inet_interfaces: '127.0.0.1',
    inet_protocols: 'ipv4',
    mynetworks: '127.0.0.0/8',
    relayhost: `[${p.address}]:${p.sinkPort}`,
    alias_maps: '',
    alias_database: '',
    biff: 'no',
    // No postmaster notices: in the negative control smtpd would mail a
    // transcript for every failed STARTTLS, and those messages would then be
    // relayed to the sink and show up among the deliveries we count.
    notify_classes: '',
    smtputf8_enable: 'no',
    // Logging: all daemons log through postlogd into a file we can read.
    maillog_file: join(dir, 'maillog'),
    maillog_file_prefixes: dir,
    // TLS server side.
    smtpd_tls_security_level: 'may',
    smtpd_tls_cert_file: join(dir, 'tls', 'cert.pem'),
    smtpd_tls_key_file: join(dir, 'tls', 'key.pem'),
    smtpd_tls_loglevel: '2',
    smtpd_tls_session_cache_database: 'btree:${data_directory}/smtpd_scache',
    // TLS client side: TLS mandatory to the relayhost, and every message on
    // its own new TCP+TLS connection, so that only tlsmgr's cache can make
    // the second delivery resume.
    smtp_tls_security_level: 'encrypt',
    smtp_tls_loglevel: '2',
    smtp_tls_session_cache_database: 'btree:${data_directory}/smtp_scache',
    smtp_connection_cache_on_demand: 'no',
    smtp_connection_cache_destinations: '',
    smtp_tls_connection_reuse: 'no',
    // Tests are quick; keep retries from firing while we look.
    queue_run_delay: '300s',
    minimal_backoff_time: '300s',
    ...extra,
  };
  const lines = ['# Generated by test/helpers/postfix.ts', ''];
  for (const [k, v] of Object.entries(params)) lines.push(`${k} = ${v}`);
  return `${lines.join('\n')}\n`;
}

/** Debian's stock master.cf line for tlsmgr (chroot y); mode "ours-master" uses it unchanged. */
export const DEBIAN_TLSMGR_LINE = 'tlsmgr    unix  -       -       y       1000?   1       tlsmgr';

interface MasterCfPorts {
  address: string;
  resumePort: number;
  sinkPort: number;
  /** The name smtpd gets for the resume service (its -n), "<address>:<port>" by default. */
  resumeService: string;
}

function masterCf(mode: TlsmgrMode, p: MasterCfPorts, tlsmgrArgs: string): string {
  // service type private unpriv chroot wakeup maxproc command
  const tlsmgrLine = `tlsmgr    unix  -       -       n       1000?   1       tlsmgr${tlsmgrArgs}`;
  const tlsmgr = mode === 'ours-master' ? `# master(8) runs our daemon: $daemon_directory/tlsmgr -> bin/tlsmgr\n${DEBIAN_TLSMGR_LINE}${tlsmgrArgs}`
    : mode === 'postfix' ? tlsmgrLine
    : mode === 'ours' ? `# served by our daemon (node bin/tlsmgr), not by master(8):\n#${tlsmgrLine}`
      : `# negative control: nothing serves private/tlsmgr\n#${tlsmgrLine}`;
  return `# Generated by test/helpers/postfix.ts (tlsmgr mode: ${mode})
# service type  private unpriv  chroot  wakeup  maxproc command + args
${p.address}:${p.resumePort} inet n - n - - smtpd
  -o syslog_name=postfix/resume
  -o max_use=1${p.resumeService === `${p.address}:${p.resumePort}` ? '' : `
  -n ${p.resumeService}`}
${p.address}:${p.sinkPort} inet n - n - - smtpd
  -o syslog_name=postfix/sink
  -o max_use=1
  -o content_filter=discard:dummy
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
${tlsmgr}
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
showq     unix  n       -       n       -       -       showq
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
`;
}

/* ------------------------------------------------------------------ */
/* The instance                                                        */
/* ------------------------------------------------------------------ */

export interface StartPostfixOptions {
  tlsmgr: TlsmgrMode;
  /** Mode "postfix" only: add -v to the real tlsmgr, which then logs every request attribute. */
  tlsmgrVerbose?: boolean;
  /** Mode "ours-master": what $daemon_directory/tlsmgr links to (default <repo>/bin/tlsmgr). */
  tlsmgrBin?: string;
  /** Extra or overriding main.cf parameters. */
  mainCf?: Readonly<Record<string, string>>;
  /** Bound for `postfix start` plus the first maillog record (ms). */
  startTimeoutMs?: number;
  /** The one address it listens on and relays to (both listeners, relayhost); default 127.0.0.1. */
  address?: string;
  /** A fixed resume port (default: a free one). */
  resumePort?: number;
  /**
   * The service name smtpd gets for the resume service (default: its master.cf name,
   * "<address>:<port>"). Instances on different addresses share TLS 1.2 sessions only
   * with the same name: smtpd's cache_id ends in "&s=<name>".
   */
  resumeServiceName?: string;
}

export interface WaitForLogOptions {
  /** Only look at the maillog from this byte offset on (see logMark()). */
  since?: number;
  timeoutMs?: number;
}

export interface PostfixInstance {
  readonly mode: TlsmgrMode;
  readonly dir: string;
  readonly configDir: string;
  readonly queueDir: string;
  readonly dataDir: string;
  readonly maillogPath: string;
  readonly tlsmgrSocketPath: string;
  /** Mode "ours-master": the daemon_directory of symlinks; otherwise undefined (Debian's). */
  readonly daemonDir: string | undefined;
  /** The address it listens on: connect here, with resumePort or sinkPort. */
  readonly address: string;
  /** smtpd -o max_use=1 with STARTTLS; mail sent here is relayed to the sink. */
  readonly resumePort: number;
  /** smtpd's service name for resumePort (the "&s=" part of its TLS 1.2 cache_id). */
  readonly resumeService: string;
  /** smtpd -o max_use=1 -o content_filter=discard:dummy; the relayhost. */
  readonly sinkPort: number;
  readonly masterPid: number;
  /** Our daemon, once startOurTlsmgr() has started it. */
  ours: OurTlsmgr | undefined;
  /** The current maillog size: pass it as `since` to look only at newer records. */
  logMark(): number;
  readMaillog(since?: number): string;
  /** Resolve with the first match of re (in the maillog from `since`), bounded wait. */
  waitForLog(re: RegExp, opts?: WaitForLogOptions): Promise<RegExpMatchArray>;
  /** Resolve once the maillog (from `since`) has at least `count` matches of re (global). */
  waitForLogCount(re: RegExp, count: number, opts?: WaitForLogOptions): Promise<RegExpMatchArray[]>;
  /** The last `lines` maillog lines, for assertion messages. */
  maillogTail(lines?: number, since?: number): string;
  stop(): Promise<void>;
}

/**
 * Instances not stopped yet. If the test process exits without stopping one
 * (a crash, an uncaught error), the 'exit' handler kills master's process
 * group and our daemon by pid and removes the directory, so no Postfix is
 * left listening on the machine.
 */
const live = new Set<PostfixInstance>();
let exitHookInstalled = false;

function trackInstance(inst: PostfixInstance): void {
  live.add(inst);
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const i of live) {
      // master(8) called setsid(): its pid is the process group of the whole instance.
      try { process.kill(-i.masterPid, 'SIGKILL'); } catch { /* gone */ }
      try { i.ours?.child.kill('SIGKILL'); } catch { /* gone */ }
      try { removeDir(i.dir); } catch { /* best effort */ }
    }
  });
}

/**
 * startPostfix - build and start a private Postfix instance. A free port can
 * be taken by someone else between our probe and master's bind(); that one
 * case is retried once with new ports.
 */
export async function startPostfix(opts: StartPostfixOptions): Promise<PostfixInstance> {
  const avail = postfixAvailability();
  if (!avail.ok) throw new Error(`cannot start Postfix: ${avail.reason}`);
  for (let attempt = 1; ; attempt++) {
    try {
      const inst = await startPostfixOnce(opts);
      trackInstance(inst);
      return inst;
    } catch (err) {
      if (attempt >= 2 || !/Address already in use/.test((err as Error).message)) throw err;
    }
  }
}

async function startPostfixOnce(opts: StartPostfixOptions): Promise<PostfixInstance> {
  const dir = mkdtempSync(join(tmpdir(), 'tlsmgr-interop-'));
  // mkdtemp gives 0700; Postfix daemons run as "postfix" and chdir into the
  // queue directory below it, so the path must be traversable.
  chmodSync(dir, 0o755);
  const configDir = join(dir, 'etc');
  const queueDir = join(dir, 'queue');
  const dataDir = join(dir, 'data');
  const tlsDir = join(dir, 'tls');
  const maillogPath = join(dir, 'maillog');
  mkdirSync(configDir, { mode: 0o755 });
  mkdirSync(tlsDir, { mode: 0o755 });
  // postfix(1) chdir()s into the queue directory before anything else;
  // `postfix check` then creates the queue tree and the data directory.
  mkdirSync(queueDir, { mode: 0o755 });

  let masterPid = 0;
  const ctx = { dir, configDir, masterPid: (): number => masterPid };
  try {
    const address = opts.address ?? '127.0.0.1';
    const fixed = opts.resumePort;
    const ports = await distinctFreePorts(fixed === undefined ? 2 : 1, address, fixed === undefined ? [] : [fixed]);
    const [resumePort, sinkPort] = fixed === undefined ? ports : [fixed, ports[0]];
    const resumeService = opts.resumeServiceName ?? `${address}:${resumePort}`;
    if (!/^[\w.:-]+$/.test(resumeService)) throw new Error(`resumeServiceName ${JSON.stringify(resumeService)}: not a service name`);
    const cert = await runCommand(OPENSSL_BIN, [
      'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2',
      '-subj', `/CN=${TEST_HOSTNAME}`,
      '-keyout', join(tlsDir, 'key.pem'), '-out', join(tlsDir, 'cert.pem'),
    ], { timeoutMs: 20_000 });
    if (cert.code !== 0) throw new Error(`openssl req failed (${String(cert.code)}): ${cert.stderr}`);
    chmodSync(join(tlsDir, 'key.pem'), 0o600);

    let daemonDir: string | undefined;
    const extraMainCf: Record<string, string> = { ...opts.mainCf };
    if (opts.tlsmgr === 'ours-master') {
      daemonDir = makeDaemonDir(dir, opts.tlsmgrBin ?? join(REPO_ROOT, 'bin', 'tlsmgr'));
      extraMainCf.daemon_directory = daemonDir;
    }
    writeFileSync(join(configDir, 'main.cf'), mainCf(dir, { address, sinkPort }, extraMainCf));
    writeFileSync(join(configDir, 'master.cf'),
      masterCf(opts.tlsmgr, { address, resumePort, sinkPort, resumeService }, opts.tlsmgrVerbose ? ' -v' : ''));

    // postfix-script checks every daemon_directory link: about 10 s idle, much more on a loaded machine.
    const timeoutMs = opts.startTimeoutMs ?? 90_000;
    // `postfix start` runs `postfix check` (creates the queue tree and the
    // data directory) and then `master -w`, which returns once master is up.
    const env = { ...process.env, MAIL_CONFIG: configDir };
    const start = await runCommand(POSTFIX_BIN, ['-c', configDir, 'start'], { timeoutMs, env });
    masterPid = readMasterPid(queueDir);
    if (start.code !== 0 || start.timedOut) {
      throw new Error(`postfix -c ${configDir} start failed (exit ${String(start.code)}` +
        `${start.timedOut ? ', timed out' : ''}): ${start.stdout}${start.stderr}`);
    }
    if (masterPid === 0) throw new Error(`postfix started but ${queueDir}/pid/master.pid is unreadable`);

    const inst = makeInstance({
      mode: opts.tlsmgr, dir, configDir, queueDir, dataDir, maillogPath,
      address, resumePort, resumeService, sinkPort, masterPid, daemonDir,
    });
    // Check that logging through postlogd into maillog_file works at all;
    // every assertion of the suite depends on it.
    await inst.waitForLog(/postfix\/master\[\d+\]: daemon started/, { timeoutMs }).catch((err: unknown) => {
      throw new Error(`postfix started but nothing reached ${maillogPath}: ${(err as Error).message}\n` +
        `postfix start output: ${start.stdout}${start.stderr}`);
    });
    return inst;
  } catch (err) {
    // master's own fatal errors (bind() failures...) are only in the maillog.
    let log = '';
    try { log = readFileSync(maillogPath, 'utf8').split('\n').slice(-20).join('\n'); } catch { /* none */ }
    await stopPostfixQuietly(ctx);
    if (log && err instanceof Error) err.message += `\n--- maillog tail ---\n${log}`;
    throw err;
  }
}

/**
 * makeDaemonDir - <dir>/libexec: a symlink to every file of Debian's daemon directory, and
 * tlsmgr -> bin (master(8) executes $daemon_directory/<command>). Everything stays owned by
 * root, as `postfix check` wants.
 */
function makeDaemonDir(dir: string, bin: string): string {
  if (!existsSync(bin)) throw new Error(`our daemon ${bin} does not exist (not built yet?)`);
  const daemonDir = join(dir, 'libexec');
  mkdirSync(daemonDir, { mode: 0o755 });
  for (const name of readdirSync(POSTFIX_DAEMON_DIR)) {
    if (name !== 'tlsmgr') symlinkSync(join(POSTFIX_DAEMON_DIR, name), join(daemonDir, name));
  }
  symlinkSync(bin, join(daemonDir, 'tlsmgr'));
  return daemonDir;
}

async function distinctFreePorts(n: number, host: string, exclude: readonly number[]): Promise<number[]> {
  const ports: number[] = [];
  for (let i = 0; i < n * 10 && ports.length < n; i++) {
    const p = await freePort(host);
    if (!ports.includes(p) && !exclude.includes(p)) ports.push(p);
  }
  if (ports.length < n) throw new Error(`could not find free TCP ports on ${host}`);
  return ports;
}

function readMasterPid(queueDir: string): number {
  try {
    const n = Number.parseInt(readFileSync(join(queueDir, 'pid', 'master.pid'), 'latin1').trim(), 10);
    return Number.isInteger(n) && n > 1 ? n : 0;
  } catch {
    return 0;
  }
}

interface InstanceFields {
  mode: TlsmgrMode;
  dir: string;
  configDir: string;
  queueDir: string;
  dataDir: string;
  maillogPath: string;
  address: string;
  resumePort: number;
  resumeService: string;
  sinkPort: number;
  masterPid: number;
  daemonDir: string | undefined;
}

function makeInstance(f: InstanceFields): PostfixInstance {
  const readMaillog = (since = 0): string => {
    let buf: Buffer;
    try {
      buf = readFileSync(f.maillogPath);
    } catch {
      return '';
    }
    return buf.subarray(Math.min(since, buf.length)).toString('utf8');
  };
  let stopped = false;
  const inst: PostfixInstance = {
    ...f,
    tlsmgrSocketPath: join(f.queueDir, 'private', 'tlsmgr'),
    ours: undefined,
    logMark(): number {
      try {
        return statSync(f.maillogPath).size;
      } catch {
        return 0;
      }
    },
    readMaillog,
    async waitForLog(re: RegExp, o: WaitForLogOptions = {}): Promise<RegExpMatchArray> {
      const plain = new RegExp(re.source, re.flags.replace('g', ''));
      return pollUntil(() => readMaillog(o.since).match(plain) ?? undefined, {
        timeoutMs: o.timeoutMs ?? 15_000,
        what: `${String(re)} in ${f.maillogPath}\n--- maillog tail ---\n${inst.maillogTail(40, o.since)}`,
      });
    },
    async waitForLogCount(re: RegExp, count: number, o: WaitForLogOptions = {}): Promise<RegExpMatchArray[]> {
      const global = new RegExp(re.source, re.flags.includes('g') ? re.flags : `${re.flags}g`);
      return pollUntil(() => {
        const all = [...readMaillog(o.since).matchAll(global)];
        return all.length >= count ? all : undefined;
      }, {
        timeoutMs: o.timeoutMs ?? 15_000,
        what: `${count} x ${String(re)} in ${f.maillogPath}\n--- maillog tail ---\n${inst.maillogTail(40, o.since)}`,
      });
    },
    maillogTail(lines = 40, since = 0): string {
      return readMaillog(since).split('\n').slice(-lines - 1).join('\n');
    },
    async stop(): Promise<void> {
      if (stopped) return;
      stopped = true;
      live.delete(inst);
      // Postfix first, so that no smtpd is left talking to a vanished tlsmgr.
      await stopPostfixQuietly({ dir: f.dir, configDir: f.configDir, masterPid: () => f.masterPid, keepDir: true });
      if (inst.ours) await inst.ours.stop();
      removeDir(f.dir);
    },
  };
  return inst;
}

function removeDir(dir: string): void {
  if (process.env.TLSMGR_INTEROP_KEEP === '1') {
    console.error(`postfix helper: keeping ${dir} (TLSMGR_INTEROP_KEEP=1)`);
    return;
  }
  rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
}

/**
 * stopPostfixQuietly - `postfix stop`, then make sure nothing of this
 * instance is left: master(8) runs in its own session, so every daemon it
 * spawned is in the process group whose id is master's pid.
 */
async function stopPostfixQuietly(ctx: {
  dir: string; configDir: string; masterPid: () => number; keepDir?: boolean;
}): Promise<void> {
  const pid = ctx.masterPid();
  if (pid > 0 && isAlive(pid)) {
    // postfix-script waits up to 5 s itself; our bound is above that.
    await runCommand(POSTFIX_BIN, ['-c', ctx.configDir, 'stop'], {
      timeoutMs: 15_000, env: { ...process.env, MAIL_CONFIG: ctx.configDir },
    });
    await pollUntil(() => (isAlive(pid) ? undefined : true), {
      timeoutMs: 5_000, what: `master pid ${pid} to exit`,
    }).catch(() => {
      try { process.kill(pid, 'SIGKILL'); } catch { /* already gone */ }
    });
  }
  if (pid > 0) {
    // Children are SIGTERMed by master on the way out; kill any straggler.
    const left = await pollUntil(() => {
      const members = processGroupMembers(pid);
      return members.length === 0 ? [] : undefined;
    }, { timeoutMs: 3_000, what: `process group ${pid} to empty` }).catch(() => processGroupMembers(pid));
    for (const p of left) {
      try { process.kill(p, 'SIGKILL'); } catch { /* gone */ }
    }
  }
  if (!ctx.keepDir) removeDir(ctx.dir);
}

/* ------------------------------------------------------------------ */
/* Controlling master(8) and looking at its processes                  */
/* ------------------------------------------------------------------ */

/** postfixCommand - `postfix -c <config dir> <cmd>` (reload, stop, ...), bounded. */
export function postfixCommand(inst: PostfixInstance, cmd: string, timeoutMs = 15_000): Promise<RunResult> {
  return runCommand(POSTFIX_BIN, ['-c', inst.configDir, cmd], {
    timeoutMs, env: { ...process.env, MAIL_CONFIG: inst.configDir },
  });
}

export interface ProcInfo {
  pid: number;
  /** /proc/<pid>/cmdline split at NULs. */
  argv: string[];
  /** Real, effective, saved, filesystem uid and gid (/proc/<pid>/status). */
  uids: number[];
  gids: number[];
  /** readlink /proc/<pid>/root, cwd and exe ('' when unreadable). */
  root: string;
  cwd: string;
  exe: string;
}

function readLinkOr(path: string): string {
  try {
    return readlinkSync(path);
  } catch {
    return '';
  }
}

/** procInfo - what /proc says about a process, or undefined once it is gone. */
export function procInfo(pid: number): ProcInfo | undefined {
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter((a, i, all) => a !== '' || i < all.length - 1);
    const status = readFileSync(`/proc/${pid}/status`, 'latin1');
    const ids = (name: string): number[] =>
      (new RegExp(`^${name}:\\s+(.*)$`, 'm').exec(status)?.[1] ?? '').trim().split(/\s+/).map(Number);
    return {
      pid, argv, uids: ids('Uid'), gids: ids('Gid'),
      root: readLinkOr(`/proc/${pid}/root`), cwd: readLinkOr(`/proc/${pid}/cwd`), exe: readLinkOr(`/proc/${pid}/exe`),
    };
  } catch {
    return undefined;
  }
}

/**
 * tlsmgrProcesses - the processes of master's process group that run tlsmgr: argv[0] (a
 * Postfix binary) or, for a script run through `#!/usr/bin/env node`, argv[1] is
 * $daemon_directory/tlsmgr. Zombies (empty cmdline) are left out.
 */
export function tlsmgrProcesses(inst: PostfixInstance): ProcInfo[] {
  const out: ProcInfo[] = [];
  for (const pid of processGroupMembers(inst.masterPid)) {
    const p = procInfo(pid);
    if (!p || p.argv.length === 0) continue;
    const script = p.argv[scriptIndex(p.argv)] ?? '';
    if ([p.argv[0], script].some((a) => a === 'tlsmgr' || a.endsWith('/tlsmgr'))) out.push(p);
  }
  return out;
}

/**
 * scriptIndex - where the script is in an interpreter's argv: the first argument after
 * argv[0] that is not an option (bin/tlsmgr's #! line gives node options before it).
 */
export function scriptIndex(argv: readonly string[]): number {
  for (let i = 1; i < argv.length; i++) if (!argv[i].startsWith('-')) return i;
  return argv.length;
}

/** instanceProcesses - every process (any group) whose command line mentions the instance directory. */
export function instanceProcesses(inst: PostfixInstance): ProcInfo[] {
  const out: ProcInfo[] = [];
  let entries: string[] = [];
  try {
    entries = readdirSync('/proc');
  } catch {
    return out;
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
    const p = procInfo(Number(e));
    if (p && p.argv.some((a) => a.includes(inst.dir))) out.push(p);
  }
  return out;
}

/** processGroupOf - the pids of a process group (exported for the "nothing left" checks). */
export function processGroupOf(pgid: number): number[] {
  return processGroupMembers(pgid);
}

/* ------------------------------------------------------------------ */
/* Our daemon                                                          */
/* ------------------------------------------------------------------ */

export interface OurTlsmgr {
  readonly pid: number;
  readonly child: ChildProcess;
  /** Everything the daemon wrote to stderr (its log in standalone mode). */
  stderr(): string;
  stop(): Promise<void>;
}

export interface StartOurTlsmgrOptions {
  /** Default: <repo>/bin/tlsmgr. */
  bin?: string;
  /** Bound for "accepts a connection and sends the greeting" (ms). */
  timeoutMs?: number;
  /** Extra environment. */
  env?: NodeJS.ProcessEnv;
}

/**
 * startOurTlsmgr - spawn `node bin/tlsmgr` (no arguments: standalone mode)
 * with MAIL_CONFIG=<instance config dir> and wait until it accepts a
 * connection on private/tlsmgr and sends the 26-byte greeting. Errors start
 * with "our daemon did not start" so a missing daemon is easy to tell apart
 * from a resumption failure.
 */
export async function startOurTlsmgr(inst: PostfixInstance, o: StartOurTlsmgrOptions = {}): Promise<OurTlsmgr> {
  const bin = o.bin ?? join(REPO_ROOT, 'bin', 'tlsmgr');
  const fail = (why: string): Error => new Error(`our daemon did not start: ${why}`);
  if (!existsSync(bin)) throw fail(`${bin} does not exist (not written or not built yet)`);
  if (existsSync(inst.tlsmgrSocketPath)) {
    throw fail(`${inst.tlsmgrSocketPath} already exists; is something else serving it?`);
  }
  const child = spawn(process.execPath, [bin], {
    env: { ...process.env, ...o.env, MAIL_CONFIG: inst.configDir },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  let exited: string | undefined;
  child.stdout?.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
  child.stderr?.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
  child.on('error', (err) => { exited = `spawn error: ${err.message}`; });
  child.on('exit', (code, signal) => { exited = `exited (code ${String(code)}, signal ${String(signal)})`; });

  const ours: OurTlsmgr = {
    pid: child.pid ?? 0,
    child,
    stderr: () => stderr,
    async stop(): Promise<void> {
      if (exited !== undefined || child.exitCode !== null || child.signalCode !== null) return;
      const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGTERM');
      const t = await Promise.race([gone.then(() => 'exited'), sleep(5_000).then(() => 'timeout')]);
      if (t === 'timeout') {
        child.kill('SIGKILL');
        await Promise.race([gone, sleep(2_000)]);
      }
    },
  };
  const timeoutMs = o.timeoutMs ?? 15_000;
  try {
    await pollUntil(async () => {
      if (exited !== undefined) throw fail(`${bin} ${exited}\n--- its stderr ---\n${stderr}`);
      return (await readGreeting(inst.tlsmgrSocketPath, 1_000)) ? true : undefined;
    }, { timeoutMs, intervalMs: 100, what: `the greeting on ${inst.tlsmgrSocketPath}` });
  } catch (err) {
    await ours.stop();
    const msg = (err as Error).message;
    throw msg.startsWith('our daemon did not start') ? err
      : fail(`${msg}\n--- its stderr ---\n${stderr}`);
  }
  inst.ours = ours;
  return ours;
}

/**
 * readGreeting - connect to a tlsmgr socket and check that the first bytes
 * are exactly the greeting. false on any failure (not listening yet, wrong
 * bytes, timeout).
 */
export function readGreeting(path: string, timeoutMs: number): Promise<boolean> {
  return greetedSocket(path, timeoutMs).then((sock) => {
    sock?.destroy();
    return sock !== null;
  });
}

/**
 * greetedSocket - connect to a tlsmgr socket; the open socket once exactly the greeting
 * arrived, or null (closed, wrong bytes, timeout; the socket is then destroyed).
 */
export function greetedSocket(path: string, timeoutMs: number): Promise<Socket | null> {
  return new Promise((resolve) => {
    let got = Buffer.alloc(0);
    let done = false;
    const sock = netConnect(path);
    const finish = (ok: boolean): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (!ok) sock.destroy();
      resolve(ok ? sock : null);
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    sock.on('error', () => finish(false));
    sock.on('close', () => finish(false));
    sock.on('data', (d: Buffer) => {
      got = Buffer.concat([got, d]);
      if (got.length >= TLSMGR_GREETING.length) finish(got.subarray(0, TLSMGR_GREETING.length).equals(TLSMGR_GREETING));
    });
  });
}

/* ------------------------------------------------------------------ */
/* openssl s_client                                                    */
/* ------------------------------------------------------------------ */

export interface SClientOptions {
  /** Default 127.0.0.1. */
  host?: string;
  port: number;
  tls: '1.2' | '1.3';
  /** -no_ticket: TLS 1.2 session-id resumption instead of tickets. */
  noTicket?: boolean;
  sessOut?: string;
  sessIn?: string;
  /** Bound for the whole run (ms); the process is SIGKILLed after it. */
  timeoutMs?: number;
}

export interface SClientResult {
  output: string;
  code: number | null;
  timedOut: boolean;
  /** "New," was printed: a full handshake. */
  isNew: boolean;
  /** "Reused," was printed: the session was resumed. */
  reused: boolean;
}

export interface SClientSession {
  readonly child: ChildProcess;
  output(): string;
  /** The process has exited (for instance because the handshake failed). */
  hasExited(): boolean;
  /** Bounded wait for a pattern in stdout+stderr. */
  waitForOutput(re: RegExp, timeoutMs?: number): Promise<void>;
  /** Send QUIT, close stdin, wait for exit (bounded; SIGKILL after). */
  finish(): Promise<SClientResult>;
}

/**
 * startSClient - `openssl s_client -starttls smtp` with stdin left open, so
 * the connection (and the smtpd process serving it) stays alive until
 * finish(). -ign_eof: do not treat a line starting with Q or R as a command,
 * and after stdin ends keep reading until the server closes (a TLS 1.3
 * ticket arrives after the handshake).
 */
export function startSClient(o: SClientOptions): SClientSession {
  const args = ['s_client', '-connect', `${o.host ?? '127.0.0.1'}:${o.port}`, '-starttls', 'smtp',
    '-name', 'sclient.localdomain', o.tls === '1.2' ? '-tls1_2' : '-tls1_3', '-ign_eof'];
  if (o.noTicket) args.push('-no_ticket');
  if (o.sessOut) args.push('-sess_out', o.sessOut);
  if (o.sessIn) args.push('-sess_in', o.sessIn);
  const child = spawn(OPENSSL_BIN, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let exit: { code: number | null } | undefined;
  let timedOut = false;
  child.stdout.setEncoding('utf8').on('data', (d: string) => { out += d; });
  child.stderr.setEncoding('utf8').on('data', (d: string) => { out += d; });
  child.stdin.on('error', () => undefined);
  const exited = new Promise<void>((resolve) => {
    child.on('close', (code) => { exit = { code }; resolve(); });
    child.on('error', (err) => { out += `spawn openssl: ${err.message}\n`; exit = { code: null }; resolve(); });
  });
  const timer = setTimeout(() => { timedOut = true; child.kill('SIGKILL'); }, o.timeoutMs ?? 20_000);
  exited.then(() => clearTimeout(timer), () => undefined);
  const result = (): SClientResult => ({
    output: out,
    code: exit?.code ?? null,
    timedOut,
    // A failed handshake prints "New, (NONE), Cipher is (NONE)": insist on a version.
    isNew: /^New, TLSv1\.[23], Cipher is /m.test(out),
    reused: /^Reused, TLSv1\.[23], Cipher is /m.test(out),
  });
  return {
    child,
    output: () => out,
    hasExited: () => exit !== undefined,
    async waitForOutput(re: RegExp, timeoutMs = 10_000): Promise<void> {
      await pollUntil(() => {
        if (re.test(out)) return true;
        if (exit !== undefined) throw new Error(`s_client exited before printing ${String(re)}:\n${out}`);
        return undefined;
      }, { timeoutMs, intervalMs: 50, what: `${String(re)} from openssl s_client\n${out}` });
    },
    async finish(): Promise<SClientResult> {
      if (exit === undefined) child.stdin.end('QUIT\r\n');
      await exited;
      return result();
    },
  };
}

/** runSClient - one s_client run: connect, STARTTLS, QUIT, exit. */
export function runSClient(o: SClientOptions): Promise<SClientResult> {
  return startSClient(o).finish();
}

/* ------------------------------------------------------------------ */
/* swaks                                                               */
/* ------------------------------------------------------------------ */

export interface SendMailOptions {
  /** Default 127.0.0.1. */
  host?: string;
  port: number;
  /** STARTTLS required (swaks --tls): swaks fails if TLS cannot be negotiated. */
  tls?: boolean;
  to: string;
  from?: string;
  subject?: string;
  timeoutMs?: number;
}

/** sendMail - one plain-text message over SMTP (swaks), without TLS unless o.tls. */
export async function sendMail(o: SendMailOptions): Promise<RunResult> {
  const host = o.host ?? '127.0.0.1';
  const r = await runCommand(SWAKS_BIN, [
    '--server', host, '--port', String(o.port), ...(o.tls ? ['--tls'] : []),
    '--from', o.from ?? 'sender@tlsmgr-test.localdomain', '--to', o.to,
    '--helo', 'swaks.localdomain',
    '--header', `Subject: ${o.subject ?? 'tlsmgr interop test'}`,
    '--body', 'tlsmgr interop test message',
    '--timeout', String(Math.ceil((o.timeoutMs ?? 20_000) / 1000)),
  ], { timeoutMs: (o.timeoutMs ?? 20_000) + 5_000 });
  if (r.code !== 0) {
    throw new Error(`swaks to ${host}:${o.port} failed (exit ${String(r.code)}${r.timedOut ? ', timed out' : ''}):\n` +
      `${r.stdout}${r.stderr}`);
  }
  return r;
}
