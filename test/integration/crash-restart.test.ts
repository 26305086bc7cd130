/*
 * crash-restart - the SQLite store survives a crash of the daemon (issue 3): a real daemon
 * (node bin/tlsmgr, btree: databases as in Debian's main.cf) is loaded by 4 connections
 * storing 1,500-byte sessions, killed with SIGKILL in the middle of the load (requests in
 * flight, WAL and -shm files left behind), then started again on the same instance. The
 * second start must log no warning, error or fatal, begin with an empty cache (every id of
 * the first run misses) in a new database file, and serve and store normally; SIGTERM then
 * exits 0. Every wait is bounded and ends on its event (the "listening on" line, the
 * 2000th stored entry), not after a time.
 */

import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { instanceMailOwner, makeInstanceDirs } from '../../bench/daemon.js';
import { TlsmgrClient } from '../../src/client/client.js';
import { captureChild } from '../helpers/child.js';
import { Signal } from '../helpers/signal.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const BIN = join(ROOT, 'bin', 'tlsmgr');
const START_MS = 10000;

const dir = mkdtempSync(join(tmpdir(), 'tlsmgr-crash-'));
const children: ChildProcess[] = [];
after(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

makeInstanceDirs(dir);
writeFileSync(
  join(dir, 'etc/main.cf'),
  [
    `queue_directory = ${dir}/queue`,
    `data_directory = ${dir}/data`,
    `mail_owner = ${instanceMailOwner()}`,
    'compatibility_level = 3.6',
    'smtpd_tls_session_cache_database = btree:${data_directory}/smtpd_scache',
    'smtp_tls_session_cache_database = btree:${data_directory}/smtp_scache',
    '',
  ].join('\n'),
);
const SOCKET = join(dir, 'queue/private/tlsmgr');
const DB = join(dir, 'data/smtpd_scache.sqlite');

interface Daemon {
  readonly child: ChildProcess;
  readonly stderr: () => string;
  readonly exited: Promise<number | string>;
}

async function start(): Promise<Daemon> {
  const env: NodeJS.ProcessEnv = { ...process.env, MAIL_CONFIG: join(dir, 'etc') };
  delete env.GENERATION;
  const child = spawn(process.execPath, [BIN], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  children.push(child);
  const out = captureChild(child);
  const exited = new Promise<number | string>((resolve) => child.on('exit', (code, sig) => resolve(code ?? sig ?? 'unknown')));
  // Logged once the socket listens.
  await out.logged(/listening on /, START_MS);
  return { child, stderr: out.stderr, exited };
}

const idOf = (c: number, i: number): string => `crash-${c}-${i}`.padEnd(94, 'X');

test('kill -9 in the middle of a load, then a restart: clean, empty, no warning', { timeout: 60000 }, async () => {
  const first = await start();
  const clients = await Promise.all([0, 1, 2, 3].map(() => TlsmgrClient.connect(SOCKET, { timeoutMs: 5000 })));
  const stored: string[] = [];
  const more = new Signal();
  let stop = false;
  const loads = clients.map(async (c, ci) => {
    for (let i = 0; !stop; i++) {
      try {
        if ((await c.update('smtpd', idOf(ci, i), randomBytes(1500))) === 0) stored.push(idOf(ci, i));
        more.wake();
      } catch {
        return; // the daemon died under us
      }
    }
  });
  await more.until(() => stored.length >= 2000, 20000, () => `2000 entries loaded before the kill (${stored.length})`);
  first.child.kill('SIGKILL');
  assert.equal(await first.exited, 'SIGKILL');
  stop = true;
  await Promise.all(loads);
  for (const c of clients) c.close();
  assert.ok(existsSync(`${DB}-wal`) && existsSync(`${DB}-shm`), 'the crash left the WAL files behind');
  const crashedSize = statSync(DB).size + statSync(`${DB}-wal`).size;
  assert.ok(crashedSize > 1_000_000, `the first run wrote data: ${crashedSize} bytes`);

  const second = await start();
  try {
    assert.doesNotMatch(second.stderr(), /warning:|error:|fatal:|panic:/, second.stderr());
    const c = await TlsmgrClient.connect(SOCKET, { timeoutMs: 5000 });
    try {
      for (const id of [stored[0], stored[stored.length - 1], ...stored.filter((_, i) => i % 97 === 0)]) {
        assert.equal((await c.lookup('smtpd', id)).status, -1, `${id.slice(0, 20)} is gone`);
      }
      const s = randomBytes(1500);
      assert.equal(await c.update('smtpd', 'after-restart', s), 0);
      const r = await c.lookup('smtpd', 'after-restart');
      assert.equal(r.status, 0);
      assert.ok(r.session.equals(s));
    } finally {
      c.close();
    }
    assert.ok(statSync(DB).size < 1_000_000, `a fresh database: ${statSync(DB).size} bytes`);
    assert.equal(statSync(DB).mode & 0o777, 0o600);
    assert.doesNotMatch(second.stderr(), /warning:|error:|fatal:|panic:/, second.stderr());
  } finally {
    second.child.kill('SIGTERM');
    assert.equal(await second.exited, 0);
  }
});
