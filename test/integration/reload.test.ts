/*
 * reload - a standalone daemon re-reads main.cf on SIGHUP without dropping its cache (issue 5
 * item 5): a session stored before the reload is still found after it, a changed input bound
 * applies at once (a name over the new limit closes the connection), a changed cache setting
 * is reported as needing a restart, and a broken main.cf keeps the running configuration.
 */

import assert from 'node:assert/strict';
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import test from 'node:test';
import { startDaemon } from '../../bench/daemon.js';
import { TlsmgrClient } from '../../src/client/client.js';

async function waitFor(get: () => string, re: RegExp, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!re.test(get())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${re}: ${get()}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Send raw bytes on a fresh connection; resolve 'closed' if the server closes it, else 'open'. */
function probe(path: string, bytes: Buffer, ms = 1000): Promise<'closed' | 'open'> {
  return new Promise((resolve) => {
    const s = createConnection(path);
    const t = setTimeout(() => {
      s.destroy();
      resolve('open');
    }, ms);
    s.on('connect', () => s.write(bytes));
    s.on('data', () => undefined);
    s.on('close', () => {
      clearTimeout(t);
      resolve('closed');
    });
    s.on('error', () => undefined);
  });
}

test('SIGHUP reloads main.cf and keeps the cache', { timeout: 30000 }, async () => {
  const d = await startDaemon();
  try {
    const c = await TlsmgrClient.connect(d.socket);
    const session = Buffer.from('session bytes kept across reload');
    assert.equal(await c.update('smtpd', 'id-1', session), 0);
    c.close();
    const longName = Buffer.from(`request\0seed\0${'n'.repeat(40)}\0x\0\0`, 'latin1');
    assert.equal(await probe(d.socket, longName), 'open', 'a 40-byte name is fine at the default limit');

    const mainCf = join(d.dir, 'etc/main.cf');
    appendFileSync(mainCf, 'tlsmgr_attr_name_limit = 16\nsmtpd_tls_session_cache_timeout = 7200s\n');
    d.proc.kill('SIGHUP');
    await waitFor(d.stderr, /reload: .*main\.cf and tlsmgr\.cf re-read/);
    assert.match(d.stderr(), /warning: reload: a changed setting \(cache\) takes effect only after a restart/);

    const c2 = await TlsmgrClient.connect(d.socket);
    const r = await c2.lookup('smtpd', 'id-1');
    assert.equal(r.status, 0, 'the cache survived the reload');
    assert.deepEqual(r.session, session);
    const p = await c2.policy('smtpd');
    assert.equal(p.timeout, 3600, 'a cache timeout change waits for a restart');
    c2.close();
    assert.equal(await probe(d.socket, longName), 'closed', 'the new name limit applies at once');
    assert.match(d.stderr(), /attribute name length exceeds limit 16/);

    // A broken main.cf: warning, the running configuration stays.
    writeFileSync(mainCf, `${readFileSync(mainCf, 'latin1')}broken line without equals\n`);
    d.proc.kill('SIGHUP');
    await waitFor(d.stderr, /warning: reload: .*keeping the running configuration/);
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
    assert.equal(await probe(d.socket, seed), 'open', 'a second connection is served at the default limit');
    appendFileSync(join(d.dir, 'etc/main.cf'), 'tlsmgr_connection_limit = 1\n');
    d.proc.kill('SIGHUP');
    await waitFor(d.stderr, /reload: .*main\.cf and tlsmgr\.cf re-read/);
    assert.equal(await probe(d.socket, seed), 'closed', 'over the new limit a second connection is closed');
    await waitFor(d.stderr, /tlsmgr_connection_limit = 1 -- refusing a new connection/);
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
    assert.equal(await probe(d.socket, seed), 'open', 'a second connection is served at main.cf\'s limit 5');
    assert.match(d.stderr(), /warning: .*\/main\.cf: parameter tlsmgr_connection_limit belongs in .*\/tlsmgr\.cf\n/);
    writeFileSync(tlsmgrCf, 'tlsmgr_connection_limit = 1\n');
    d.proc.kill('SIGHUP');
    await waitFor(d.stderr, /reload: .*main\.cf and tlsmgr\.cf re-read/);
    assert.match(d.stderr(), /warning: .*\/main\.cf: parameter tlsmgr_connection_limit belongs in .*\/tlsmgr\.cf, which overrides it/);
    assert.equal(await probe(d.socket, seed), 'closed', 'over tlsmgr.cf\'s limit a second connection is closed');
    await waitFor(d.stderr, /tlsmgr_connection_limit = 1 -- refusing a new connection/);
    assert.equal((await held.seed(16)).seed.length, 16, 'the connection already open is kept');
    held.close();
  } finally {
    assert.equal(await d.stop(), 0);
  }
});
