/*
 * daemon - `node bin/tlsmgr` as a real process (spec 1.6, 2.3-2.8, 5.5; scenarios 1, 9, 13,
 * 17, 44): MAIL_CONFIG points at a temp main.cf (queue_directory and data_directory under the
 * temp dir, mail_owner = the current user or, as root, bench/daemon.ts instanceMailOwner();
 * smtpd and smtp cache databases). Checks: the socket appears (the "listening on" line) with mode 0600
 * and serves requests; a second instance on the same socket refuses to start (exit 1,
 * "fatal:"); a stale socket file is replaced; SIGTERM exits 0; -S answers one request from
 * stdin without a greeting; an unknown option is "fatal: invalid option" with exit 1. Every
 * wait is bounded.
 */

import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { GREETING_BYTES, list, OK, parseReply, req, show } from '../helpers/attr.js';
import { instanceMailOwner, makeInstanceDirs } from '../../bench/daemon.js';
import { lookupUser } from '../../src/master/passwd.js';
import { captureChild } from '../helpers/child.js';
import { TestClient } from '../helpers/harness.js';

/** The repository root: this file runs as dist/test/integration/daemon.test.js. */
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const BIN = join(ROOT, 'bin', 'tlsmgr');
const START_MS = 5000;
const EXIT_MS = 5000;

interface Instance {
  readonly dir: string;
  readonly etc: string;
  readonly socket: string;
  readonly env: NodeJS.ProcessEnv;
}

function makeInstance(): Instance {
  const dir = mkdtempSync(join(tmpdir(), 'tlsmgr-daemon-'));
  const etc = join(dir, 'etc');
  const queue = join(dir, 'queue');
  const data = join(dir, 'data');
  makeInstanceDirs(dir);
  writeFileSync(
    join(etc, 'main.cf'),
    [
      `queue_directory = ${queue}`,
      `data_directory = ${data}`,
      `mail_owner = ${instanceMailOwner()}`,
      'smtpd_tls_session_cache_database = btree:${data_directory}/smtpd_scache',
      'smtp_tls_session_cache_database = btree:${data_directory}/smtp_scache',
      'smtpd_tls_session_cache_timeout = 3600s',
      '',
    ].join('\n'),
  );
  const env: NodeJS.ProcessEnv = { ...process.env, MAIL_CONFIG: etc };
  delete env.GENERATION;
  delete env.MAIL_VERBOSE;
  return { dir, etc, socket: join(queue, 'private', 'tlsmgr'), env };
}

interface Run {
  readonly child: ChildProcess;
  readonly stdout: () => Buffer;
  readonly stderr: () => string;
  /** Exit code (or the signal name), bounded by EXIT_MS. */
  readonly exited: () => Promise<number | string>;
  /** Wait (bounded) for stderr to match re; rejects if the daemon exits first. */
  readonly logged: (re: RegExp, ms: number) => Promise<RegExpExecArray>;
}

function run(inst: Instance, args: string[]): Run {
  const child = spawn(process.execPath, [BIN, ...args], { env: inst.env, stdio: ['pipe', 'pipe', 'pipe'] });
  const cap = captureChild(child);
  return { child, stdout: cap.stdout, stderr: cap.stderr, exited: () => cap.exited(EXIT_MS), logged: cap.logged };
}

/** Wait (bounded) until the daemon says it listens on its socket (it logs that once it does). */
async function waitForSocket(r: Run, path: string): Promise<void> {
  await r.logged(new RegExp(`listening on ${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\n`), START_MS);
}

const instances: Instance[] = [];
const children: ChildProcess[] = [];
let inst: Instance;
let daemon: Run;

before(async () => {
  inst = makeInstance();
  instances.push(inst);
  daemon = run(inst, []);
  children.push(daemon.child);
  await waitForSocket(daemon, inst.socket);
});

after(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const i of instances) rmSync(i.dir, { recursive: true, force: true });
});

