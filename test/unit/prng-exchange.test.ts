/*
 * prng-exchange - the PRNG exchange file (spec 4.5; scenarios 34, 39): created 0600 and
 * written with exactly 1024 bytes at offset 0 (a longer file keeps its tail, a short one
 * grows); the old contents are read and fed to the pool before the write; the exclusive flock
 * is held while writing (a second process's non-blocking flock gets EAGAIN inside the locked
 * section, observed through the whileLocked hook, and succeeds afterwards); a lock held by
 * another process is waited for, up to the lock timeout (then fatal); removal is seen through
 * the link count; open and read failures are FatalErrors with Postfix's texts (a directory,
 * a missing directory, a file whose read() fails: /proc/self/mem gives EIO at offset 0);
 * data_redirect_file(); as root, the file is created as $mail_owner (euid switch).
 */

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, linkSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { FatalError } from '../../src/util/errors.js';
import { lookupUser } from '../../src/master/passwd.js';
import { EXCH_SIZE, ExchangeFile, type ExchangePool } from '../../src/prng/exchange.js';
import { dataRedirectFile } from '../../src/master/redirect.js';

/** dist/test/unit -> the repository root, where node_modules/fs-ext lives. */
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'tlsmgr-exch-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const isRoot = process.getuid?.() === 0;
const me = { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 };

let serial = 0;
const fresh = (): string => join(dir, `exch-${++serial}`);

/** A pool stand-in that records what it is fed and hands out recognisable bytes. */
function spyPool(fill = 0x5a): ExchangePool & { fed: Buffer[]; generated: number } {
  const p = {
    fed: [] as Buffer[],
    generated: 0,
    addEntropy(b: Buffer) {
      p.fed.push(Buffer.from(b));
    },
    generate(n: number) {
      p.generated += n;
      return Buffer.alloc(n, fill);
    },
  };
  return p;
}

function openExch(path: string, extra: Partial<Parameters<typeof ExchangeFile.open>[1]> = {}): { exch: ExchangeFile; warnings: string[] } {
  const warnings: string[] = [];
  const exch = ExchangeFile.open(path, { owner: me, mailOwner: 'tester', dataDirectory: dir, warn: (m) => warnings.push(m), ...extra });
  return { exch, warnings };
}

/** Try flock(LOCK_EX|LOCK_NB) on path from another process: 'locked' | 'EAGAIN' | other error code. */
function tryLockElsewhere(path: string): string {
  const code = `const fs=require('fs'),x=require('fs-ext');const fd=fs.openSync(${JSON.stringify(path)},'r');
try{x.flockSync(fd,'exnb');process.stdout.write('locked')}catch(e){process.stdout.write(String(e.code))}`;
  const r = spawnSync(process.execPath, ['-e', code], { cwd: ROOT, encoding: 'utf8', timeout: 10_000 });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
}

test('created with mode 0600; exactly 1024 bytes at offset 0; nothing fed from an empty file', () => {
  const path = fresh();
  const { exch } = openExch(path);
  try {
    assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.equal(statSync(path).size, 0, 'opened without writing');
    const pool = spyPool();
    exch.update(pool);
    assert.deepEqual(pool.fed, []);
    assert.equal(pool.generated, EXCH_SIZE);
    assert.ok(readFileSync(path).equals(Buffer.alloc(EXCH_SIZE, 0x5a)));
    assert.equal(statSync(path).mode & 0o777, 0o600);
  } finally {
    exch.close();
  }
});

test('read before write: the old bytes are fed to the pool; a longer file keeps its tail', () => {
  const path = fresh();
  const old = Buffer.concat([Buffer.alloc(EXCH_SIZE, 0x11), Buffer.from('tail stays')]);
  writeFileSync(path, old, { mode: 0o600 });
  const { exch } = openExch(path);
  try {
    const pool = spyPool(0x22);
    exch.update(pool);
    assert.equal(pool.fed.length, 1);
    assert.ok(pool.fed[0].equals(Buffer.alloc(EXCH_SIZE, 0x11)), 'at most 1024 bytes are read');
    const now = readFileSync(path);
    assert.equal(now.length, EXCH_SIZE + 10);
    assert.ok(now.subarray(0, EXCH_SIZE).equals(Buffer.alloc(EXCH_SIZE, 0x22)));
    assert.equal(now.subarray(EXCH_SIZE).toString(), 'tail stays');
    // The second update feeds what the first one wrote.
    const pool2 = spyPool(0x33);
    exch.update(pool2);
    assert.ok(pool2.fed[0].equals(Buffer.alloc(EXCH_SIZE, 0x22)));
  } finally {
    exch.close();
  }
});

