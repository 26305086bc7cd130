/*
 * daemon-phases - the Daemon (src/daemon/daemon.ts) as a real process, with a probe part that
 * writes one line to stderr from each hook: "probe: <hook> uid=<euid> cwd=<dir> ...".
 * The child is a small ESM script importing the compiled daemon/ modules; it builds the Daemon
 * as cli/main does (loadConfig, checkMailOwner once) with the listeners the test names:
 *   - master: fd 5 a socketpair (the test plays master on its end), fd 6 a UNIX listener the
 *     test made. As root with dropPrivileges and chroot (what -u -c give): pre-init runs as
 *     root in the queue directory, before the jail; post-init as $mail_owner with / as the
 *     working directory (the chroot); then the daemon serves with TAKEN/AVAIL; closing fd 5
 *     runs before-exit once (the exchange file saved), exit 0; SIGTERM kills it with no
 *     before-exit and the exchange file as it was (Postfix's `postfix stop`);
 *   - standalone: pre-init sees no socket yet, post-init sees it (as $mail_owner when root);
 *     SIGHUP hands the part the fresh and the running main.cf before the daemon logs the
 *     reload, and a changed input bound applies; SIGTERM runs before-exit once, removes the
 *     socket, saves the exchange file, exit 0;
 *   - -S (stdio): stays in the caller's directory and identity (no drop even when asked),
 *     pre-init then post-init then before-exit, one reply on stdout;
 *   - a part whose preInit throws: start() rejects with its FatalError, no listener is
 *     opened, no post-init and no before-exit run, the exchange file is not updated.
 * Every wait is bounded.
 */

import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, chmodSync, existsSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { instanceMailOwner, makeInstanceDirs, REPO, writeInstanceMainCf } from '../../bench/daemon.js';
import { lookupUser } from '../../src/master/passwd.js';
import { OK, parseReply, req } from '../helpers/attr.js';
import { captureChild, type ChildOutput } from '../helpers/child.js';
import { TestClient, until } from '../helpers/harness.js';

const IS_ROOT = process.getuid?.() === 0;
const DIST = join(REPO, 'dist', 'src');
const WAIT_MS = 5000;
const GENERATION = 0o17;

const work = mkdtempSync(join(tmpdir(), 'tlsmgr-phases-'));
// As root the daemon opens files as mail_owner, who must be able to reach the instances.
chmodSync(work, 0o755);
const children: ChildProcess[] = [];
after(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  rmSync(work, { recursive: true, force: true });
});

/*
 * The child: argv mode (master | standalone | stdio), drop (0|1), chroot (0|1), fail (0|1).
 * Every probe line is written with writeSync, so that it is on stderr before the next step.
 */
const SCRIPT = `
import { existsSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from ${JSON.stringify(join(DIST, 'config', 'load.js'))};
import { checkMailOwner } from ${JSON.stringify(join(DIST, 'master', 'passwd.js'))};
import { msgFatal, msgWarn } from ${JSON.stringify(join(DIST, 'log', 'msg.js'))};
import { FatalError } from ${JSON.stringify(join(DIST, 'util', 'errors.js'))};
import { Daemon } from ${JSON.stringify(join(DIST, 'daemon', 'daemon.js'))};
import { MasterListeners, StandaloneListeners, StdioListeners } from ${JSON.stringify(join(DIST, 'daemon', 'listeners.js'))};
const [mode, drop, chroot, fail] = process.argv.slice(2);
const load = { configDir: process.env.MAIL_CONFIG, overrides: [], warn: msgWarn, processName: 'tlsmgr', serviceName: 'tlsmgr' };
const { config } = loadConfig(load);
const owner = checkMailOwner(config);
const socket = join(config.queueDirectory, 'private', 'tlsmgr');
const say = (text) => writeSync(2, 'probe: ' + text + ' uid=' + process.geteuid() + ' cwd=' + process.cwd() + '\\n');
const probe = {
  preInit(d) {
    say('pre-init socket=' + existsSync(socket) + ' service=' + (typeof d.service.ctx.dispatcher) + ' mode=' + d.mode);
    if (fail === '1') throw new FatalError('the probe part refuses to start');
  },
  postInit(d) {
    say('post-init socket=' + existsSync(d.chrooted ? 'private/tlsmgr' : socket) + ' chrooted=' + d.chrooted);
  },
  reload(fresh, current) {
    say('reload attr_name_limit ' + current.attrNameLimit + ' -> ' + fresh.attrNameLimit);
  },
  beforeExit() {
    say('before-exit');
  },
};
const listeners = mode === 'master'
  ? new MasterListeners({ serviceName: 'tlsmgr', generation: ${GENERATION}, socketCount: 1 })
  : mode === 'standalone' ? new StandaloneListeners({ serviceName: 'tlsmgr' }) : new StdioListeners();
new Daemon({
  config,
  listeners,
  owner,
  dropPrivileges: drop === '1',
  chroot: chroot === '1',
  logTargets: [{ fd: 2, template: 'watchdog: ' }],
  reread: () => loadConfig(load).config,
  parts: [probe],
}).start().then(() => say('started'), (err) => msgFatal(err instanceof FatalError ? err.message : String(err)));
`;
const scriptPath = join(work, 'probe.mjs');
writeFileSync(scriptPath, SCRIPT);

