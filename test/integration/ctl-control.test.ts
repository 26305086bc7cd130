/*
 * ctl-control - the control socket (daemon/control.ts) and the tlsmgr-ctl commands that talk
 * to it (ping, status, flush, keys), through a real standalone daemon (`node bin/tlsmgr`,
 * bench/daemon.ts startDaemon) and tlsmgr-ctl's own dispatcher (ctl/main.ts) with
 * -c <instance>/etc:
 * - the socket is private/tlsmgr-control, mode 0600, owned by mail_owner;
 * - ping answers; status --json shows exactly the lookups, hits, misses and updates this
 *   test made with a TlsmgrClient, and no session byte; the text form too;
 * - flush makes a stored id miss, counters kept;
 * - keys rotate: a new current key, the old name still decrypts; keys revoke: the old names
 *   are unknown;
 * - a garbage line, an unknown command and an oversize line get errors, and the daemon
 *   keeps serving both sockets;
 * - a user other than root and mail_owner (nobody, run as a child) cannot connect;
 * - ping exits 1 with a clear message once the daemon is gone;
 * - a control socket that cannot be made (its name taken by a file) is a warning, and the
 *   daemon serves Postfix all the same.
 * Every wait is bounded (client timeouts, the child's exit).
 */

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { lstatSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { REPO, instanceMailOwner, makeInstanceDirs, shebangNodeArgs, startDaemon, writeInstanceMainCf, type RunningDaemon } from '../../bench/daemon.js';
import { TlsmgrClient } from '../../src/client/client.js';
import { main } from '../../src/ctl/main.js';
import { lookupUser } from '../../src/master/passwd.js';
import { STAT } from '../../src/protocol/names.js';
import { captureChild } from '../helpers/child.js';

const isRoot = process.geteuid?.() === 0;
const VERSION = (JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string }).version;

let d: RunningDaemon;
let client: TlsmgrClient;

before(async () => {
  d = await startDaemon();
  client = await TlsmgrClient.connect(d.socket, { timeoutMs: 5000 });
});

after(async () => {
  client?.close();
  await d?.stop();
});

async function ctl(...argv: string[]): Promise<{ code: number; out: string[]; err: string[] }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(['-c', join(d.dir, 'etc'), ...argv], { out: (l) => out.push(l), err: (l) => err.push(l) }, {});
  return { code, out, err };
}

async function status(): Promise<Record<string, unknown> & { caches: Record<string, Record<string, unknown>> }> {
  const r = await ctl('status', '--json');
  assert.equal(r.code, 0, r.err.join('\n'));
  assert.equal(r.out.length, 1);
  return JSON.parse(r.out[0]) as Record<string, unknown> & { caches: Record<string, Record<string, unknown>> };
}

/** Raw control connection: send bytes, collect reply lines until the daemon closes or n lines came. */
function raw(bytes: string, lines: number): Promise<{ replies: Record<string, unknown>[]; closed: boolean }> {
  return new Promise((resolve, reject) => {
    const sock = createConnection(join(d.dir, 'queue/private/tlsmgr-control'));
    let got = '';
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`no ${lines} replies within 5 s: ${got}`));
    }, 5000);
    const done = (closed: boolean): void => {
      clearTimeout(timer);
      sock.destroy();
      resolve({ replies: got.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>), closed });
    };
    sock.on('connect', () => sock.write(bytes));
    sock.on('data', (c: Buffer) => {
      got += c.toString('utf8');
      if (got.split('\n').length - 1 >= lines && lines > 0) done(false);
    });
    sock.on('end', () => done(true));
    sock.on('error', reject);
  });
}

test('the control socket is private/tlsmgr-control, a 0600 socket of mail_owner', () => {
  const st = lstatSync(join(d.dir, 'queue/private/tlsmgr-control'));
  assert.ok(st.isSocket());
  assert.equal(st.mode & 0o777, 0o600);
  const owner = lookupUser(instanceMailOwner());
  assert.ok(owner !== null);
  assert.equal(st.uid, owner.uid);
});

test('ping: exit 0 while the daemon answers', async () => {
  const r = await ctl('ping');
  assert.equal(r.code, 0, r.err.join('\n'));
  assert.match(r.out[0], /^tlsmgr answers on .*\/queue\/private\/tlsmgr-control$/);
});

