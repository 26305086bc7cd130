/*
 * prng-daemon - the PRNG behaviour of the real daemon process, `node bin/tlsmgr` standalone
 * (spec 4; scenarios 34-39):
 * 34 the exchange file is 0600, exactly 1024 bytes at offset 0 (a longer file keeps its
 *    tail, a short one grows), rewritten at start and again at exit (SIGTERM); as root with
 *    mail_owner = postfix it is owned by postfix; -S reads and writes it too;
 * 35 a missing device: the warning, then "exiting to reopen external entropy source",
 *    exit 0 after about 1 s, the exchange file written;
 * 36 EGD: the server (started here) sees 0x01 0x20 and the daemon serves seeds; a zero-byte
 *    answer: the info lines, exit 0, the exchange file written;
 * 37 a file source is read once: one verbose "read ... from entropy file" line however many
 *    reseeds run (1 s period), where a device is read on every reseed;
 * 38 an empty tls_random_source: the two warnings, and seeds are served;
 * 39 the exchange file removed: the warning, exit 0, not recreated (2 s update period);
 * and an exchange path that cannot be opened (a directory) is a clean fatal, exit 1.
 * Every wait is bounded.
 */

import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { instanceMailOwner, makeInstanceDirs, REPO, startDaemon, type RunningDaemon } from '../../bench/daemon.js';
import { TlsmgrClient } from '../../src/client/client.js';
import { lookupUser } from '../../src/master/passwd.js';
import { sleep, until } from '../helpers/harness.js';

const BIN = join(REPO, 'bin', 'tlsmgr');
const EXCH = 1024;
const work = mkdtempSync(join(tmpdir(), 'tlsmgr-prngd-'));
const cleanups: Array<() => void> = [];
after(() => {
  for (const c of cleanups) c();
  rmSync(work, { recursive: true, force: true });
});


/** Exit code of a child, bounded; null code means killed (reported as the signal name). */
function exited(child: ChildProcess, ms: number): Promise<number | string> {
  if (child.exitCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => {
    const t = setTimeout(() => {
      child.kill('SIGKILL');
      resolve(`no exit within ${ms} ms`);
    }, ms);
    child.once('exit', (code, signal) => {
      clearTimeout(t);
      resolve(code ?? signal ?? 'unknown');
    });
  });
}

async function seeds(socket: string, n: number): Promise<Buffer[]> {
  const c = await TlsmgrClient.connect(socket, { timeoutMs: 5000 });
  try {
    const out: Buffer[] = [];
    for (let i = 0; i < n; i++) {
      const r = await c.seed(32);
      assert.equal(r.status, 0);
      out.push(r.seed);
    }
    return out;
  } finally {
    c.close();
  }
}

let serial = 0;

/** A scratch directory for an exchange file, outside the daemon's own temp dir (mail_owner's: it opens the file). */
function exchPath(content?: Buffer): string {
  const d = join(work, `x${++serial}`);
  mkdirSync(d, { mode: 0o700 });
  const p = join(d, 'prng_exch');
  if (content !== undefined) writeFileSync(p, content, { mode: 0o600 });
  const owner = process.getuid?.() === 0 ? lookupUser(instanceMailOwner()) : null;
  if (owner !== null) {
    chmodSync(work, 0o711);
    chownSync(d, owner.uid, owner.gid);
    if (content !== undefined) chownSync(p, owner.uid, owner.gid);
  }
  return p;
}

interface Spawned {
  readonly child: ChildProcess;
  readonly dir: string;
  readonly stderr: () => string;
}

