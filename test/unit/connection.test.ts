/*
 * connection - a real server from createTlsmgrServer() on a temp UNIX socket, with real
 * net clients (spec 1.6, 2.2, 2.2.2, 2.2.3; scenarios 1-8, 12, 23a, 51-53, 56, 57, 59):
 * the 26-byte greeting, sequential requests, exact status texts, DATA round trips, status-only
 * FAIL, the wake-up (W\0, request=W, lone W + half-close), EOF after connect, a 2-byte unknown
 * name, half-close in the middle of a request, a stalled connection next to a live one, a
 * token over the limit (one warning, only that connection closed), empty data in FAIL replies.
 * Every request is sent in one write (spec 2.2 step 2); every wait is bounded.
 */

import assert from 'node:assert/strict';
import { afterEach, test } from 'node:test';
import type { ConnectionContext } from '../../src/server/connection.js';
import { b64, ERR, FAIL, GREETING_BYTES, list, OK, req, show, testConfig } from '../helpers/attr.js';
import { makeHarness, startServer, TestClient, type Harness, type TestServer } from '../helpers/harness.js';

const bytes = (s: string): Buffer => Buffer.from(s, 'latin1');
const seed = (n: string): Buffer => req('seed', ['size', n]);
const lookup = (id: string | Buffer): Buffer => req('lookup', ['cache_type', 'smtpd'], ['cache_id', id]);
const update = (id: string | Buffer, s: Buffer): Buffer => req('update', ['cache_type', 'smtpd'], ['cache_id', id], ['session', b64(s)]);

const LOOKUP_MISS = `status\0${ERR}\0session\0\0\0`;
const STATUS_ONLY_FAIL = `status\0${FAIL}\0\0`;
/** How long "nothing arrives" is watched for. */
const QUIET_MS = 100;

/** Poll (bounded) until the server has n open connections; returns the last count seen. */
async function connectionsReach(s: TestServer, n: number, ms = 1000): Promise<number> {
  const count = (): Promise<number> => new Promise((resolve) => s.server.getConnections((_e, k) => resolve(k)));
  const until = Date.now() + ms;
  let k = await count();
  while (k !== n && Date.now() < until) {
    await new Promise((r) => setTimeout(r, 10));
    k = await count();
  }
  return k;
}

let running: TestServer[] = [];
let clients: TestClient[] = [];

afterEach(async () => {
  for (const c of clients) c.destroy();
  for (const s of running) await s.stop();
  running = [];
  clients = [];
});

async function serve(h: Harness = makeHarness(), ctx?: ConnectionContext): Promise<{ h: Harness; path: string }> {
  const s = await startServer(h, ctx);
  running.push(s);
  return { h, path: s.path };
}

async function open(path: string, allowHalfOpen = false): Promise<TestClient> {
  const c = await TestClient.open(path, { allowHalfOpen });
  clients.push(c);
  return c;
}

async function connect(path: string, allowHalfOpen = false): Promise<TestClient> {
  const c = await TestClient.connect(path, { allowHalfOpen });
  clients.push(c);
  return c;
}

async function exactReply(c: TestClient, request: Buffer, want: string): Promise<void> {
  c.send(request);
  assert.equal(show(await c.readList()), show(bytes(want)), show(request));
}

test('scenario 1: the greeting is exactly the 26 bytes, and nothing else until a request', async () => {
  const { path } = await serve();
  const c = await connect(path);
  const g = await c.readList();
  assert.equal(g.length, 26);
  assert.equal(show(g), show(GREETING_BYTES));
  assert.equal(show(g), show(bytes('protocol\0tlsmgr_protocol\0\0')));
  assert.equal((await c.drain(QUIET_MS)).length, 0);
});