test('a short file (10 bytes) is fed as it is and grows to 1024 bytes; garbage contents are just input', () => {
  const path = fresh();
  writeFileSync(path, 'short file');
  const { exch } = openExch(path);
  try {
    const pool = spyPool();
    exch.update(pool);
    assert.deepEqual(pool.fed.map((b) => b.toString()), ['short file']);
    assert.equal(statSync(path).size, EXCH_SIZE);
  } finally {
    exch.close();
  }
});

test('the exclusive flock is held while writing: another process cannot lock meanwhile, can afterwards', () => {
  const path = fresh();
  const seen: string[] = [];
  const { exch } = openExch(path, { whileLocked: () => seen.push(tryLockElsewhere(path)) });
  try {
    assert.equal(tryLockElsewhere(path), 'locked', 'free before the update');
    exch.update(spyPool());
    assert.deepEqual(seen, ['EAGAIN'], 'held inside the locked section');
    assert.equal(tryLockElsewhere(path), 'locked', 'released after the update');
  } finally {
    exch.close();
  }
});

test('a lock held by another process is waited for; past the lock timeout it is fatal', async () => {
  const path = fresh();
  writeFileSync(path, Buffer.alloc(EXCH_SIZE, 1));
  const holdFor = async (ms: number): Promise<{ gone: Promise<void> }> => {
    const code = `const fs=require('fs'),x=require('fs-ext');const fd=fs.openSync(${JSON.stringify(path)},'r');
x.flockSync(fd,'ex');process.stdout.write('locked');setTimeout(()=>process.exit(0),${ms})`;
    const child = spawn(process.execPath, ['-e', code], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
    const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('lock holder did not start')), 10_000);
      child.stdout.once('data', () => {
        clearTimeout(t);
        resolve();
      });
    });
    return { gone };
  };
  // Held for 300 ms, we wait up to 5 s: the update succeeds after the holder lets go.
  let h = await holdFor(300);
  let { exch } = openExch(path, { lockTimeoutMs: 5000 });
  const t0 = Date.now();
  exch.update(spyPool(0x44));
  assert.ok(Date.now() - t0 >= 150, `waited ${Date.now() - t0} ms for the lock`);
  assert.ok(readFileSync(path).equals(Buffer.alloc(EXCH_SIZE, 0x44)));
  exch.close();
  await h.gone;
  // Held for 3 s, we wait 200 ms: fatal, and the file is untouched.
  h = await holdFor(3000);
  ({ exch } = openExch(path, { lockTimeoutMs: 200 }));
  assert.throws(() => exch.update(spyPool(0x55)), (e: unknown) => e instanceof FatalError && e.message === `cannot lock PRNG exchange file ${path}: Resource temporarily unavailable`);
  assert.ok(readFileSync(path).equals(Buffer.alloc(EXCH_SIZE, 0x44)));
  exch.close();
  await h.gone;
});

test('removed(): false while linked (also after one of two links goes), true once unlinked', () => {
  const path = fresh();
  const { exch } = openExch(path);
  try {
    assert.equal(exch.removed(), false);
    linkSync(path, `${path}.2`);
    unlinkSync(path);
    assert.equal(exch.removed(), false, 'still linked under another name');
    unlinkSync(`${path}.2`);
    assert.equal(exch.removed(), true);
    assert.equal(existsSync(path), false);
  } finally {
    exch.close();
  }
});

test('open failures are fatal with Postfix\'s text: a directory, a missing directory', () => {
  const sub = join(dir, 'a-directory');
  mkdirSync(sub);
  assert.throws(() => openExch(sub), (e: unknown) => e instanceof FatalError && e.message === `tls_prng_exch_open: cannot open PRNG exchange file ${sub}: Is a directory`);
  const missing = join(dir, 'no', 'such', 'prng_exch');
  assert.throws(() => openExch(missing), (e: unknown) => e instanceof FatalError && e.message === `tls_prng_exch_open: cannot open PRNG exchange file ${missing}: No such file or directory`);
});