/** bin/tlsmgr on a scratch instance, for runs that end before startDaemon() would see a greeting. */
function spawnDaemon(params: Record<string, string>, args: string[] = [], prepare?: (dir: string) => void): Spawned {
  const dir = mkdtempSync(join(work, 'inst-'));
  if (process.getuid?.() === 0) chmodSync(work, 0o711);
  makeInstanceDirs(dir);
  prepare?.(dir);
  const all: Record<string, string> = {
    queue_directory: join(dir, 'queue'),
    data_directory: join(dir, 'data'),
    mail_owner: instanceMailOwner(),
    compatibility_level: '3.6',
    ...params,
  };
  writeFileSync(join(dir, 'etc/main.cf'), Object.entries(all).map(([k, v]) => `${k} = ${v}\n`).join(''));
  const env: NodeJS.ProcessEnv = { ...process.env, MAIL_CONFIG: join(dir, 'etc') };
  delete env.GENERATION;
  const child = spawn(process.execPath, [BIN, ...args], { env, stdio: ['pipe', 'pipe', 'pipe'] });
  let err = '';
  child.stderr?.on('data', (c: Buffer) => (err += c.toString()));
  cleanups.push(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  return { child, dir, stderr: () => err };
}

async function stopped(d: RunningDaemon): Promise<number | string> {
  d.proc.kill('SIGTERM');
  return exited(d.proc, 5000);
}

test('scenario 34: 0600, 1024 bytes at offset 0, tail kept; rewritten at start and at SIGTERM exit', async () => {
  const old = Buffer.concat([Buffer.alloc(EXCH, 0x11), Buffer.from('--tail--')]);
  const path = exchPath(old);
  // The longest update period: the timed update will not run in between (but for r = 0).
  const d = await startDaemon({ mainCf: { tls_random_exchange_name: path, tls_random_prng_update_period: '8421504s' } });
  try {
    await until(() => !readFileSync(path).subarray(0, EXCH).equals(old.subarray(0, EXCH)), 5000, 'the start-up update');
    const atStart = readFileSync(path);
    assert.equal(atStart.length, EXCH + 8);
    assert.equal(atStart.subarray(EXCH).toString(), '--tail--');
    assert.equal(statSync(path).mode & 0o777, 0o600);
    const s = await seeds(d.socket, 20);
    assert.equal(new Set(s.map((b) => b.toString('hex'))).size, 20, 'fresh seeds');
    assert.equal(await stopped(d), 0, d.stderr());
    const atExit = readFileSync(path);
    assert.equal(atExit.length, EXCH + 8);
    assert.ok(!atExit.subarray(0, EXCH).equals(atStart.subarray(0, EXCH)), 'rewritten at exit');
    assert.equal(atExit.subarray(EXCH).toString(), '--tail--');
    assert.doesNotMatch(d.stderr(), /warning|fatal/);
  } finally {
    await d.stop();
  }
});

test('scenario 34: the default exchange file ${data_directory}/prng_exch is created; a short file grows to 1024', async () => {
  const d = await startDaemon();
  const path = join(d.dir, 'data', 'prng_exch');
  try {
    await until(() => existsSync(path) && statSync(path).size === EXCH, 5000, 'prng_exch');
    assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.equal(statSync(path).uid, lookupUser(instanceMailOwner())?.uid);
  } finally {
    await d.stop();
  }
  const short = exchPath(Buffer.from('short'));
  const d2 = await startDaemon({ mainCf: { tls_random_exchange_name: short } });
  try {
    await until(() => statSync(short).size === EXCH, 5000, 'the short file to grow');
  } finally {
    await d2.stop();
  }
});

test('scenario 34: as root with mail_owner = postfix, the exchange file is owned by postfix', { skip: process.getuid?.() !== 0 || lookupUser('postfix') === null }, async () => {
  const pf = lookupUser('postfix');
  assert.ok(pf !== null);
  const s = spawnDaemon({ mail_owner: 'postfix', tls_random_exchange_name: '${data_directory}/prng_exch' }, [], (dir) => {
    // Postfix's own `postfix check` makes data_directory postfix's; the daemon opens the file
    // as postfix, who must also be able to pass through the temp directories above it.
    chmodSync(work, 0o711);
    chmodSync(dir, 0o711);
    chownSync(join(dir, 'data'), pf.uid, pf.gid);
    // As in a real queue (postfix-files), private/ is postfix's: the socket is bound as postfix.
    chmodSync(join(dir, 'queue'), 0o755);
    chownSync(join(dir, 'queue', 'private'), pf.uid, pf.gid);
  });
  const path = join(s.dir, 'data', 'prng_exch');
  const socket = join(s.dir, 'queue', 'private', 'tlsmgr');
  try {
    await until(() => existsSync(path) && statSync(path).size === EXCH, 10_000, `prng_exch: ${s.stderr()}`);
    assert.equal(statSync(path).uid, pf.uid);
    assert.equal(statSync(path).gid, pf.gid);
    await until(() => existsSync(socket), 5000, 'the socket');
    assert.equal((await seeds(socket, 1))[0].length, 32);
  } finally {
    s.child.kill('SIGTERM');
    assert.equal(await exited(s.child, 5000), 0, s.stderr());
  }
});

test('-S: post-init and exit handler run too: the exchange file is read and written', async () => {
  const path = exchPath(Buffer.alloc(EXCH, 0x77));
  const s = spawnDaemon({ tls_random_exchange_name: path }, ['-S']);
  s.child.stdin?.end(Buffer.from('request\0seed\0size\x0032\0\0', 'latin1'));
  assert.equal(await exited(s.child, 10_000), 0, s.stderr());
  assert.equal(statSync(path).size, EXCH);
  assert.ok(!readFileSync(path).equals(Buffer.alloc(EXCH, 0x77)));
});

test('-S: standard input past tlsmgr_input_buffer_limit is not read on: a warning, no reply, exit 0', async () => {
  const path = exchPath();
  const s = spawnDaemon({ tls_random_exchange_name: path }, ['-S'], (dir) => writeFileSync(join(dir, 'etc/tlsmgr.cf'), 'tlsmgr_input_buffer_limit = 4096\n'));
  let out = 0;
  s.child.stdout?.on('data', (c: Buffer) => (out += c.length));
  s.child.stdin?.on('error', () => undefined);
  // A well-formed request whose one value is longer than the limit: without the bound, it is read whole and answered.
  s.child.stdin?.end(Buffer.from(`request\0seed\0size\x0032\0pad\0${'x'.repeat(64 * 1024)}\0\0`, 'latin1'));
  assert.equal(await exited(s.child, 10_000), 0, s.stderr());
  assert.match(s.stderr(), /: warning: standard input exceeds tlsmgr_input_buffer_limit 4096 -- no reply\n/);
  assert.equal(out, 0);
});

test('scenario 35: a missing device: warning, "exiting to reopen", exit 0 after ~1 s, exchange file written', async () => {
  const path = exchPath();
  const t0 = Date.now();
  const s = spawnDaemon({ tls_random_source: 'dev:/nonexistent/urandom', tls_random_exchange_name: path });
  assert.equal(await exited(s.child, 10_000), 0, s.stderr());
  const took = Date.now() - t0;
  assert.ok(took >= 1000, `exited after ${took} ms: the 1 s pause comes first`);
  assert.match(s.stderr(), /: warning: cannot open entropy device \/nonexistent\/urandom: No such file or directory\n/);
  assert.match(s.stderr(), /\]: exiting to reopen external entropy source dev:\/nonexistent\/urandom\n/);
  assert.equal(statSync(path).size, EXCH);
  assert.doesNotMatch(s.stderr(), /fatal|Error/);
});