test('scenarios 2, 3, 6: sequential requests on one connection, exact replies, no stray bytes', async () => {
  const { h, path } = await serve();
  const c = await open(path);
  const r1 = await c.request(seed('32'));
  assert.deepEqual(r1.names, ['status', 'seed']);
  assert.equal(r1.text('status'), OK);
  assert.equal(r1.data('seed').length, 32);
  await exactReply(c, req('policy', ['cache_type', 'smtpd']), `status\0${OK}\0cachable\x001\0timeout\x003600\0\0`);
  await exactReply(c, lookup('nope'), LOOKUP_MISS);
  await exactReply(c, req('update', ['cache_type', 'smtp'], ['cache_id', 'x'], ['session', '']), STATUS_ONLY_FAIL);
  await exactReply(c, req('delete', ['cache_type', 'smtpd'], ['cache_id', 'nope']), `status\0${ERR}\0\0`);
  const k = await c.request(req('tktkey', ['keyname', '']));
  assert.deepEqual(k.names, ['status', 'keybuf']);
  assert.equal(k.data('keybuf').length, 88);
  assert.equal((await c.drain(QUIET_MS)).length, 0, 'nothing after the last reply');
  assert.deepEqual(h.warnings, []);
});

test('scenario 12: consecutive seeds differ (real randomness)', async () => {
  const { path } = await serve(makeHarness({ realRandom: true }));
  const c = await open(path);
  const a = (await c.request(seed('32'))).data('seed');
  const b = (await c.request(seed('32'))).data('seed');
  assert.notEqual(a.toString('hex'), b.toString('hex'));
});

test('scenario 4: DATA round trip for lengths 0, 1, 2, 3, 255, 4096 incl. 0x00 and 0xFF', async () => {
  const { path } = await serve();
  const c = await open(path);
  for (const n of [0, 1, 2, 3, 255, 4096]) {
    const s = Buffer.alloc(n);
    for (let i = 0; i < n; i++) s[i] = [0x00, 0xff, 0xfb, i & 0xff][i % 4];
    await exactReply(c, update(`id-${n}`, s), `status\0${OK}\0\0`);
    const want = `status\0${OK}\0session\0${s.toString('base64')}\0\0`;
    await exactReply(c, lookup(`id-${n}`), want);
    if (n >= 3) assert.ok(s.toString('base64').includes('+') || s.toString('base64').includes('/'), 'alphabet uses + and /');
  }
});

test('scenario 5: first attribute not "request" -> status-only FAIL; the connection stays usable', async () => {
  const { h, path } = await serve();
  const c = await open(path);
  await exactReply(c, list(['size', '1']), STATUS_ONLY_FAIL);
  assert.deepEqual(h.takeWarnings(), ['unexpected attribute size from tlsmgr socket (expecting: request)']);
  assert.equal((await c.request(seed('8'))).data('seed').length, 8);
});

test('scenario 53: "\\0\\0\\0" -> status-only FAIL + warning; the connection stays usable', async () => {
  const { h, path } = await serve();
  const c = await open(path);
  await exactReply(c, bytes('\0\0\0'), STATUS_ONLY_FAIL);
  assert.deepEqual(h.takeWarnings(), ['missing attribute request in input from tlsmgr socket']);
  assert.equal((await c.drain(QUIET_MS)).length, 0, 'the other two empty lists were dropped with the read');
  assert.equal((await c.request(seed('8'))).status, 0);
});

test('scenario 7: "W\\0" -> greeting, then close; no reply, no log; others still served', async () => {
  const { h, path } = await serve();
  const w = await connect(path);
  w.send(bytes('W\0'));
  assert.equal(show(await w.waitEnd()), show(GREETING_BYTES));
  const c = await open(path);
  assert.equal((await c.request(seed('4'))).status, 0);
  assert.deepEqual(h.warnings, []);
});

test('scenario 51: "request\\0W\\0\\0" and a lone "W" + half-close -> greeting only, then close', async () => {
  const { h, path } = await serve();
  const a = await connect(path);
  a.send(req('W'));
  assert.equal(show(await a.waitEnd()), show(GREETING_BYTES));
  const b = await connect(path, true);
  await b.readList();
  b.send(bytes('W'));
  b.end();
  assert.equal((await b.waitEnd()).length, 0);
  // "W" and "\0" in two writes, as master's unix_trigger() sends them
  const d = await open(path);
  d.send(bytes('W'));
  await new Promise((r) => setTimeout(r, 20));
  d.send(bytes('\0'));
  assert.equal((await d.waitEnd()).length, 0);
  assert.deepEqual(h.warnings, []);
});

