/*
 * hostile-clients - the process-wide client bounds of a real daemon (server/guard.ts, issue 13
 * finding 3), through `node bin/tlsmgr` on its UNIX socket with small limits set by -o:
 * - tlsmgr_connection_limit: one connection too many is closed without a greeting and
 *   logged; once a connection goes, a new one is served;
 * - ipc_timeout: a request stalled halfway is dropped with a warning, while a connection
 *   that is idle between requests stays open and is served long after;
 * - tlsmgr_input_buffer_limit: two clients that together hold more than the bound in
 *   unfinished values: exactly one of them is closed, the other finishes its request, and a
 *   client sending whole requests is served throughout.
 * Each check fails on a daemon without the bounds. Every wait is bounded and waits for what
 * shows the outcome (a log line, a close, a reply), not for a time.
 */

import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { lookupUser } from '../../src/master/passwd.js';
import { OK, req } from '../helpers/attr.js';
import { captureChild, type ChildOutput } from '../helpers/child.js';
import { sleep, TestClient, until } from '../helpers/harness.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const BIN = join(ROOT, 'bin', 'tlsmgr');
const START_MS = 5000;

/** As root the daemon drops to $mail_owner, which must own private/ (as in a real queue). */
const isRoot = process.geteuid?.() === 0;
const OWNER = isRoot ? (lookupUser('postfix') !== null ? 'postfix' : 'nobody') : userInfo().username;

interface Daemon {
  readonly socket: string;
  readonly child: ChildProcess;
  readonly out: ChildOutput;
}