interface Instance {
  readonly dir: string;
  readonly queue: string;
  readonly socket: string;
  readonly exchange: string;
  readonly env: NodeJS.ProcessEnv;
}

let serial = 0;
function instance(): Instance {
  const dir = mkdtempSync(join(work, `i${serial++}-`));
  makeInstanceDirs(dir);
  writeInstanceMainCf(dir, { mail_owner: instanceMailOwner(), tls_random_exchange_name: '${data_directory}/prng_exch' });
  const env: NodeJS.ProcessEnv = { ...process.env, MAIL_CONFIG: join(dir, 'etc') };
  delete env.GENERATION;
  delete env.MAIL_VERBOSE;
  const queue = join(dir, 'queue');
  return { dir, queue, socket: join(queue, 'private', 'tlsmgr'), exchange: join(dir, 'data', 'prng_exch'), env };
}

interface Probe extends ChildOutput {
  readonly child: ChildProcess;
  /** The probe lines so far, "probe: " cut off. */
  lines(): string[];
}

function spawnProbe(inst: Instance, args: string[], stdio: Array<'pipe' | 'ignore' | number>, cwd = work): Probe {
  const child = spawn(process.execPath, [scriptPath, ...args], { env: inst.env, stdio, cwd });
  children.push(child);
  const out = captureChild(child);
  const lines = (): string[] => out.stderr().split('\n').filter((l) => l.startsWith('probe: ')).map((l) => l.slice('probe: '.length));
  return { ...out, child, lines };
}

/** Wait (bounded) for a probe line matching re; fail with the child's stderr. */
async function line(p: Probe, re: RegExp): Promise<string> {
  await until(() => p.lines().some((l) => re.test(l)) || p.child.exitCode !== null, WAIT_MS, `${String(re)} in:\n${p.stderr()}`);
  const found = p.lines().find((l) => re.test(l));
  assert.ok(found !== undefined, `no ${String(re)}; the child exited ${String(p.child.exitCode)}:\n${p.stderr()}`);
  return found;
}

/** The hook names in the order the probe saw them. */
function hooks(p: Probe): string[] {
  return p.lines().map((l) => l.split(' ')[0]);
}

