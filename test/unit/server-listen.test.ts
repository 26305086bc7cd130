/*
 * server-listen - the standalone listener on $queue_directory/private/<service>
 * (server/server.ts listenStandalone(), issue 13 finding 1): as root every step on the path
 * runs with $mail_owner's effective ids, so the socket is created owned by $mail_owner with
 * mode 0600 and nothing root does follows a link that $mail_owner swaps in; a stale socket
 * is removed, a live one or a non-socket refused.
 */

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, lstatSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { listenStandalone } from '../../src/server/server.js';

const isRoot = process.geteuid?.() === 0;
const NOBODY = { uid: 65534, gid: 65534 };
const root = mkdtempSync(join(tmpdir(), 'tlsmgr-listen-'));
chmodSync(root, 0o755); // $mail_owner must reach private/ through it, as through $queue_directory
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;

/** A private/ of $mail_owner's (mode 0700), in a root-owned queue directory. */
function privateDir(): string {
  const d = mkdtempSync(join(root, `q${n++}-`));
  if (isRoot) chownSync(d, NOBODY.uid, NOBODY.gid);
  return d;
}

function close(server: Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

test('as root the socket is created by $mail_owner (mode 0600), not handed over afterwards', { skip: !isRoot && 'needs root' }, async () => {
  const path = join(privateDir(), 'tlsmgr');
  const server = createServer();
  await listenStandalone(server, path, NOBODY);
  try {
    const st = lstatSync(path);
    assert.ok(st.isSocket());
    assert.deepEqual([st.uid, st.gid, st.mode & 0o777], [NOBODY.uid, NOBODY.gid, 0o600]);
    assert.equal(process.geteuid?.(), 0, 'root privileges are back after the bind');
    assert.equal(process.getegid?.(), 0);
  } finally {
    await close(server);
  }
});

test('a symlink swapped in for the socket right after bind() does not make root chown its target', { skip: !isRoot && 'needs root' }, async () => {
  // The attack: $mail_owner owns private/ and replaces the fresh socket with a link to a
  // file of root's between the bind and whatever root does next on the path.
  const dir = privateDir();
  const path = join(dir, 'tlsmgr');
  const target = join(root, `target-${n++}`);
  writeFileSync(target, 'root secret\n', { mode: 0o600 });
  const server = createServer();
  const listen = server.listen.bind(server) as (p: string, cb: () => void) => Server;
  // Plant the link in the window: after the bind, before listen()'s callback returns.
  (server as unknown as { listen: (p: string, cb: () => void) => Server }).listen = (p, cb) =>
    listen(p, () => {
      unlinkSync(p);
      symlinkSync(target, p);
      cb();
    });
  try {
    await listenStandalone(server, path, NOBODY);
  } catch {
    /* a refusal is fine too: only the target matters */
  }
  await close(server);
  const st = statSync(target);
  assert.deepEqual([st.uid, st.gid, st.mode & 0o777], [0, 0, 0o600], 'the root-owned target kept its owner and mode');
  assert.equal(readFileSync(target, 'latin1'), 'root secret\n');
});

test('a stale socket is removed and replaced; the replacement belongs to $mail_owner', async () => {
  const path = join(privateDir(), 'tlsmgr');
  // A listener of an earlier run (as $mail_owner) that went away without removing its socket
  // file (killed by SIGKILL).
  const code = `require('net').createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, 'SIGKILL'))`;
  spawnSync(process.execPath, ['-e', code], { timeout: 10_000, ...(isRoot ? NOBODY : {}) });
  assert.ok(lstatSync(path).isSocket());
  const server = createServer();
  await listenStandalone(server, path, isRoot ? NOBODY : null);
  try {
    const st = lstatSync(path);
    assert.ok(st.isSocket());
    if (isRoot) assert.equal(st.uid, NOBODY.uid);
  } finally {
    await close(server);
  }
});

test('a live server on the path is refused; a file or a link that is not a socket is refused, never followed or removed', async () => {
  const dir = privateDir();
  const live = join(dir, 'live');
  const other = createServer();
  await new Promise<void>((resolve) => other.listen(live, resolve));
  try {
    // As root the probe runs as $mail_owner, who may not use root's socket: refused all the same.
    await assert.rejects(listenStandalone(createServer(), live, isRoot ? NOBODY : null), /another server is already listening on|cannot tell whether .* is in use \(EACCES/);
    assert.ok(lstatSync(live).isSocket(), 'the live socket was left alone');
  } finally {
    await close(other);
  }
  const file = join(dir, 'file');
  writeFileSync(file, 'x');
  await assert.rejects(listenStandalone(createServer(), file, isRoot ? NOBODY : null), /exists and is not a socket -- refusing to replace it/);
  const link = join(dir, 'link');
  symlinkSync(file, link);
  await assert.rejects(listenStandalone(createServer(), link, isRoot ? NOBODY : null), /exists and is not a socket/);
  assert.ok(lstatSync(link).isSymbolicLink());
  assert.equal(readFileSync(file, 'latin1'), 'x');
});