test('scenario 8: EOF right after connect -> closed quietly', async () => {
  const { h, path } = await serve();
  const c = await connect(path, true);
  c.end();
  assert.equal(show(await c.waitEnd()), show(GREETING_BYTES));
  assert.deepEqual(h.warnings, []);
});

test('scenario 52: "x\\0" -> no reply, the connection stays open, the next request is answered', async () => {
  const { h, path } = await serve();
  const c = await open(path);
  c.send(bytes('x\0'));
  assert.equal((await c.drain(QUIET_MS)).length, 0);
  assert.equal(c.ended, false);
  assert.equal((await c.request(seed('3'))).data('seed').length, 3);
  assert.deepEqual(h.warnings, []);
});

test('unknown request name in a full list -> no reply; the next request is answered', async () => {
  const { path } = await serve();
  const c = await open(path);
  c.send(req('foo', ['size', '1']));
  assert.equal((await c.drain(QUIET_MS)).length, 0);
  assert.equal((await c.request(seed('3'))).status, 0);
});

test('scenario 23a: a trailing extra -> normal reply plus warning; the next request is normal', async () => {
  const { h, path } = await serve();
  const c = await open(path);
  await exactReply(c, req('lookup', ['cache_type', 'smtpd'], ['cache_id', 'x'], ['extra', 'y']), LOOKUP_MISS);
  assert.deepEqual(h.takeWarnings(), ['unexpected attribute extra from tlsmgr socket (expecting: (list terminator))']);
  assert.equal((await c.request(seed('5'))).data('seed').length, 5);
  await exactReply(c, req('lookup', ['cache_id', 'x'], ['cache_type', 'smtpd']), `status\0${FAIL}\0session\0\0\0`);
  assert.equal((await c.request(seed('5'))).status, 0, 'scenario 23b: the connection stays open after FAIL');
});

test('scenario 50: a lookup with a trailing extra, then a seed in a later write: both answered', async () => {
  const { h, path } = await serve();
  const c = await open(path);
  c.send(req('lookup', ['cache_type', 'smtpd'], ['cache_id', 'x'], ['extra', 'y']));
  assert.equal(show(await c.readList()), show(bytes(LOOKUP_MISS)));
  await new Promise((r) => setTimeout(r, QUIET_MS));
  assert.equal((await c.request(seed('6'))).data('seed').length, 6);
  assert.deepEqual(h.warnings, ['unexpected attribute extra from tlsmgr socket (expecting: (list terminator))']);
});

test('scenario 56: half-close after "request\\0seed\\0" -> FAIL reply, then close; no warning', async () => {
  const { h, path } = await serve();
  const c = await open(path, true);
  c.send(bytes('request\0seed\0'));
  c.end();
  assert.equal(show(await c.waitEnd()), show(bytes(`status\0${FAIL}\0seed\0\0\0`)));
  assert.deepEqual(h.warnings, []);
});

test('scenario 56: half-close after "request\\0seed\\0si" -> FAIL reply + warning, then close', async () => {
  const { h, path } = await serve();
  const c = await open(path, true);
  c.send(bytes('request\0seed\0si'));
  c.end();
  assert.equal(show(await c.waitEnd()), show(bytes(`status\0${FAIL}\0seed\0\0\0`)));
  assert.deepEqual(h.warnings, ['unexpected end-of-input from tlsmgr socket while reading input attribute name']);
});

test('scenario 56: half-close after "request\\0se" -> closed without reply, with warning', async () => {
  const { h, path } = await serve();
  const c = await open(path, true);
  c.send(bytes('request\0se'));
  c.end();
  assert.equal((await c.waitEnd()).length, 0);
  assert.deepEqual(h.warnings, ['unexpected end-of-input from tlsmgr socket while reading input attribute value']);
});

test('half-close after a complete request: its reply, then close', async () => {
  const { path } = await serve();
  const c = await open(path, true);
  c.send(seed('7'));
  c.end();
  const rest = await c.waitEnd();
  assert.equal(rest.subarray(0, 14).toString('latin1'), `status\0${OK}\0seed\0`);
});