/** A path or number as a literal part of a RegExp. */
function lit(v: string | number | undefined): string {
  return String(v).replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

const owner = lookupUser(instanceMailOwner());
const ownerUid = IS_ROOT && owner !== null ? owner.uid : process.geteuid?.();

/* A listening UNIX socket for fd 6, as master makes it; release() hands it over to the child. */
async function listener(dir: string): Promise<{ path: string; fd: number; release: () => Promise<void> }> {
  const path = join(dir, 'listen');
  const srv: Server = createServer(() => assert.fail('the fake master accepted a connection itself'));
  await new Promise<void>((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(path, () => resolve());
  });
  const fd = (srv as unknown as { _handle: { fd: number } })._handle.fd;
  return {
    path,
    fd,
    async release() {
      // Node unlinks a UNIX server's path on close: keep the name for the child's copy.
      renameSync(path, `${path}.aside`);
      await new Promise<void>((resolve) => srv.close(() => resolve()));
      renameSync(`${path}.aside`, path);
    },
  };
}

async function spawnUnderMaster(inst: Instance): Promise<{ p: Probe; status: Socket; path: string; statusBytes: () => Buffer }> {
  const l = await listener(inst.dir);
  const flags = IS_ROOT ? ['1', '1'] : ['0', '0'];
  const p = spawnProbe(inst, ['master', ...flags, '0'], ['ignore', 'ignore', 'pipe', 'ignore', 'ignore', 'pipe', l.fd]);
  await l.release();
  const status = (p.child.stdio as unknown as Array<Socket | null>)[5];
  assert.ok(status, 'no status channel');
  let st = Buffer.alloc(0);
  status.on('data', (c: Buffer) => (st = Buffer.concat([st, c])));
  status.on('error', () => undefined);
  return { p, status, path: l.path, statusBytes: () => st };
}

function rec(pid: number, s: 0 | 1): string {
  const b = Buffer.alloc(12);
  b.writeInt32LE(pid, 0);
  b.writeUInt32LE(GENERATION, 4);
  b.writeInt32LE(s, 8);
  return b.toString('hex');
}

describe('Daemon phases under master(8)', { concurrency: 1 }, () => {
  test('pre-init as root in the queue directory, then the jail, then post-init, then serving; master gone: before-exit once, exit 0, exchange file saved', async () => {
    const inst = instance();
    const m = await spawnUnderMaster(inst);
    try {
      const pre = await line(m.p, /^pre-init /);
      const post = await line(m.p, /^post-init /);
      await line(m.p, /^started /);
      assert.deepEqual(hooks(m.p), ['pre-init', 'post-init', 'started']);
      assert.match(pre, /service=object mode=master/);
      assert.match(pre, new RegExp(` uid=${lit(process.geteuid?.())} cwd=${lit(inst.queue)}$`), 'pre-init runs privileged, in the queue directory');
      if (IS_ROOT) assert.match(post, new RegExp(`chrooted=true uid=${lit(ownerUid)} cwd=/$`), 'post-init runs as mail_owner inside the chroot');
      const c = await TestClient.open(m.path);
      assert.equal((await c.request(req('seed', ['size', '16']))).text('status'), OK);
      await until(() => m.statusBytes().length >= 24, WAIT_MS, 'TAKEN and AVAIL');
      assert.equal(m.statusBytes().toString('hex'), rec(m.p.child.pid ?? 0, 0) + rec(m.p.child.pid ?? 0, 1));
      const saved = readFileSync(inst.exchange).toString('hex');
      m.status.end();
      assert.equal(await m.p.exited(WAIT_MS), 0, m.p.stderr());
      c.destroy();
      assert.deepEqual(hooks(m.p), ['pre-init', 'post-init', 'started', 'before-exit']);
      assert.notEqual(readFileSync(inst.exchange).toString('hex'), saved, 'the exchange file was not saved on exit');
    } finally {
      m.status.destroy();
    }
  });

  test('SIGTERM (postfix stop): killed, no before-exit, exchange file as it was', async () => {
    const inst = instance();
    const m = await spawnUnderMaster(inst);
    try {
      await line(m.p, /^started /);
      const saved = readFileSync(inst.exchange).toString('hex');
      m.p.child.kill('SIGTERM');
      assert.equal(await m.p.exited(WAIT_MS), 'SIGTERM', m.p.stderr());
      assert.deepEqual(hooks(m.p), ['pre-init', 'post-init', 'started']);
      assert.equal(readFileSync(inst.exchange).toString('hex'), saved, 'the exchange file was written on SIGTERM');
    } finally {
      m.status.destroy();
    }
  });
});

describe('Daemon phases, standalone and -S', { concurrency: 1 }, () => {
  test('standalone: no socket in pre-init, the socket in post-init; SIGHUP: the part sees fresh and running main.cf before the reload is logged; SIGTERM: before-exit once, socket removed, exit 0', async () => {
    const inst = instance();
    const p = spawnProbe(inst, ['standalone', '1', '0', '0'], ['ignore', 'ignore', 'pipe']);
    const pre = await line(p, /^pre-init /);
    const post = await line(p, /^post-init /);
    await line(p, /^started /);
    assert.match(pre, new RegExp(`^pre-init socket=false service=object mode=standalone uid=${lit(process.geteuid?.())} cwd=${lit(inst.queue)}$`));
    assert.match(post, new RegExp(`^post-init socket=true chrooted=false uid=${lit(ownerUid)} `), 'post-init: listening, as mail_owner');
    assert.equal(statSync(inst.socket).mode & 0o777, 0o600);

    appendFileSync(join(inst.dir, 'etc', 'main.cf'), 'tlsmgr_attr_name_limit = 16\n');
    p.child.kill('SIGHUP');
    await line(p, /^reload /);
    await until(() => /reload: .*main\.cf and tlsmgr\.cf re-read/.test(p.stderr()), WAIT_MS, `the reload line in ${p.stderr()}`);
    assert.match(p.lines().find((l) => l.startsWith('reload ')) ?? '', /^reload attr_name_limit 256 -> 16 /);
    const err = p.stderr();
    assert.ok(err.indexOf('probe: reload ') < err.indexOf('main.cf and tlsmgr.cf re-read'), 'the parts apply the reload before it is logged');
    // The service took the new bound: a 20-byte name now closes the connection.
    const c = await TestClient.open(inst.socket);
    c.send(Buffer.from(`request\0seed\0${'n'.repeat(20)}\0x\0\0`, 'latin1'));
    assert.equal((await c.waitEnd(WAIT_MS)).length, 0);
    c.destroy();

    const saved = readFileSync(inst.exchange).toString('hex');
    p.child.kill('SIGTERM');
    assert.equal(await p.exited(WAIT_MS), 0, p.stderr());
    assert.deepEqual(hooks(p), ['pre-init', 'post-init', 'started', 'reload', 'before-exit']);
    assert.ok(!existsSync(inst.socket), 'the socket is left behind');
    assert.notEqual(readFileSync(inst.exchange).toString('hex'), saved, 'the exchange file was not saved on SIGTERM');
  });

  test('-S: the caller\'s directory and identity even with drop asked; pre-init, post-init, before-exit; one reply on stdout', async () => {
    const inst = instance();
    const p = spawnProbe(inst, ['stdio', '1', '1', '0'], ['pipe', 'pipe', 'pipe'], inst.dir);
    p.child.stdin?.end(req('seed', ['size', '8']));
    assert.equal(await p.exited(WAIT_MS), 0, p.stderr());
    assert.deepEqual(hooks(p), ['pre-init', 'post-init', 'before-exit', 'started']);
    const [pre, post] = p.lines();
    const uid = process.geteuid?.();
    assert.match(pre, new RegExp(`mode=stdio uid=${lit(uid)} cwd=${lit(inst.dir)}$`));
    assert.match(post, new RegExp(`chrooted=false uid=${lit(uid)} cwd=${lit(inst.dir)}$`));
    const reply = parseReply(p.stdout());
    assert.equal(reply.text('status'), OK);
    assert.equal(reply.data('seed').length, 8);
  });

  test('a part whose pre-init throws: fatal, exit 1, no listener, no post-init, no before-exit, exchange file not updated', async () => {
    const inst = instance();
    const p = spawnProbe(inst, ['standalone', '1', '0', '1'], ['ignore', 'ignore', 'pipe']);
    assert.equal(await p.exited(WAIT_MS), 1, p.stderr());
    assert.match(p.stderr(), /fatal: the probe part refuses to start/);
    assert.deepEqual(hooks(p), ['pre-init']);
    assert.ok(!existsSync(inst.socket), 'a socket although pre-init failed');
    // The service opened the exchange file (it may have created it) but never ran its update.
    assert.ok(!existsSync(inst.exchange) || readFileSync(inst.exchange).length === 0, 'the exchange file was updated');
  });

  test('ticket keys refused after the caches opened: fatal, exit 1, and the cache database closed (no -wal or -shm left)', async () => {
    const inst = instance();
    appendFileSync(join(inst.dir, 'etc', 'main.cf'), 'smtpd_tls_session_cache_database = btree:${data_directory}/smtpd_scache\n');
    writeFileSync(join(inst.dir, 'etc', 'tlsmgr.cf'), 'tlsmgr_tktkey_database = btree:/x\n');
    const child = spawn(process.execPath, [join(REPO, 'bin', 'tlsmgr'), '-d'], { env: inst.env, stdio: ['ignore', 'ignore', 'pipe'], cwd: work });
    children.push(child);
    const out = captureChild(child);
    assert.equal(await out.exited(WAIT_MS), 1, out.stderr());
    assert.match(out.stderr(), /fatal: tlsmgr_tktkey_database = btree:\/x: use redis:<file>, none, or leave it empty/);
    const db = join(inst.dir, 'data', 'smtpd_scache.sqlite');
    assert.ok(existsSync(db), 'the cache was not opened before the ticket keys: the case is not tested');
    for (const side of ['-wal', '-shm']) assert.ok(!existsSync(db + side), `${db}${side} left: the cache was not closed`);
  });
});
