/*
 * master - bin/tlsmgr spawned by a fake master(8) (spec 5.1-5.8; scenarios 41-44).
 *
 * The test plays master: it spawns `node bin/tlsmgr -l -t unix -n tlsmgr` with GENERATION=17
 * (octal: 15) in the environment, the status channel on fd 5 (spawn's stdio 'pipe', a UNIX
 * socketpair: the child's end is fd 5, ours is child.stdio[5]) and a UNIX stream listener on
 * fd 6 that the test created itself and then stopped holding (see listenerFor()). tlsmgr.cf sets
 * tlsmgr_syslog_socket to a datagram socket the test binds with unix-dgram, so the daemon's
 * syslog records are checked as they leave the process.
 * Checks:
 *   - the greeting on a connection; no status record for a connect or a disconnect;
 *   - the 12-byte records (pid, 15, 0) then (pid, 15, 1), byte for byte, around each request,
 *     and around each of the two halves of a request written in two parts (scenario 41);
 *   - the wake-up trigger ("W" then NUL): greeting, then closed, no reply;
 *   - closing our end of fd 5 -> the PRNG exchange file rewritten, exit 0 (scenario 42), with
 *     an open client connection; SIGTERM (`postfix stop`) -> killed, exchange file untouched;
 *   - missing -l -> "fatal: service tlsmgr requires a process limit of 1", exit 1; GENERATION
 *     not octal -> "fatal: bad generation: ..."; an extra argument -> "fatal: unexpected
 *     command-line argument: extra" (scenario 43); each reaches syslog (stderr is master's
 *     /dev/null in real life);
 *   - -S answers a seed request from stdin with no greeting (scenario 44);
 *   - syslog records: "<PRI>Mmm dd hh:mm:ss postfix/tlsmgr[pid]: text", facility mail (PRI 22
 *     info, 20 warning, 18 fatal), tag from the program name even with -n (spec 5.8), and the
 *     warning text naming "<service> socket"; $syslog_name (-o) over master's MAIL_LOGTAG;
 *   - as root: -u -c (what master passes for the Debian line): running as the mail_owner, root
 *     directory the queue directory, still serving and still exiting 0 when fd 5 closes;
 *   - the daemon's watchdog process holds only its pipe, stderr and the syslog socket (not
 *     master's fd 5 or the listener), runs as the daemon's user, and exits with the daemon;
 *   - the watchdog (startWatchdog, in a `node -e` child): a busy main thread with a 1 s
 *     timeout dies by the watchdog's SIGKILL after writing "fatal: watchdog timeout";
 *     an idle process with a 1 s timeout is not killed in 4 s.
 * Every wait is bounded and, but for the watchdog's own periods, ends on its event (a syslog
 * record, status bytes, a reply, an exit). "Nothing on the status channel" is checked by what
 * comes next: the records of a later request must follow with nothing in between.
 */

import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { lookupUser } from '../../src/master/passwd.js';
import { childrenOf } from '../../bench/loadgen.js';
import { procInfo } from '../helpers/postfix.js';
import { captureChild } from '../helpers/child.js';
import { GREETING_BYTES, OK, parseReply, req, show } from '../helpers/attr.js';
import { TestClient, until } from '../helpers/harness.js';
import { Signal } from '../helpers/signal.js';

/** The repository root: this file runs as dist/test/integration/master.test.js. */
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const BIN = join(ROOT, 'bin', 'tlsmgr');
const WATCHDOG_JS = join(ROOT, 'dist', 'src', 'master', 'watchdog.js');
const SYSLOG_JS = join(ROOT, 'dist', 'src', 'log', 'syslog.js');
const START_MS = 5000;
const EXIT_MS = 5000;
const GENERATION = '17';
const GENERATION_VALUE = 0o17;
const IS_ROOT = process.getuid?.() === 0;

/* ------------------------------------------------------------------ */
/* The syslog socket the test owns                                     */
/* ------------------------------------------------------------------ */