test('scenario 59: a stalled connection does not delay another', async () => {
  const { path } = await serve();
  const a = await open(path);
  const a2 = await open(path);
  a.send(bytes('request\0seed\0si'));
  a2.send(bytes('ab'));
  const b = await open(path);
  const t0 = Date.now();
  const r = await b.request(seed('32'), 1000);
  assert.equal(r.status, 0);
  assert.ok(Date.now() - t0 < 500, `answered after ${Date.now() - t0} ms`);
  // A completes its request later and is answered too.
  a.send(bytes('ze\x0032\0\0'));
  const ra = await a.reply();
  assert.equal(ra.data('seed').length, 32);
});

test('a token over the limit closes only that connection, with one warning', async () => {
  const h = makeHarness({ config: testConfig({ attrNameLimit: 32, attrValueLimit: 2048, attrCountLimit: 8 }) });
  const { path } = await serve(h);
  const good = await open(path);
  assert.equal((await good.request(seed('1'))).status, 0);

  // A value over the limit, streamed in two writes without its NUL.
  const bad = await open(path);
  bad.send(Buffer.concat([bytes('request\0update\0cache_type\0smtpd\0cache_id\0x\0session\0'), Buffer.alloc(1500, 0x41)]));
  assert.equal((await bad.drain(QUIET_MS)).length, 0, 'still within the limit: waiting');
  assert.equal(bad.ended, false);
  bad.send(Buffer.alloc(1500, 0x41));
  assert.equal((await bad.waitEnd()).length, 0, 'closed without a reply');
  assert.deepEqual(h.takeWarnings(), ['attribute value length exceeds limit 2048 on tlsmgr socket -- closing connection']);

  // A name over the limit.
  const bad2 = await open(path);
  bad2.send(list(['n'.repeat(33), 'x']));
  assert.equal((await bad2.waitEnd()).length, 0);
  assert.deepEqual(h.takeWarnings(), ['attribute name length exceeds limit 32 on tlsmgr socket -- closing connection']);

  // Too many attributes.
  const bad3 = await open(path);
  const many: Array<[string, string]> = [];
  for (let i = 0; i < 8; i++) many.push([`x${i}`, 'y']);
  bad3.send(req('seed', ['size', '1'], ...many));
  assert.equal((await bad3.waitEnd()).length, 0);
  assert.deepEqual(h.takeWarnings(), ['attribute count exceeds limit 8 on tlsmgr socket -- closing connection']);

  // At the limits exactly: served.
  assert.equal((await good.request(req('seed', ['size', '1'], ['n'.repeat(32), 'v'.repeat(2048)]))).status, 0);
  assert.equal((await good.request(seed('2'))).data('seed').length, 2);
  h.takeWarnings();
});

test('a connection the server closes (limit, wake-up) is closed for good, even if the client keeps its side open', async () => {
  const h = makeHarness({ config: testConfig({ attrNameLimit: 32 }) });
  const srv = await startServer(h);
  running.push(srv);
  const bad = await open(srv.path, true);
  bad.send(list(['n'.repeat(33), 'x']));
  await bad.waitEnd();
  bad.send(Buffer.alloc(1000, 0x41)); // still talking: must not keep the server's socket alive
  assert.equal(await connectionsReach(srv, 0), 0, 'the over-limit connection is gone');
  const w = await connect(srv.path, true);
  w.send(bytes('W\0'));
  assert.equal(show(await w.waitEnd()), show(GREETING_BYTES));
  assert.equal(await connectionsReach(srv, 0), 0, 'the wake-up connection is gone');
  assert.equal(h.takeWarnings().length, 1);
});

test('scenario 57: FAIL replies carry empty data', async () => {
  const { path } = await serve();
  const c = await open(path);
  await exactReply(c, update('secret', bytes('TOP SECRET SESSION')), `status\0${OK}\0\0`);
  assert.equal((await c.request(lookup('secret'))).status, 0);
  await exactReply(c, req('update', ['cache_type', 'smtpd'], ['cache_id', 'y'], ['session', 'WFla!!!!']), `status\0${FAIL}\0\0`);
  await exactReply(c, req('lookup', ['cache_type', 'smtpd']), `status\0${FAIL}\0session\0\0\0`);
  assert.equal((await c.request(seed('64'))).status, 0);
  await exactReply(c, seed('abc'), `status\0${FAIL}\0seed\0\0\0`);
  await exactReply(c, req('tktkey', ['keyname', 'QUJD!!!!']), `status\0${FAIL}\0keybuf\0\0\0`);
  // Another connection's FAIL after this one's data: still empty.
  const d = await open(path);
  await exactReply(d, req('seed'), `status\0${FAIL}\0seed\0\0\0`);
});