test('status --json counts exactly the lookups, hits, misses and updates made, and shows no session byte', async () => {
  const was = (await status()).caches.smtpd;
  const session = Buffer.from('status-test-session-bytes-0123456789');
  assert.equal(await client.update('smtpd', 'status-id-1', session), STAT.OK);
  assert.equal((await client.lookup('smtpd', 'status-id-1')).status, STAT.OK);
  assert.equal((await client.lookup('smtpd', 'status-id-2')).status, STAT.ERR);
  const s = await status();
  const c = s.caches.smtpd;
  assert.equal(s.version, VERSION);
  assert.equal(s.mode, 'standalone');
  assert.equal(typeof s.uptime, 'number');
  assert.equal(c.enabled, true);
  assert.equal(c.database, 'btree:' + join(d.dir, 'data/smtpd_scache'));
  assert.equal(c.lookups, (was.lookups as number) + 2);
  assert.equal(c.hits, (was.hits as number) + 1);
  assert.equal(c.misses, (was.misses as number) + 1);
  assert.equal(c.updates, (was.updates as number) + 1);
  assert.equal(c.entries, (was.entries as number) + 1);
  assert.equal(s.caches.lmtp.enabled, false);
  const json = JSON.stringify(s);
  for (const secret of [session.toString('latin1'), session.toString('base64'), session.toString('hex'), 'status-id-1']) {
    assert.ok(!json.includes(secret), 'no session or cache_id in the reply');
  }
  const text = await ctl('status');
  assert.equal(text.code, 0);
  assert.match(text.out[0], new RegExp(`^tlsmgr ${VERSION.replace(/\./g, '\\.')}, pid \\d+, standalone, up `));
  assert.ok(text.out.some((l) => /^ {2}lookups \d+ \(hits \d+, misses \d+\), updates \d+/.test(l)), text.out.join('\n'));
  assert.ok(text.out.some((l) => l.startsWith('ticket keys: ')), text.out.join('\n'));
  assert.ok(text.out.some((l) => l.startsWith('prng: source ')), text.out.join('\n'));
});

test('flush smtpd: a stored id misses afterwards, counters kept', async () => {
  assert.equal(await client.update('smtpd', 'flush-id', Buffer.from('flush-session')), STAT.OK);
  assert.equal((await client.lookup('smtpd', 'flush-id')).status, STAT.OK);
  const was = (await status()).caches.smtpd;
  assert.ok((was.entries as number) >= 1);
  const r = await ctl('flush', 'smtpd');
  assert.equal(r.code, 0, r.err.join('\n'));
  assert.deepEqual(r.out, [`flushed smtpd TLS session cache: ${was.entries as number} entries removed`]);
  assert.equal((await client.lookup('smtpd', 'flush-id')).status, STAT.ERR);
  const now = (await status()).caches.smtpd;
  assert.equal(now.entries, 0);
  assert.equal(now.hits, was.hits, 'counters kept');
  assert.equal(now.updates, was.updates);
  // all: every enabled cache; a disabled one named explicitly is refused.
  assert.equal((await ctl('flush')).code, 0);
  const lmtp = await ctl('flush', 'lmtp');
  assert.equal(lmtp.code, 1);
  assert.match(lmtp.err[0], /fatal: tlsmgr: flush: the lmtp TLS session cache is not enabled/);
  assert.equal((await ctl('flush', 'bogus')).code, 2);
});

test('keys rotate: a new current key, the old name still decrypts; keys revoke: no old name is found', async () => {
  const first = await client.tktkey();
  assert.equal(first.status, STAT.OK);
  const name1 = first.keybuf.subarray(0, 16);
  const r = await ctl('keys', 'rotate');
  assert.equal(r.code, 0, r.err.join('\n'));
  assert.match(r.out[1], /^ticket keys: 2 \(local\); current key: age 0s, encrypts for /);
  const second = await client.tktkey();
  assert.equal(second.status, STAT.OK);
  const name2 = second.keybuf.subarray(0, 16);
  assert.ok(!name2.equals(name1), 'a new current key');
  const old = await client.tktkey(name1);
  assert.equal(old.status, STAT.OK, 'the old key still decrypts');
  assert.ok(old.keybuf.subarray(0, 16).equals(name1));
  assert.ok(!r.out.join('\n').includes(name1.toString('hex')) && !r.out.join('\n').includes(name2.toString('hex')));

  const v = await ctl('keys', 'revoke');
  assert.equal(v.code, 0, v.err.join('\n'));
  assert.equal((await client.tktkey(name1)).status, STAT.ERR, 'the first key is gone');
  assert.equal((await client.tktkey(name2)).status, STAT.ERR, 'the second key is gone');
  const fresh = await client.tktkey();
  assert.equal(fresh.status, STAT.OK);
  assert.ok(!fresh.keybuf.subarray(0, 16).equals(name1) && !fresh.keybuf.subarray(0, 16).equals(name2));
  assert.equal((await ctl('keys')).code, 2);
  assert.equal((await ctl('keys', 'burn')).code, 2);
});

