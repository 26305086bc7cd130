/*
 * client - the Node.js client library (src/client/client.ts) against a scripted server on a
 * real UNIX socket: the exact request bytes it sends, reply decoding, the per-request timeout
 * (also for a request made long after the previous one, since the client re-arms one timer
 * per connection), a wrong greeting, a connection closed mid-request, a malformed reply, and
 * one request in flight. Every wait is bounded by the client's own timeout or a test timer.
 * The timers here are what is under test (the client's timeout, an idle spell longer than
 * it, replies slower than it in sum); each margin is at least 200 ms, and no test has an
 * upper bound on the time taken.
 */

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { TlsmgrClient } from '../../src/client/client.js';

const dir = mkdtempSync(join(tmpdir(), 'tlsmgr-client-'));
const servers: Server[] = [];
after(() => {
  for (const s of servers) s.close();
  rmSync(dir, { recursive: true, force: true });
});

const GREETING = Buffer.from('protocol\0tlsmgr_protocol\0\0', 'latin1');
let serial = 0;

/* serve - a server whose connections get `greeting` and then `onRequest(bytes, sock)` per chunk */
async function serve(onRequest: (req: Buffer, sock: Socket) => void, greeting: Buffer = GREETING): Promise<string> {
  const path = join(dir, `s${serial++}`);
  const server = createServer((sock) => {
    sock.on('error', () => sock.destroy());
    sock.write(greeting);
    sock.on('data', (b: Buffer) => onRequest(b, sock));
  });
  servers.push(server);
  await new Promise<void>((res) => server.listen(path, res));
  return path;
}

const attrs = (...kv: string[]): Buffer => Buffer.from(`${kv.join('\0')}\0\0`, 'latin1');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

test('requests go out in the exact bytes smtpd sends; replies are decoded', async () => {
  const seen: string[] = [];
  const path = await serve((req, sock) => {
    seen.push(req.toString('latin1'));
    const name = req.toString('latin1').split('\0')[1];
    if (name === 'lookup') sock.write(attrs('status', '0', 'session', Buffer.from('abc').toString('base64')));
    else if (name === 'seed') sock.write(attrs('status', '0', 'seed', Buffer.alloc(4, 7).toString('base64')));
    else if (name === 'policy') sock.write(attrs('status', '0', 'cachable', '3', 'timeout', '3600'));
    else sock.write(attrs('status', '4294967295'));
  });
  const c = await TlsmgrClient.connect(path, { timeoutMs: 2000 });
  try {
    assert.deepEqual(await c.lookup('smtpd', 'id1'), { status: 0, session: Buffer.from('abc') });
    assert.deepEqual(await c.seed(4), { status: 0, seed: Buffer.alloc(4, 7) });
    assert.deepEqual(await c.policy('smtp'), { status: 0, cachable: 3, timeout: 3600 });
    assert.equal(await c.update('smtpd', 'id1', Buffer.from([0, 255])), -1);
    assert.equal(await c.delete('smtpd', 'id1'), -1);
  } finally {
    c.close();
  }
  assert.deepEqual(seen, [
    'request\0lookup\0cache_type\0smtpd\0cache_id\0id1\0\0',
    'request\0seed\0size\x004\0\0',
    'request\0policy\0cache_type\0smtp\0\0',
    'request\0update\0cache_type\0smtpd\0cache_id\0id1\0session\0AP8=\0\0',
    'request\0delete\0cache_type\0smtpd\0cache_id\0id1\0\0',
  ]);
});

test('a request with no reply fails at the timeout, also one made after an idle spell', async () => {
  let answer = true;
  const path = await serve((_req, sock) => {
    if (answer) sock.write(attrs('status', '0'));
  });
  const c = await TlsmgrClient.connect(path, { timeoutMs: 300 });
  assert.equal(await c.delete('smtpd', 'x'), 0);
  // Longer than the timeout with nothing in flight: the connection's timer fires idle and
  // must neither fail the connection nor leave the next request without a deadline.
  await sleep(600);
  assert.equal(await c.delete('smtpd', 'x'), 0);
  answer = false;
  const t0 = Date.now();
  await assert.rejects(c.delete('smtpd', 'x'), /timeout/);
  const took = Date.now() - t0;
  assert.ok(took >= 250, `timeout after ${took} ms`);
  // The connection is unusable afterwards, as documented.
  await assert.rejects(c.delete('smtpd', 'x'), /timeout/);
});

test('the deadline counts from each request, not from the previous one', async () => {
  let delay = 0;
  const path = await serve((_req, sock) => {
    setTimeout(() => sock.write(attrs('status', '0')), delay);
  });
  const c = await TlsmgrClient.connect(path, { timeoutMs: 600 });
  try {
    // Three requests of about 250 ms each: 750 ms in all, over the 600 ms timeout, yet each
    // is within its own deadline.
    delay = 250;
    for (let i = 0; i < 3; i++) assert.equal(await c.delete('smtpd', 'x'), 0);
  } finally {
    c.close();
  }
});

test('a wrong greeting, a closed connection and a malformed reply are errors', async () => {
  const bad = await serve(() => undefined, attrs('protocol', 'other_protocol'));
  await assert.rejects(TlsmgrClient.connect(bad, { timeoutMs: 2000 }), /unexpected protocol greeting/);

  const closing = await serve((_req, sock) => sock.destroy());
  const c1 = await TlsmgrClient.connect(closing, { timeoutMs: 2000 });
  await assert.rejects(c1.seed(32), /closed/);

  const garbage = await serve((_req, sock) => sock.write(attrs('status', 'zero')));
  const c2 = await TlsmgrClient.connect(garbage, { timeoutMs: 2000 });
  try {
    await assert.rejects(c2.delete('smtpd', 'x'), /malformed status/);
  } finally {
    c2.close();
  }
});

test('one request in flight per connection', async () => {
  // The second request is refused in the same turn as the first is sent: no reply can be in.
  const path = await serve((_req, sock) => sock.write(attrs('status', '0')));
  const c = await TlsmgrClient.connect(path, { timeoutMs: 2000 });
  try {
    const first = c.delete('smtpd', 'a');
    await assert.rejects(c.delete('smtpd', 'b'), /already in flight/);
    assert.equal(await first, 0);
  } finally {
    c.close();
  }
});