interface DgramSocket {
  on(event: 'message', fn: (buf: Buffer) => void): void;
  on(event: 'error', fn: (err: Error) => void): void;
  bind(path: string): void;
  close(): void;
}
const require = createRequire(import.meta.url);
const unixDgram = require('unix-dgram') as { createSocket(type: 'unix_dgram'): DgramSocket };

/** One syslog(3) record: <PRI>Mmm dd hh:mm:ss tag[pid]: text (no trailing newline). */
const SYSLOG_RE = /^<(\d+)>([A-Z][a-z]{2} [ 123]\d \d\d:\d\d:\d\d) ([^\s[]+)\[(\d+)\]: (.*)$/s;

interface SyslogRecord {
  raw: string;
  pri: number;
  tag: string;
  pid: number;
  text: string;
}

let dir: string;
let etc: string;
let queue: string;
let logSocket: DgramSocket;
const records: SyslogRecord[] = [];
const unparsed: string[] = [];
/** Woken for every datagram on the syslog socket. */
const logged = new Signal();

function recordsOf(pid: number): SyslogRecord[] {
  return records.filter((r) => r.pid === pid);
}

async function waitForRecord(pid: number, re: RegExp, ms = START_MS): Promise<SyslogRecord> {
  const find = (): SyslogRecord | undefined => recordsOf(pid).find((x) => re.test(x.text));
  await logged.until(() => find() !== undefined, ms, () => `syslog record ${String(re)} from pid ${pid}; have:\n` +
    `${recordsOf(pid).map((x) => x.raw).join('\n')}\nunparsed: ${unparsed.join('\n')}`);
  return find() as SyslogRecord;
}

/* ------------------------------------------------------------------ */
/* The fake master                                                     */
/* ------------------------------------------------------------------ */

/** The mail_owner for -u runs as root: Debian's "postfix" when it exists, else "nobody". */
function mailOwner(): string {
  if (!IS_ROOT) return userInfo().username;
  return lookupUser('postfix') !== null ? 'postfix' : 'nobody';
}

function writeMainCf(extra: readonly string[] = []): void {
  writeFileSync(join(etc, 'main.cf'), [
    `queue_directory = ${queue}`,
    `data_directory = ${join(dir, 'data')}`,
    `mail_owner = ${mailOwner()}`,
    'smtpd_tls_session_cache_database = btree:${data_directory}/smtpd_scache',
    'smtp_tls_session_cache_database = btree:${data_directory}/smtp_scache',
    'smtpd_tls_session_cache_timeout = 3600s',
    ...extra,
    '',
  ].join('\n'));
  writeFileSync(join(etc, 'tlsmgr.cf'), `tlsmgr_syslog_socket = ${join(dir, 'dev-log')}\n`);
}

/** tls_random_exchange_name's default: ${data_directory}/prng_exch. */
function exchangeFile(): string {
  return join(dir, 'data', 'prng_exch');
}

let listenerSeq = 0;

/**
 * A listening UNIX socket for fd 6, made here as master makes it. Returns its path and the
 * server holding it; the caller passes the descriptor to spawn and then calls release().
 * Node unlinks a UNIX server's path when the server closes, so release() moves the socket
 * aside, closes our copy and moves it back: the child's copy keeps listening on that path.
 */
async function listenerFor(): Promise<{ path: string; fd: number; release: () => Promise<void> }> {
  const path = join(dir, `listen-${++listenerSeq}`);
  const srv: Server = createServer(() => assert.fail('the fake master accepted a connection itself'));
  await new Promise<void>((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(path, () => resolve());
  });
  const fd = (srv as unknown as { _handle: { fd: number } })._handle.fd;
  assert.ok(Number.isInteger(fd) && fd > 2, `no descriptor for ${path}`);
  return {
    path,
    fd,
    async release() {
      const aside = `${path}.aside`;
      renameSync(path, aside);
      await new Promise<void>((resolve) => srv.close(() => resolve()));
      renameSync(aside, path);
    },
  };
}

interface Spawned {
  readonly child: ChildProcess;
  readonly pid: number;
  /** Our end of the status channel (fd 5 in the child). */
  readonly status: Socket;
  /** The listener's path (fd 6 in the child). */
  readonly path: string;
  /** Every byte received on the status channel so far. */
  statusBytes(): Buffer;
  /** Woken when status bytes arrive. */
  readonly statusGrew: Signal;
  stdout(): Buffer;
  stderr(): string;
  /** Exit code or signal name; the child is SIGKILLed (and the result says so) after ms. */
  exited(ms?: number): Promise<number | string>;
}

const children: ChildProcess[] = [];

/**
 * spawnUnderMaster - bin/tlsmgr as master(8) runs it: fd 5 status socketpair, fd 6 listener,
 * GENERATION in the environment (unless env overrides it with undefined), stdin /dev/null.
 */
async function spawnUnderMaster(args: readonly string[], env: Readonly<Record<string, string | undefined>> = {}): Promise<Spawned> {
  const l = await listenerFor();
  const fullEnv: NodeJS.ProcessEnv = { ...process.env };
  delete fullEnv.MAIL_VERBOSE;
  delete fullEnv.MAIL_DEBUG;
  delete fullEnv.MAIL_LOGTAG;
  Object.assign(fullEnv, { MAIL_CONFIG: etc, GENERATION }, env);
  for (const [k, v] of Object.entries(fullEnv)) if (v === undefined) delete fullEnv[k];
  const child = spawn(process.execPath, [BIN, ...args], {
    env: fullEnv,
    stdio: ['ignore', 'pipe', 'pipe', 'ignore', 'ignore', 'pipe', l.fd],
  });
  children.push(child);
  await l.release();
  const status = (child.stdio as unknown as (Socket | null)[])[5];
  assert.ok(status, 'no stdio[5] socket');
  let st = Buffer.alloc(0);
  const statusGrew = new Signal();
  status.on('data', (c: Buffer) => {
    st = Buffer.concat([st, c]);
    statusGrew.wake();
  });
  status.on('error', () => undefined);
  const cap = captureChild(child);
  return {
    child,
    pid: child.pid ?? 0,
    status,
    path: l.path,
    statusBytes: () => st,
    statusGrew,
    stdout: cap.stdout,
    stderr: cap.stderr,
    exited: (ms = EXIT_MS) => cap.exited(ms),
  };
}

/** The pids of the daemon's watchdog processes (its children running tlsmgr-watchdog). */
function watchdogsOf(pid: number): number[] {
  return childrenOf(pid).filter((k) => procInfo(k)?.argv.includes('tlsmgr-watchdog') === true);
}

/**
 * Connect to the daemon's listener and check the greeting (bounded). The listener exists
 * before the daemon starts, so the connection is queued at once and greeted when the daemon
 * accepts it; a daemon that exits closes the listener, and with it this connection.
 */
async function openClient(s: Spawned): Promise<TestClient> {
  try {
    return await TestClient.open(s.path, { ms: START_MS });
  } catch (err) {
    throw new Error(`no greeting on ${s.path}: ${(err as Error).message}; exit ${String(s.child.exitCode ?? s.child.signalCode)}; ` +
      `${s.stderr()}\n${recordsOf(s.pid).map((r) => r.raw).join('\n')}`);
  }
}

function rec(pid: number, status: 0 | 1): Buffer {
  const b = Buffer.alloc(12);
  b.writeInt32LE(pid, 0);
  b.writeUInt32LE(GENERATION_VALUE, 4);
  b.writeInt32LE(status, 8);
  return b;
}

/** Wait (bounded) until the status channel holds at least n bytes; returns what it holds then. */
async function statusAtLeast(s: Spawned, n: number, ms = 2000): Promise<Buffer> {
  // On timeout the caller's comparison shows what did arrive.
  await s.statusGrew.until(() => s.statusBytes().length >= n, ms, `${n} status bytes`).catch(() => undefined);
  return s.statusBytes();
}

/** The records as "pid/gen/status" strings, for readable assertion messages. */
function showRecords(b: Buffer): string[] {
  const out: string[] = [];
  for (let i = 0; i + 12 <= b.length; i += 12) out.push(`${b.readInt32LE(i)}/${b.readUInt32LE(i + 4)}/${b.readInt32LE(i + 8)}`);
  if (b.length % 12 !== 0) out.push(`(+${b.length % 12} stray bytes)`);
  return out;
}

/* ------------------------------------------------------------------ */

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'tlsmgr-master-'));
  etc = join(dir, 'etc');
  queue = join(dir, 'queue');
  for (const d of [etc, join(queue, 'private'), join(dir, 'data')]) mkdirSync(d, { recursive: true, mode: 0o755 });
  // As root the daemon opens the PRNG exchange file in data_directory as mail_owner (as
  // Postfix's tlsmgr does): the data directory belongs to mail_owner, as `postfix check` makes it.
  chmodSync(dir, 0o755);
  const owner = lookupUser(mailOwner());
  if (IS_ROOT && owner !== null) chownSync(join(dir, 'data'), owner.uid, owner.gid);
  writeMainCf();
  logSocket = unixDgram.createSocket('unix_dgram');
  logSocket.on('error', (err) => unparsed.push(`socket error: ${err.message}`));
  logSocket.on('message', (buf) => {
    const raw = buf.toString('utf8');
    const m = SYSLOG_RE.exec(raw);
    if (!m) {
      unparsed.push(raw);
      return;
    }
    records.push({ raw, pri: Number(m[1]), tag: m[3], pid: Number(m[4]), text: m[5] });
    logged.wake();
  });
  logSocket.bind(join(dir, 'dev-log'));
});