test('the socket has mode 0600 and serves requests over the real socket', async () => {
  assert.equal(statSync(inst.socket).mode & 0o777, 0o600);
  const c = await TestClient.connect(inst.socket);
  try {
    assert.equal(show(await c.readList()), show(GREETING_BYTES));
    const s = await c.request(req('seed', ['size', '32']));
    assert.equal(s.text('status'), OK);
    assert.equal(s.data('seed').length, 32);
    c.send(req('policy', ['cache_type', 'smtpd']));
    assert.equal(show(await c.readList()), show(Buffer.from('status\x000\0cachable\x001\0timeout\x003600\0\0', 'latin1')));
    c.send(req('policy', ['cache_type', 'lmtp']));
    assert.equal(show(await c.readList()), show(Buffer.from('status\x000\0cachable\x000\0timeout\x003600\0\0', 'latin1')));
    const session = Buffer.from([0x30, 0x82, 0x00, 0xff]);
    assert.equal((await c.request(req('update', ['cache_type', 'smtp'], ['cache_id', 'mx:25'], ['session', session.toString('base64')]))).status, 0);
    const l = await c.request(req('lookup', ['cache_type', 'smtp'], ['cache_id', 'mx:25']));
    assert.equal(l.data('session').toString('hex'), session.toString('hex'));
    const k = await c.request(req('tktkey', ['keyname', '']));
    assert.equal(k.data('keybuf').length, 88);
  } finally {
    c.destroy();
  }
});

test('a second instance on the same socket refuses to start: exit 1, fatal on stderr', async () => {
  const second = run(inst, []);
  children.push(second.child);
  assert.equal(await second.exited(), 1);
  assert.match(second.stderr(), /fatal: /);
  // The first one is still serving.
  const c = await TestClient.open(inst.socket);
  try {
    assert.equal((await c.request(req('seed', ['size', '1']))).status, 0);
  } finally {
    c.destroy();
  }
});

test('-S answers one request from stdin, with no greeting', async () => {
  const r = run(inst, ['-S']);
  children.push(r.child);
  r.child.stdin?.end(req('seed', ['size', '5']));
  assert.equal(await r.exited(), 0, r.stderr());
  const reply = parseReply(r.stdout());
  assert.deepEqual(reply.names, ['status', 'seed']);
  assert.equal(reply.data('seed').length, 5);
  const r2 = run(inst, ['-S']);
  children.push(r2.child);
  r2.child.stdin?.end(list(['size', '1']));
  assert.equal(await r2.exited(), 0, r2.stderr());
  assert.equal(show(r2.stdout()), show(Buffer.from('status\x004294967294\0\0', 'latin1')));
  assert.match(r2.stderr(), /warning: unexpected attribute size from unknown_stream \(expecting: request\)/);
});

test('an unknown option: "fatal: invalid option" and exit 1', async () => {
  const r = run(inst, ['-x']);
  children.push(r.child);
  assert.equal(await r.exited(), 1);
  assert.match(r.stderr(), /fatal: invalid option: x/);
});

test('SIGTERM exits 0', async () => {
  daemon.child.kill('SIGTERM');
  assert.equal(await daemon.exited(), 0, daemon.stderr());
});

test('a stale socket file is replaced', async () => {
  const i2 = makeInstance();
  instances.push(i2);
  // A listener killed by SIGKILL leaves its socket file behind, with nobody accepting on it.
  const stale = spawn(
    process.execPath,
    ['-e', `require('net').createServer().listen(${JSON.stringify(i2.socket)}, () => process.kill(process.pid, 'SIGKILL'))`],
    // As the earlier run's daemon: a socket of mail_owner's, which the new one may probe.
    { stdio: 'ignore', ...(lookupUser(instanceMailOwner()) ?? {}) },
  );
  children.push(stale);
  await new Promise<void>((resolve) => stale.on('exit', () => resolve()));
  assert.ok(statSync(i2.socket).isSocket(), 'stale socket file left behind');
  const d = run(i2, []);
  children.push(d.child);
  await waitForSocket(d, i2.socket);
  const c = await TestClient.open(i2.socket);
  try {
    assert.equal((await c.request(req('seed', ['size', '2']))).data('seed').length, 2);
  } finally {
    c.destroy();
  }
  d.child.kill('SIGTERM');
  assert.equal(await d.exited(), 0, d.stderr());
});