const dirs: string[] = [];
const children: ChildProcess[] = [];
after(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function startDaemon(options: string[]): Promise<Daemon> {
  const dir = mkdtempSync(join(tmpdir(), 'tlsmgr-hostile-'));
  dirs.push(dir);
  chmodSync(dir, 0o755);
  const etc = join(dir, 'etc');
  const queue = join(dir, 'queue');
  const data = join(dir, 'data');
  for (const d of [etc, join(queue, 'private'), data]) mkdirSync(d, { recursive: true, mode: 0o755 });
  const owner = lookupUser(OWNER);
  if (isRoot && owner !== null) {
    chownSync(join(queue, 'private'), owner.uid, owner.gid);
    chmodSync(join(queue, 'private'), 0o700);
    chownSync(data, owner.uid, owner.gid);
  }
  writeFileSync(
    join(etc, 'main.cf'),
    [`queue_directory = ${queue}`, `data_directory = ${data}`, `mail_owner = ${OWNER}`, 'smtpd_tls_session_cache_database = memory:', ''].join('\n'),
  );
  const env: NodeJS.ProcessEnv = { ...process.env, MAIL_CONFIG: etc };
  delete env.GENERATION;
  const child = spawn(process.execPath, [BIN, ...options.flatMap((o) => ['-o', o])], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  const out = captureChild(child);
  const socket = join(queue, 'private', 'tlsmgr');
  await out.logged(/listening on /, START_MS);
  return { socket, child, out };
}

async function seedWorks(c: TestClient): Promise<void> {
  const r = await c.request(req('seed', ['size', '16']));
  assert.equal(r.text('status'), OK);
  assert.equal(r.data('seed').length, 16);
}

/** Wait (bounded) until the daemon's log matches re. */
async function logged(d: Daemon, re: RegExp, ms = 8000): Promise<void> {
  await d.out.logged(re, ms);
}

test('tlsmgr_connection_limit: one connection too many is closed without a greeting; a freed place is served', async () => {
  const d = await startDaemon(['tlsmgr_connection_limit=8']);
  const clients: TestClient[] = [];
  try {
    for (let i = 0; i < 8; i++) clients.push(await TestClient.open(d.socket));
    const extra = await TestClient.connect(d.socket);
    assert.equal((await extra.waitEnd(5000)).length, 0, 'no greeting, no reply for the ninth connection');
    await logged(d, /warning: .*8 connections reach tlsmgr_connection_limit = 8 -- refusing a new connection/);
    for (const c of clients) await seedWorks(c);
    clients.shift()?.destroy();
    // The place is free once the daemon has seen the close; bounded retries.
    let served: TestClient | null = null;
    for (let i = 0; i < 40 && served === null; i++) {
      try {
        served = await TestClient.open(d.socket);
      } catch {
        await sleep(50);
      }
    }
    assert.ok(served !== null, 'a connection is served again after one went away');
    clients.push(served);
    await seedWorks(served);
  } finally {
    for (const c of clients) c.destroy();
  }
});

test('ipc_timeout: a request stalled halfway is dropped; a connection idle between requests is kept', async () => {
  const d = await startDaemon(['ipc_timeout=1s']);
  const idle = await TestClient.open(d.socket);
  await seedWorks(idle);
  const stalled = await TestClient.open(d.socket);
  try {
    stalled.send(Buffer.from('request\0update\0cache_type\0smtpd\0cache_id\0abc\0session\0QUJD', 'latin1'));
    const got = await stalled.waitEnd(8000);
    assert.equal(got.length, 0, 'no reply for the unfinished request');
    await logged(d, /warning: .*request not completed within ipc_timeout = 1s -- closing connection/);
    // The idle connection has been idle since before the stalled request began, longer than
    // that request was given: a deadline on idle connections would have closed it already.
    await seedWorks(idle);
  } finally {
    idle.destroy();
    stalled.destroy();
  }
});

test('tlsmgr_input_buffer_limit: of two clients holding too much, exactly one goes; the other and a whole-request client are served', async () => {
  const d = await startDaemon(['tlsmgr_input_buffer_limit=1500000']);
  const victim = await TestClient.open(d.socket);
  const a = await TestClient.open(d.socket);
  const b = await TestClient.open(d.socket);
  try {
    await seedWorks(victim);
    // Each holds 600 kB of an unfinished session value, which keeps about 1.1 MB alive (the
    // collecting buffer grows by doubling): 2.2 MB together, over the bound; one alone is not.
    const head = Buffer.from('request\0update\0cache_type\0smtpd\0cache_id\0hostile\0session\0', 'latin1');
    const value = Buffer.alloc(600_000, 0x41);
    a.send(Buffer.concat([head, value]));
    b.send(Buffer.concat([head, value]));
    await logged(d, /warning: .*over tlsmgr_input_buffer_limit = 1500000 -- closing the connection that holds the most/);
    await seedWorks(victim);
    await until(() => a.ended || b.ended, 5000, 'the close to reach one of the two');
    assert.notEqual(a.ended, b.ended, 'exactly one of the two was closed');
    const survivor = a.ended ? b : a;
    // The survivor finishes its value (800 base64 chars decode to 600 bytes) and gets its reply.
    survivor.send(Buffer.from('\0\0', 'latin1'));
    const r = await survivor.reply(5000);
    assert.ok(r.text('status') !== undefined, 'the survivor got a reply to its request');
    await seedWorks(victim);
  } finally {
    for (const c of [victim, a, b]) c.destroy();
  }
});

test('tlsmgr_input_buffer_limit counts complete values of a list that never ends', async () => {
  const d = await startDaemon(['tlsmgr_input_buffer_limit=4000000']);
  const victim = await TestClient.open(d.socket);
  const hoarder = await TestClient.open(d.socket);
  try {
    await seedWorks(victim);
    // Five complete 1 MB values (each within tlsmgr_attr_value_limit) and no list terminator:
    // nothing is pending in a token, yet 5 MB stay in memory.
    const parts = [Buffer.from('request\0update\0', 'latin1')];
    for (let i = 0; i < 5; i++) parts.push(Buffer.from(`n${i}\0`, 'latin1'), Buffer.alloc(1_000_000, 0x41), Buffer.alloc(1));
    hoarder.send(Buffer.concat(parts));
    assert.equal((await hoarder.waitEnd(8000)).length, 0, 'the hoarder is closed without a reply');
    await logged(d, /warning: .*over tlsmgr_input_buffer_limit = 4000000 -- closing the connection that holds the most/);
    await seedWorks(victim);
  } finally {
    victim.destroy();
    hoarder.destroy();
  }
});