after(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  try {
    logSocket.close();
  } catch {
    /* already closed */
  }
  rmSync(dir, { recursive: true, force: true });
});

describe('under a fake master', { concurrency: 1 }, () => {
  test('greeting; TAKEN/AVAIL byte for byte around each request; none for connect or disconnect (41)', async () => {
    const s = await spawnUnderMaster(['-l', '-t', 'unix', '-n', 'tlsmgr']);
    const c = await openClient(s);
    try {
      // The greeting was checked by openClient(). A record for the connection itself would
      // come before the first request's, which must be the first bytes on the channel.
      const r1 = await c.request(req('seed', ['size', '32']));
      assert.equal(r1.text('status'), OK);
      assert.equal(r1.data('seed').length, 32);
      const one = Buffer.concat([rec(s.pid, 0), rec(s.pid, 1)]);
      assert.deepEqual(showRecords(await statusAtLeast(s, 24)), showRecords(one));
      assert.equal(s.statusBytes().toString('hex'), one.toString('hex'));

      const r2 = await c.request(req('policy', ['cache_type', 'smtpd']));
      assert.equal(r2.text('status'), OK);
      const two = Buffer.concat([one, one]);
      assert.equal((await statusAtLeast(s, 48)).toString('hex'), two.toString('hex'));

      // A request in two writes: two readable events, two TAKEN/AVAIL pairs, one reply.
      const split = req('seed', ['size', '8']);
      c.send(split.subarray(0, 7));
      await statusAtLeast(s, 72);
      c.send(split.subarray(7));
      assert.equal((await c.reply()).data('seed').length, 8);
      const four = Buffer.concat([two, one, one]);
      assert.equal((await statusAtLeast(s, 96)).toString('hex'), four.toString('hex'), showRecords(s.statusBytes()).join(' '));

      // A second connection at the same time is served as well.
      const c2 = await TestClient.open(s.path);
      assert.equal((await c2.request(req('seed', ['size', '1']))).status, 0);
      c2.destroy();
      const five = Buffer.concat([four, one]);
      assert.equal((await statusAtLeast(s, 120)).toString('hex'), five.toString('hex'));

      // Disconnect: nothing more on the status channel. The daemon sees the close before it
      // serves a request made after it: the next records are that request's, and no others.
      c.destroy();
      const c3 = await openClient(s);
      assert.equal((await c3.request(req('seed', ['size', '2']))).status, 0);
      c3.destroy();
      const six = Buffer.concat([five, one]);
      assert.deepEqual(showRecords(await statusAtLeast(s, 144)), showRecords(six), 'a record for a connect or a disconnect');
      assert.equal(s.child.exitCode, null, 'the daemon exited');
    } finally {
      c.destroy();
      s.status.destroy();
      await s.exited();
    }
  });

  test('wake-up trigger "W" + NUL: greeting, then closed by the daemon, no reply', async () => {
    const s = await spawnUnderMaster(['-l', '-t', 'unix', '-n', 'tlsmgr']);
    try {
      const c = await openClient(s);
      // master's unix_trigger() writes the byte W and then a NUL, in two writes: the NUL is
      // sent once the daemon has served the read of the W (its pair of records).
      const pair = Buffer.concat([rec(s.pid, 0), rec(s.pid, 1)]).toString('hex');
      c.send(Buffer.from('W', 'latin1'));
      assert.equal((await statusAtLeast(s, 24)).toString('hex'), pair, showRecords(s.statusBytes()).join(' '));
      c.send(Buffer.from([0]));
      const rest = await c.waitEnd(2000);
      assert.equal(rest.length, 0, `the daemon replied to the wake-up trigger: ${show(rest)}`);
      // Each readable event is bracketed: two well-formed pairs, nothing else.
      const st = await statusAtLeast(s, 48);
      assert.equal(st.toString('hex'), pair + pair, showRecords(st).join(' '));
      c.destroy();
      // The daemon is still serving.
      const c2 = await openClient(s);
      assert.equal((await c2.request(req('seed', ['size', '4']))).status, 0);
      c2.destroy();
      assert.equal(s.child.exitCode, null);
    } finally {
      s.status.destroy();
      await s.exited();
    }
  });

  test('closing the master end of fd 5: exchange file saved, exit 0, even with a client connected (42)', async () => {
    // -v: "daemon started" is logged once post-init (which writes the exchange file) is done.
    const s = await spawnUnderMaster(['-l', '-t', 'unix', '-n', 'tlsmgr', '-v']);
    const c = await openClient(s);
    try {
      await waitForRecord(s.pid, /^daemon started/);
      assert.equal((await c.request(req('seed', ['size', '4']))).status, 0);
      const before = readFileSync(exchangeFile());
      assert.equal(before.length, 1024, 'no exchange file after start');
      s.status.end();
      assert.equal(await s.exited(), 0, `${s.stderr()}\n${recordsOf(s.pid).map((r) => r.raw).join('\n')}`);
      await c.waitEnd(2000);
      assert.deepEqual(recordsOf(s.pid).filter((r) => /^(fatal|panic|error):/.test(r.text)).map((r) => r.raw), []);
      assert.notEqual(readFileSync(exchangeFile()).toString('hex'), before.toString('hex'), 'the exchange file was not saved on exit');
    } finally {
      c.destroy();
    }
  });

  test('SIGTERM (postfix stop): killed by the signal, exchange file not saved (spec 5.4)', async () => {
    const s = await spawnUnderMaster(['-l', '-t', 'unix', '-n', 'tlsmgr', '-v']);
    try {
      await waitForRecord(s.pid, /^daemon started/);
      const before = readFileSync(exchangeFile()).toString('hex');
      s.child.kill('SIGTERM');
      assert.equal(await s.exited(), 'SIGTERM', s.stderr());
      assert.equal(readFileSync(exchangeFile()).toString('hex'), before, 'the exchange file was written on SIGTERM');
    } finally {
      s.status.destroy();
    }
  });

  test('syslog records: <PRI>stamp postfix/tlsmgr[pid]: text, facility mail; tag from the program name', async () => {
    // -n other: the service name changes ("other socket" in warnings), the tag does not (5.8).
    const s = await spawnUnderMaster(['-l', '-t', 'unix', '-n', 'other', '-v']);
    try {
      const c = await openClient(s);
      c.send(Buffer.from('size\x001\0\0', 'latin1')); // no "request" attribute: FAIL and a warning
      await c.reply();
      c.destroy();
      const warn = await waitForRecord(s.pid, /^warning: unexpected attribute size from other socket \(expecting: request\)$/);
      assert.equal(warn.pri, 2 * 8 + 4, warn.raw);
      assert.equal(warn.tag, 'postfix/tlsmgr', warn.raw);
      assert.match(warn.raw, new RegExp(`^<20>[A-Z][a-z]{2} [ 1-3]\\d \\d\\d:\\d\\d:\\d\\d postfix/tlsmgr\\[${s.pid}\\]: warning: `));
      // -v: verbose info records at severity info (PRI 22).
      const info = recordsOf(s.pid).filter((r) => !/^(warning|error|fatal|panic):/.test(r.text));
      assert.ok(info.length > 0, `no info record with -v: ${recordsOf(s.pid).map((r) => r.raw).join('\n')}`);
      for (const r of info) assert.equal(r.pri, 22, r.raw);
      for (const r of recordsOf(s.pid)) assert.equal(r.tag, 'postfix/tlsmgr', r.raw);
      assert.deepEqual(unparsed, []);
      // Nothing on stderr without -V (master's stderr is /dev/null).
      assert.equal(s.stderr(), '');
    } finally {
      s.status.destroy();
      await s.exited();
    }
  });

  test('log tag: $syslog_name (with -o) wins over the MAIL_LOGTAG master exports, as after mail_params_init()', async () => {
    const s = await spawnUnderMaster(['-l', '-t', 'unix', '-o', 'syslog_name=postfix-alt', '-v'], { MAIL_LOGTAG: 'postfix' });
    try {
      const r = await waitForRecord(s.pid, /^daemon started/);
      assert.equal(r.tag, 'postfix-alt/tlsmgr', r.raw);
    } finally {
      s.status.destroy();
      await s.exited();
    }
  });

  test('missing -l: fatal "service tlsmgr requires a process limit of 1", exit 1, logged to syslog (43)', async () => {
    const s = await spawnUnderMaster(['-t', 'unix', '-n', 'tlsmgr']);
    assert.equal(await s.exited(), 1, s.stderr());
    const r = await waitForRecord(s.pid, /^fatal: service tlsmgr requires a process limit of 1$/);
    assert.equal(r.pri, 2 * 8 + 2, r.raw);
  });

  test('GENERATION not octal: fatal "bad generation", exit 1', async () => {
    for (const gen of ['12x', 'abc']) {
      const s = await spawnUnderMaster(['-l', '-t', 'unix'], { GENERATION: gen });
      assert.equal(await s.exited(), 1, s.stderr());
      await waitForRecord(s.pid, new RegExp(`^fatal: bad generation: ${gen}$`));
    }
  });

  test('an extra argument: fatal "unexpected command-line argument: extra", exit 1, no reply (43)', async () => {
    const s = await spawnUnderMaster(['-l', '-t', 'unix', '-n', 'tlsmgr', 'extra']);
    // Postfix checks at the first request; a daemon that refuses at startup is as good. Send
    // one request if it is still listening; either way it must die with the message.
    let replied = 0;
    const c = await TestClient.open(s.path).catch(() => undefined);
    if (c) {
      c.send(req('seed', ['size', '4']));
      replied = (await c.waitEnd(3000).catch(() => Buffer.alloc(0))).length;
      c.destroy();
    }
    assert.equal(await s.exited(), 1, s.stderr());
    assert.equal(replied, 0, 'a reply although the command line is wrong');
    await waitForRecord(s.pid, /^fatal: unexpected command-line argument: extra$/);
  });

  test('-S: one seed request from stdin, the reply on stdout, no greeting (44)', async () => {
    // As `tlsmgr -S` is run by hand: stdin and stdout are the client, no fd 5 or 6.
    const child = spawn(process.execPath, [BIN, '-S'], {
      env: { ...process.env, MAIL_CONFIG: etc, GENERATION: undefined },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    children.push(child);
    const out: Buffer[] = [];
    let err = '';
    child.stdout?.on('data', (b: Buffer) => out.push(b));
    child.stderr?.on('data', (b: Buffer) => {
      err += b.toString('utf8');
    });
    const code = new Promise<number | string>((resolve) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        resolve('timeout');
      }, EXIT_MS);
      child.on('exit', (c, sig) => {
        clearTimeout(timer);
        resolve(c ?? sig ?? 'unknown');
      });
    });
    child.stdin?.end(req('seed', ['size', '16']));
    assert.equal(await code, 0, err);
    const stdout = Buffer.concat(out);
    assert.ok(!stdout.subarray(0, GREETING_BYTES.length).equals(GREETING_BYTES), 'a greeting in -S mode');
    const reply = parseReply(stdout);
    assert.deepEqual(reply.names, ['status', 'seed']);
    assert.equal(reply.text('status'), OK);
    assert.equal(reply.data('seed').length, 16);
  });

  test('the watchdog process: only its pipe, stderr and the log socket (not fd 5 or the listener), the daemon\'s user; gone with the daemon', async () => {
    const s = await spawnUnderMaster(['-l', '-t', 'unix', '-n', 'tlsmgr', '-v', ...(IS_ROOT ? ['-u'] : [])]);
    try {
      await waitForRecord(s.pid, /^daemon started/);
      const kids = watchdogsOf(s.pid);
      assert.equal(kids.length, 1, `watchdog processes: ${kids.join(' ')}`);
      const wd = kids[0];
      const links = (pid: number): Map<string, string> => {
        const m = new Map<string, string>();
        for (const fd of readdirSync(`/proc/${pid}/fd`)) {
          try {
            m.set(fd, readlinkSync(`/proc/${pid}/fd/${fd}`));
          } catch {
            /* closed meanwhile */
          }
        }
        return m;
      };
      const daemon = links(s.pid);
      // The watchdog closes what it inherited as it starts: wait (bounded) for that.
      await until(() => links(wd).size <= 4, 3000, 'the watchdog to close what it inherited').catch(() => undefined);
      const mine = links(wd);
      const status = daemon.get('5');
      const listener = daemon.get('6');
      assert.ok(status !== undefined && listener !== undefined && status.startsWith('socket:') && listener.startsWith('socket:'),
        `daemon fds: ${[...daemon].join(' ')}`);
      const held = [...mine.values()];
      assert.ok(!held.includes(status) && !held.includes(listener), `the watchdog holds master's descriptors: ${[...mine].join(' ')}`);
      // 0 the heartbeat pipe, 1 /dev/null, 2 stderr, 3 the syslog socket; nothing else.
      assert.deepEqual([...mine.keys()].sort(), ['0', '1', '2', '3'], [...mine].join(' '));
      const uidOf = (pid: number): string | undefined => /^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'latin1'))?.[1];
      assert.equal(uidOf(wd), uidOf(s.pid));
      s.status.end();
      assert.equal(await s.exited(), 0, s.stderr());
      await until(() => !existsSync(`/proc/${wd}`), 3000, 'the watchdog to exit').catch(() => undefined);
      assert.ok(!existsSync(`/proc/${wd}`) || /^State:\s+Z/m.test(readFileSync(`/proc/${wd}/status`, 'latin1')), 'the watchdog outlived the daemon');
    } finally {
      s.status.destroy();
      await s.exited();
    }
  });

  test('as root, -u -c: runs as mail_owner, root directory is the queue directory, still serves', { skip: !IS_ROOT && 'needs root' }, async () => {
    const owner = lookupUser(mailOwner());
    assert.ok(owner, `no user ${mailOwner()}`);
    const s = await spawnUnderMaster(['-l', '-t', 'unix', '-u', '-c']);
    try {
      const c = await openClient(s);
      assert.equal((await c.request(req('seed', ['size', '32']))).status, 0);
      assert.equal((await c.request(req('tktkey', ['keyname', '']))).data('keybuf').length, 88);
      const status = readFileSync(`/proc/${s.pid}/status`, 'latin1');
      const uids = /^Uid:\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)$/m.exec(status);
      const gids = /^Gid:\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)$/m.exec(status);
      assert.deepEqual(uids?.slice(1).map(Number), [owner.uid, owner.uid, owner.uid, owner.uid], status);
      assert.deepEqual(gids?.slice(1).map(Number), [owner.gid, owner.gid, owner.gid, owner.gid], status);
      assert.equal(readlinkSync(`/proc/${s.pid}/root`), queue);
      assert.equal(readlinkSync(`/proc/${s.pid}/cwd`), queue);
      assert.equal(Buffer.concat([rec(s.pid, 0), rec(s.pid, 1), rec(s.pid, 0), rec(s.pid, 1)]).toString('hex'),
        (await statusAtLeast(s, 48)).toString('hex'));
      c.destroy();
      // Logging survives the jail: a warning still reaches the syslog socket.
      const c2 = await openClient(s);
      c2.send(Buffer.from('size\x001\0\0', 'latin1'));
      await c2.reply();
      c2.destroy();
      await waitForRecord(s.pid, /^warning: unexpected attribute size from tlsmgr socket/);
      s.status.end();
      assert.equal(await s.exited(), 0, `${s.stderr()}\n${recordsOf(s.pid).map((r) => r.raw).join('\n')}`);
      assert.deepEqual(recordsOf(s.pid).filter((r) => /^(fatal|panic|error):/.test(r.text)).map((r) => r.raw), []);
    } finally {
      s.status.destroy();
      await s.exited();
    }
  });
});

