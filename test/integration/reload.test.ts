/*
 * reload - a standalone daemon re-reads main.cf on SIGHUP without dropping its cache (issue 5
 * item 5): a session stored before the reload is still found after it, a changed input bound
 * applies at once (a name over the new limit closes the connection), a changed cache setting
 * is reported as needing a restart, and a broken main.cf keeps the running configuration.
 * Waits are for events (a log line, a reply, a close), each bounded.
 */

import assert from 'node:assert/strict';
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'node:test';
import { startDaemon, type RunningDaemon } from '../../bench/daemon.js';
import { TlsmgrClient } from '../../src/client/client.js';
import { TestClient } from '../helpers/harness.js';
import { Signal } from '../helpers/signal.js';

/** Wait (bounded) until the daemon's stderr matches re, checked each time stderr grows. */
async function waitFor(d: RunningDaemon, re: RegExp, ms = 5000): Promise<void> {
  const grew = new Signal();
  const wake = (): void => grew.wake();
  d.proc.stderr?.on('data', wake);
  try {
    await grew.until(() => re.test(d.stderr()), ms, () => `${re}: ${d.stderr()}`);
  } finally {
    d.proc.stderr?.off('data', wake);
  }
}

/**
 * Send raw bytes (a request that gets a reply while it is within the limits) on a fresh
 * connection: 'replied' when the greeting and a reply arrive, 'closed' when the server
 * closes the connection before.
 */
async function probe(path: string, bytes: Buffer): Promise<'closed' | 'replied'> {
  const c = await TestClient.connect(path);
  try {
    c.send(bytes);
    for (let lists = 0; lists < 2; lists++) {
      try {
        await c.readList();
      } catch (err) {
        if (c.ended) return 'closed';
        throw err;
      }
    }
    return 'replied';
  } finally {
    c.destroy();
  }
}

test('SIGHUP reloads main.cf and keeps the cache', { timeout: 30000 }, async () => {
  const d = await startDaemon();
  try {
    const c = await TlsmgrClient.connect(d.socket);
    const session = Buffer.from('session bytes kept across reload');
    assert.equal(await c.update('smtpd', 'id-1', session), 0);
    c.close();
    const longName = Buffer.from(`request\0seed\0${'n'.repeat(40)}\0x\0\0`, 'latin1');
    assert.equal(await probe(d.socket, longName), 'replied', 'a 40-byte name is fine at the default limit');

    const mainCf = join(d.dir, 'etc/main.cf');
    appendFileSync(mainCf, 'tlsmgr_attr_name_limit = 16\nsmtpd_tls_session_cache_timeout = 7200s\n');
    d.proc.kill('SIGHUP');
    await waitFor(d, /reload: .*main\.cf and tlsmgr\.cf re-read/);
    // Logged after the line above, maybe in a later write.
    await waitFor(d, /warning: reload: a changed setting \(cache\) takes effect only after a restart/);

    const c2 = await TlsmgrClient.connect(d.socket);
    const r = await c2.lookup('smtpd', 'id-1');
    assert.equal(r.status, 0, 'the cache survived the reload');
    assert.deepEqual(r.session, session);
    const p = await c2.policy('smtpd');
    assert.equal(p.timeout, 3600, 'a cache timeout change waits for a restart');
    c2.close();
    assert.equal(await probe(d.socket, longName), 'closed', 'the new name limit applies at once');
    await waitFor(d, /attribute name length exceeds limit 16/);

    // A broken main.cf: warning, the running configuration stays.
    writeFileSync(mainCf, `${readFileSync(mainCf, 'latin1')}broken line without equals\n`);
    d.proc.kill('SIGHUP');
    await waitFor(d, /warning: reload: .*keeping the running configuration/);
    const c3 = await TlsmgrClient.connect(d.socket);
    assert.equal((await c3.lookup('smtpd', 'id-1')).status, 0);
    c3.close();
  } finally {
    assert.equal(await d.stop(), 0);
  }
});

test('SIGHUP applies a changed tlsmgr_connection_limit at once', { timeout: 30000 }, async () => {
  const d = await startDaemon();
  try {
    const held = await TlsmgrClient.connect(d.socket);
    const seed = Buffer.from('request\0seed\0size\x0016\0\0', 'latin1');
    assert.equal(await probe(d.socket, seed), 'replied', 'a second connection is served at the default limit');
    appendFileSync(join(d.dir, 'etc/main.cf'), 'tlsmgr_connection_limit = 1\n');
    d.proc.kill('SIGHUP');
    await waitFor(d, /reload: .*main\.cf and tlsmgr\.cf re-read/);
    assert.equal(await probe(d.socket, seed), 'closed', 'over the new limit a second connection is closed');
    await waitFor(d, /tlsmgr_connection_limit = 1 -- refusing a new connection/);
    assert.equal((await held.seed(16)).seed.length, 16, 'the connection already open is kept');
    held.close();
  } finally {
    assert.equal(await d.stop(), 0);
  }
});

test('SIGHUP re-reads tlsmgr.cf too: a tlsmgr_connection_limit there applies at once and wins over main.cf', { timeout: 30000 }, async () => {
  const d = await startDaemon({ mainCf: { tlsmgr_connection_limit: '5' } });
  try {
    const tlsmgrCf = join(d.dir, 'etc/tlsmgr.cf');
    const held = await TlsmgrClient.connect(d.socket);
    const seed = Buffer.from('request\0seed\0size\x0016\0\0', 'latin1');
    assert.equal(await probe(d.socket, seed), 'replied', 'a second connection is served at main.cf\'s limit 5');
    await waitFor(d, /warning: .*\/main\.cf: parameter tlsmgr_connection_limit belongs in .*\/tlsmgr\.cf\n/);
    writeFileSync(tlsmgrCf, 'tlsmgr_connection_limit = 1\n');
    d.proc.kill('SIGHUP');
    await waitFor(d, /reload: .*main\.cf and tlsmgr\.cf re-read/);
    await waitFor(d, /warning: .*\/main\.cf: parameter tlsmgr_connection_limit belongs in .*\/tlsmgr\.cf, which overrides it/);
    assert.equal(await probe(d.socket, seed), 'closed', 'over tlsmgr.cf\'s limit a second connection is closed');
    await waitFor(d, /tlsmgr_connection_limit = 1 -- refusing a new connection/);
    assert.equal((await held.seed(16)).seed.length, 16, 'the connection already open is kept');
    held.close();
  } finally {
    assert.equal(await d.stop(), 0);
  }
});