test('onRequest brackets every readable event, as multi_server brackets its service routine (spec 5.3)', async () => {
  const h = makeHarness();
  const calls: boolean[] = [];
  const { path } = await serve(h, { ...h.ctx, onRequest: (busy) => calls.push(busy) });
  const c = await open(path);
  await c.request(seed('1'));
  await c.request(req('policy', ['cache_type', 'smtp']));
  await c.request(list(['size', '1']));
  assert.deepEqual(calls, [true, false, true, false, true, false]);
});

test('an exception in a request handler becomes that request\'s FAIL; the server lives on', async () => {
  // (A seed source that throws is the dispatcher's ERR, dispatch.test.ts; the key ring is not.)
  const h = makeHarness();
  h.tickets.key = () => {
    throw new Error('key ring failure');
  };
  const tktkey = req('tktkey', ['keyname', '']);
  const { path } = await serve(h);
  const c = await open(path);
  await exactReply(c, tktkey, `status\0${FAIL}\0keybuf\0\0\0`);
  assert.deepEqual(h.takeWarnings(), ['"tktkey" request failed: key ring failure']);
  await exactReply(c, req('policy', ['cache_type', 'smtpd']), `status\0${OK}\0cachable\x001\0timeout\x003600\0\0`);
  const d = await open(path);
  await exactReply(d, tktkey, `status\0${FAIL}\0keybuf\0\0\0`);
});

test('a client that disconnects in the middle of a request does not disturb the server', async () => {
  const { path } = await serve();
  const a = await open(path);
  a.send(bytes('request\0update\0cache_type\0smtpd\0cache_id\0x\0session\0QUJD'));
  a.destroy();
  const b = await open(path);
  assert.equal((await b.request(seed('9'))).data('seed').length, 9);
});

/* ---- serveBytes: the -S path (one request from a buffer, no greeting) ---- */

test('-S mode: one request in, its reply out, no greeting; warnings name "unknown_stream"', () => {
  const h = makeHarness({ path: 'unknown_stream' });
  assert.equal(show(h.serveRaw(req('policy', ['cache_type', 'smtpd']))), show(bytes(`status\0${OK}\0cachable\x001\0timeout\x003600\0\0`)));
  assert.equal(show(h.serveRaw(req('seed'))), show(bytes(`status\0${FAIL}\0seed\0\0\0`)));
  assert.deepEqual(h.takeWarnings(), ['missing attribute size in input from unknown_stream']);
  // Only the first request of the input is served.
  const two = h.serveRaw(Buffer.concat([req('policy', ['cache_type', 'smtp']), req('policy', ['cache_type', 'smtpd'])]));
  assert.equal(show(two), show(bytes(`status\0${OK}\0cachable\x000\0timeout\x003600\0\0`)));
});

test('-S mode: empty input, wake-up, unknown and truncated input', () => {
  const h = makeHarness({ path: 'unknown_stream' });
  assert.equal(h.serveRaw(Buffer.alloc(0)).length, 0);
  assert.equal(h.serveRaw(bytes('W\0')).length, 0);
  assert.equal(h.serveRaw(req('W')).length, 0);
  assert.equal(h.serveRaw(req('foo')).length, 0);
  assert.equal(show(h.serveRaw(bytes('request\0seed\0'))), show(bytes(`status\0${FAIL}\0seed\0\0\0`)));
  assert.equal(h.serveRaw(bytes('request\0se')).length, 0);
  assert.deepEqual(h.takeWarnings(), ['unexpected end-of-input from unknown_stream while reading input attribute value']);
  // A short request name read on the bare path, then its attributes.
  assert.equal(h.serveRaw(bytes('\0')).length, 0);
});

test('-S mode: input over a limit gives no reply and one warning', () => {
  const h = makeHarness({ config: testConfig({ attrNameLimit: 32 }), path: 'unknown_stream' });
  assert.equal(h.serveRaw(list(['n'.repeat(33), 'x'])).length, 0);
  assert.equal(h.takeWarnings().length, 1);
});