test('garbage, an unknown command and an oversize line get errors; the daemon keeps serving', async () => {
  const a = await raw('this is not json\n{"cmd":"frobnicate"}\n[1,2]\n{"cmd":"flush","cache":"x"}\n{"cmd":"ping"}\n', 5);
  assert.deepEqual(a.replies, [
    { ok: false, error: 'request is not JSON' },
    { ok: false, error: 'unknown command frobnicate' },
    { ok: false, error: 'request is not a JSON object with a "cmd" string' },
    { ok: false, error: 'flush: cache must be one of smtpd, smtp, lmtp, all' },
    { ok: true },
  ]);
  const b = await raw(`{"cmd":"ping","pad":"${'x'.repeat(5000)}"}\n`, 0);
  assert.equal(b.closed, true);
  assert.deepEqual(b.replies, [{ ok: false, error: 'request line longer than 4096 bytes' }]);
  const c = await raw('x'.repeat(5000), 0);
  assert.equal(c.closed, true);
  assert.deepEqual(c.replies, [{ ok: false, error: 'request line longer than 4096 bytes' }]);
  assert.equal((await ctl('ping')).code, 0);
  assert.equal((await client.seed(32)).status, STAT.OK);
  assert.equal(d.proc.exitCode, null);
});

test('a user other than root and mail_owner cannot connect to the control socket', { skip: !isRoot && 'needs root' }, async () => {
  const nobody = lookupUser('nobody');
  assert.ok(nobody !== null);
  const path = join(d.dir, 'queue/private/tlsmgr-control');
  const script = `const s=require('net').createConnection(process.argv[1]);s.on('connect',()=>{console.log('connected');process.exit(0)});s.on('error',(e)=>{console.log(e.code);process.exit(3)});`;
  const child = spawn(process.execPath, ['-e', script, path], { uid: nobody.uid, gid: nobody.gid, cwd: '/', stdio: ['ignore', 'pipe', 'pipe'] });
  const out = captureChild(child);
  assert.equal(await out.exited(10_000), 3, out.stderr());
  assert.equal(out.stdout().toString().trim(), 'EACCES');
});

test('after the daemon exits, its control socket is gone and ping exits 1 with a clear message', async () => {
  client.close();
  const out = captureChild(d.proc);
  d.proc.kill('SIGTERM');
  assert.equal(await out.exited(10_000), 0, out.stderr());
  assert.throws(() => lstatSync(join(d.dir, 'queue/private/tlsmgr-control')), { code: 'ENOENT' });
  const r = await ctl('ping');
  assert.equal(r.code, 1);
  assert.deepEqual(r.out, []);
  assert.match(r.err[0], /^tlsmgr-ctl: ping: no tlsmgr answers on .*\/queue\/private\/tlsmgr-control \(ENOENT/);
});

test('a control socket that cannot be made is a warning; the daemon still serves', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tlsmgr-ctl-nosock-'));
  try {
    makeInstanceDirs(dir);
    writeInstanceMainCf(dir, { mail_owner: instanceMailOwner() });
    const taken = join(dir, 'queue/private/tlsmgr-control');
    writeFileSync(taken, 'not a socket\n');
    const bin = join(REPO, 'bin/tlsmgr');
    const child = spawn(process.execPath, [...shebangNodeArgs(bin), bin], {
      env: { ...process.env, MAIL_CONFIG: join(dir, 'etc') },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    const out = captureChild(child);
    try {
      await out.logged(/listening on /, 15_000);
      assert.match(out.stderr(), /warning: control socket: .*tlsmgr-control exists and is not a socket -- refusing to replace it -- tlsmgr-ctl cannot reach this daemon/);
      const c = await TlsmgrClient.connect(join(dir, 'queue/private/tlsmgr'), { timeoutMs: 5000 });
      try {
        assert.equal((await c.seed(16)).status, STAT.OK);
      } finally {
        c.close();
      }
      assert.equal(readFileSync(taken, 'utf8'), 'not a socket\n', 'the file is left alone');
    } finally {
      child.kill('SIGTERM');
      assert.equal(await out.exited(10_000), 0, out.stderr());
    }
    assert.equal(readFileSync(taken, 'utf8'), 'not a socket\n', 'not removed at exit either');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