async function egdServer(zero: boolean): Promise<{ path: string; server: Server; requests: string[] }> {
  const path = join(work, `egd-${++serial}.sock`);
  const requests: string[] = [];
  const server = createServer((sock) => {
    sock.on('error', () => undefined);
    sock.on('data', (c: Buffer) => {
      requests.push(c.toString('hex'));
      sock.write(zero ? Buffer.from([0]) : Buffer.concat([Buffer.from([c[1]]), Buffer.alloc(c[1], 0x3c)]));
    });
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  cleanups.push(() => server.close());
  return { path, server, requests };
}

test('scenario 36: EGD: the request is 01 20; the daemon serves seeds', async () => {
  const e = await egdServer(false);
  const d = await startDaemon({ mainCf: { tls_random_source: `egd:${e.path}` } });
  try {
    await until(() => e.requests.length > 0, 5000, 'the EGD request');
    assert.equal(e.requests[0], '0120');
    assert.equal((await seeds(d.socket, 3)).length, 3);
    assert.equal(await stopped(d), 0, d.stderr());
    assert.doesNotMatch(d.stderr(), /warning|fatal/);
  } finally {
    await d.stop();
  }
});

test('scenario 36: EGD answers zero bytes: info lines, exit 0, exchange file written', async () => {
  const e = await egdServer(true);
  const path = exchPath();
  const s = spawnDaemon({ tls_random_source: `egd:${e.path}`, tls_random_exchange_name: path });
  assert.equal(await exited(s.child, 10_000), 0, s.stderr());
  assert.match(s.stderr(), new RegExp(`\\]: EGD server ${e.path} reports zero bytes available\\n`));
  assert.match(s.stderr(), new RegExp(`\\]: lost connection to EGD server ${e.path} -- exiting to reconnect\\n`));
  assert.equal(statSync(path).size, EXCH);
});

test('scenario 37: a file source is read once, a device on every reseed (1 s reseed period)', async () => {
  const src = join(work, `entropy-${++serial}`);
  writeFileSync(src, Buffer.alloc(100, 0x42));
  const f = await startDaemon({ mainCf: { tls_random_source: src, tls_random_reseed_period: '1s' }, args: ['-v'] });
  const dv = await startDaemon({ mainCf: { tls_random_reseed_period: '1s' }, args: ['-v'] });
  try {
    await sleep(2500);
    assert.equal(f.stderr().match(/read 32 bytes from entropy file /g)?.length, 1, f.stderr().slice(0, 2000));
    assert.equal((await seeds(f.socket, 1))[0].length, 32);
    const devReads = dv.stderr().match(/read 32 bytes from entropy device \/dev\/urandom/g)?.length ?? 0;
    assert.ok(devReads >= 2, `device reads: ${devReads}`);
  } finally {
    await f.stop();
    await dv.stop();
  }
});

test('scenario 38: empty tls_random_source: the two warnings, and seeds are served', async () => {
  const d = await startDaemon({ mainCf: { tls_random_source: '' } });
  try {
    assert.match(d.stderr(), /: warning: no entropy source specified with parameter tls_random_source\n/);
    assert.match(d.stderr(), /: warning: encryption keys etc\. may be predictable\n/);
    assert.equal((await seeds(d.socket, 2)).length, 2);
    assert.equal(await stopped(d), 0);
  } finally {
    await d.stop();
  }
});

test('scenario 39: exchange file removed: warning at the next timed update, exit 0, not recreated', async () => {
  const path = exchPath();
  const d = await startDaemon({ mainCf: { tls_random_exchange_name: path, tls_random_prng_update_period: '2s' } });
  try {
    await until(() => existsSync(path) && statSync(path).size === EXCH, 5000, 'the start-up update');
    unlinkSync(path);
    assert.equal(await exited(d.proc, 8000), 0, d.stderr());
    assert.match(d.stderr(), /: warning: PRNG exchange file was removed -- exiting to reopen\n/);
    assert.equal(existsSync(path), false);
  } finally {
    await d.stop();
  }
});

test('an exchange file that cannot be opened (a directory): "fatal: tls_prng_exch_open: ...", exit 1, no crash', async () => {
  const path = exchPath(); // in a directory of mail_owner's: else the request goes to data_directory
  mkdirSync(path);
  const s = spawnDaemon({ tls_random_exchange_name: path });
  assert.equal(await exited(s.child, 10_000), 1);
  assert.match(s.stderr(), new RegExp(`: fatal: tls_prng_exch_open: cannot open PRNG exchange file ${path}: Is a directory\\n`));
  assert.doesNotMatch(s.stderr(), /unexpected error|at .*\.js/);
});