test('a file whose read() fails is fatal ("cannot read PRNG exchange file"), nothing is written', { skip: !existsSync('/proc/self/mem') || !isRoot }, () => {
  // /proc/self/mem opens read-write for root, but reading at offset 0 (an unmapped address) is EIO.
  const { exch } = openExch('/proc/self/mem');
  try {
    const pool = spyPool();
    assert.throws(() => exch.update(pool), (e: unknown) => e instanceof FatalError && e.message === 'cannot read PRNG exchange file /proc/self/mem: Input/output error');
    assert.equal(pool.generated, 0);
  } finally {
    exch.close();
  }
});

test('an unreadable file (mode 0000, or root\'s when opened as mail_owner) is a clean fatal at open', () => {
  const path = fresh();
  writeFileSync(path, 'x');
  if (isRoot) {
    // Root reads anything; opening as mail_owner (the euid switch) is what fails.
    const postfix = lookupUser('postfix');
    if (postfix === null) return;
    chmodSync(dir, 0o711); // mail_owner may pass through, but the file is root's 0600
    chmodSync(path, 0o600);
    assert.throws(() => openExch(path, { owner: postfix }), (e: unknown) => e instanceof FatalError && / Permission denied$/.test(e.message));
  } else {
    chmodSync(path, 0o000);
    assert.throws(() => openExch(path), (e: unknown) => e instanceof FatalError && / Permission denied$/.test(e.message));
  }
});

test('data_redirect_file: a parent directory not owned by mail_owner sends the file to data_directory', () => {
  const warnings: string[] = [];
  const o = { mailOwner: 'postfix', dataDirectory: '/var/lib/postfix', warn: (m: string): number => warnings.push(m) };
  const st = statSync(dir);
  assert.equal(dataRedirectFile(join(dir, 'prng_exch'), { ...o, ownerUid: st.uid }), join(dir, 'prng_exch'));
  assert.equal(dataRedirectFile(join(dir, 'none', 'prng_exch'), { ...o, ownerUid: st.uid + 1 }), join(dir, 'none', 'prng_exch'), 'missing directory: kept');
  assert.equal(dataRedirectFile('/x/prng_exch', { ...o, ownerUid: null }), '/x/prng_exch', 'owner unknown: kept');
  assert.deepEqual(warnings, []);
  assert.equal(dataRedirectFile(join(dir, 'prng_exch'), { ...o, ownerUid: st.uid + 1 }), '/var/lib/postfix/prng_exch');
  assert.deepEqual(warnings, [
    `request to update file ${join(dir, 'prng_exch')} in non-postfix directory ${dir}`,
    'redirecting the request to postfix-owned data_directory /var/lib/postfix',
  ]);
});

test('as root: created as mail_owner (euid switch), and root\'s ids are restored', { skip: !isRoot || lookupUser('postfix') === null }, () => {
  const postfix = lookupUser('postfix');
  assert.ok(postfix !== null);
  chmodSync(dir, 0o711); // mkdtemp made it 0700: mail_owner must pass through
  const sub = join(dir, 'owned-by-postfix');
  mkdirSync(sub, { mode: 0o700 });
  chownSync(sub, postfix.uid, postfix.gid);
  const path = join(sub, 'prng_exch');
  const groups = process.getgroups?.();
  const { exch, warnings } = openExch(path, { owner: postfix, mailOwner: 'postfix' });
  try {
    assert.deepEqual(warnings, []);
    const st = statSync(path);
    assert.equal(st.uid, postfix.uid);
    assert.equal(st.gid, postfix.gid);
    assert.equal(st.mode & 0o777, 0o600);
    assert.equal(process.geteuid?.(), 0);
    assert.equal(process.getegid?.(), 0);
    assert.deepEqual(process.getgroups?.(), groups);
    exch.update(spyPool());
    assert.equal(statSync(path).size, EXCH_SIZE);
  } finally {
    exch.close();
  }
});