/* ------------------------------------------------------------------ */
/* The watchdog                                                        */
/* ------------------------------------------------------------------ */

/**
 * Run a `node -e` script (ESM) that imports the compiled watchdog and syslog sink; bounded by
 * ms, after which the test kills it (killedByTest: a SIGKILL that was not the watchdog's).
 */
function runWatchdogScript(body: string, ms: number): Promise<{ pid: number; code: number | null; signal: string | null; stderr: string; killedByTest: boolean }> {
  const src = `import { startWatchdog } from ${JSON.stringify(WATCHDOG_JS)};\n` +
    `import { openSyslogSink } from ${JSON.stringify(SYSLOG_JS)};\n${body}`;
  let killedByTest = false;
  const child = spawn(process.execPath, ['--input-type=module', '-e', src], { stdio: ['ignore', 'ignore', 'pipe'] });
  children.push(child);
  let stderr = '';
  child.stderr?.on('data', (b: Buffer) => {
    stderr += b.toString('utf8');
  });
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      killedByTest = true;
      child.kill('SIGKILL');
    }, ms);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ pid: child.pid ?? 0, code, signal, stderr, killedByTest });
    });
  });
}

describe('watchdog (startWatchdog)', { concurrency: 2 }, () => {
  test('a stuck event loop with daemon_timeout 1 s: "fatal: watchdog timeout", then the watchdog\'s SIGKILL', async () => {
    const r = await runWatchdogScript(`
      const log = openSyslogSink({ path: ${JSON.stringify(join(dir, 'dev-log'))}, facility: 'mail', ident: () => 'postfix/tlsmgr' });
      startWatchdog(1, [log.target(), { fd: 2, template: '%STAMP% postfix/tlsmgr[' + process.pid + ']: ' }]);
      process.stderr.write('busy\\n');
      setTimeout(() => { for (;;) { /* stuck */ } }, 50);
    `, 8000);
    assert.equal(r.signal, 'SIGKILL', `not killed (code ${String(r.code)}): ${r.stderr}`);
    assert.equal(r.killedByTest, false, `not killed by the watchdog within 8 s: ${r.stderr}`);
    assert.match(r.stderr, /^[A-Z][a-z]{2} [ 1-3]\d \d\d:\d\d:\d\d postfix\/tlsmgr\[\d+\]: fatal: watchdog timeout$/m);
    // The same record on the syslog socket, written by the watchdog thread itself.
    const rec = await waitForRecord(r.pid, /^fatal: watchdog timeout$/, 2000);
    assert.equal(rec.pri, 2 * 8 + 2, rec.raw);
    assert.equal(rec.tag, 'postfix/tlsmgr', rec.raw);
  });

  test('an idle process with daemon_timeout 1 s is not killed in 4 s', async () => {
    const r = await runWatchdogScript(`
      startWatchdog(1, [{ fd: 2, template: 'watchdog: ' }]);
      setTimeout(() => process.exit(42), 4000);
    `, 8000);
    assert.equal(r.signal, null, r.stderr);
    assert.equal(r.code, 42, r.stderr);
    assert.doesNotMatch(r.stderr, /watchdog timeout/);
  });
});
