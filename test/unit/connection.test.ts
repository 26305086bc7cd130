/*
 * connection - a real server from createTlsmgrServer() on a temp UNIX socket, with real
 * net clients (spec 1.6, 2.2, 2.2.2, 2.2.3; scenarios 1-8, 12, 23a, 51-53, 56, 57, 59):
 * the 26-byte greeting, sequential requests, exact status texts, DATA round trips, status-only
 * FAIL, the wake-up (W\0, request=W, lone W + half-close), EOF after connect, a 2-byte unknown
 * name, half-close in the middle of a request, a stalled connection next to a live one, a
 * token over the limit (one warning, only that connection closed), empty data in FAIL replies;
 * a remote store answering later (replies in request order, a rejected reply is FAIL, a
 * half-close while a reply is on its way); a stream that sends from within write().
 * Every request is sent in one write (spec 2.2 step 2); every wait is bounded and waits for
 * an event, never for a time. "No reply" is checked with a probe: a request that must be
 * answered, whose reply must be the first bytes to arrive (replies come in request order).
 * When the probe must be a read of its own, the test first waits until the server has
 * served the read before it (TestServer.readsServed), as a reply would drop the rest of it.
 */

import assert from 'node:assert/strict';
import { Duplex } from 'node:stream';
import { afterEach, test } from 'node:test';
import type { Request } from '../../src/protocol/requests.js';
import { serveConnection, type ConnectionContext } from '../../src/server/connection.js';
import type { Dispatcher } from '../../src/server/dispatch.js';
import { b64, ERR, FAIL, GREETING_BYTES, list, listLength, OK, req, show, testConfig } from '../helpers/attr.js';
import { makeHarness, startServer, TestClient, until, WAIT_MS, type Harness, type TestServer } from '../helpers/harness.js';
import { Signal } from '../helpers/signal.js';

const bytes = (s: string): Buffer => Buffer.from(s, 'latin1');
const seed = (n: string): Buffer => req('seed', ['size', n]);
const lookup = (id: string | Buffer): Buffer => req('lookup', ['cache_type', 'smtpd'], ['cache_id', id]);
const update = (id: string | Buffer, s: Buffer): Buffer => req('update', ['cache_type', 'smtpd'], ['cache_id', id], ['session', b64(s)]);

const LOOKUP_MISS = `status\0${ERR}\0session\0\0\0`;
const STATUS_ONLY_FAIL = `status\0${FAIL}\0\0`;
/** A request that is always answered, and its exact reply. */
const PROBE = req('policy', ['cache_type', 'smtpd']);
const PROBE_REPLY = `status\0${OK}\0cachable\x001\0timeout\x003600\0\0`;

/**
 * Nothing arrived since the last list read, and nothing is on its way: the probe's reply is
 * the next thing to arrive. The probe must reach the server in a read of its own.
 */
async function nothingBefore(c: TestClient, what: string): Promise<void> {
  assert.equal(show(c.pending), show(Buffer.alloc(0)), what);
  c.send(PROBE);
  assert.equal(show(await c.readList()), show(bytes(PROBE_REPLY)), what);
}

let running: TestServer[] = [];
let clients: TestClient[] = [];

afterEach(async () => {
  for (const c of clients) c.destroy();
  for (const s of running) await s.stop();
  running = [];
  clients = [];
});

async function serve(h: Harness = makeHarness(), ctx?: ConnectionContext): Promise<{ h: Harness; path: string; srv: TestServer }> {
  const s = await startServer(h, ctx);
  running.push(s);
  return { h, path: s.path, srv: s };
}

/** Send bytes and wait until the server has served them as one more read. */
async function sendRead(srv: TestServer, c: TestClient, b: Buffer): Promise<void> {
  const n = srv.reads;
  c.send(b);
  await srv.readsServed(n + 1);
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
  await nothingBefore(c, 'nothing after the greeting');
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
  await nothingBefore(c, 'nothing after the last reply');
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
  await nothingBefore(c, 'the other two empty lists were dropped with the read');
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
  const { h, path, srv } = await serve();
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
  await sendRead(srv, d, bytes('W'));
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
  const { h, path, srv } = await serve();
  const c = await open(path);
  await sendRead(srv, c, bytes('x\0'));
  await nothingBefore(c, 'no reply to "x"');
  assert.equal(c.ended, false);
  assert.equal((await c.request(seed('3'))).data('seed').length, 3);
  assert.deepEqual(h.warnings, []);
});

test('unknown request name in a full list -> no reply; the next request is answered', async () => {
  const { path, srv } = await serve();
  const c = await open(path);
  await sendRead(srv, c, req('foo', ['size', '1']));
  await nothingBefore(c, 'no reply to "foo"');
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
  // The reply was read, so that read is over: the seed is a read of its own.
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
  // Answered while A's requests are still unfinished: A is not waited for.
  const r = await b.request(seed('32'));
  assert.equal(r.status, 0);
  // A completes its request later and is answered too.
  a.send(bytes('ze\x0032\0\0'));
  const ra = await a.reply();
  assert.equal(ra.data('seed').length, 32);
});

test('a token over the limit closes only that connection, with one warning', async () => {
  const h = makeHarness({ config: testConfig({ attrNameLimit: 32, attrValueLimit: 2048, attrCountLimit: 8 }) });
  const { path, srv } = await serve(h);
  const good = await open(path);
  assert.equal((await good.request(seed('1'))).status, 0);

  // A value over the limit, streamed in two writes without its NUL.
  const bad = await open(path);
  await sendRead(srv, bad, Buffer.concat([bytes('request\0update\0cache_type\0smtpd\0cache_id\0x\0session\0'), Buffer.alloc(1500, 0x41)]));
  assert.deepEqual(h.warnings, [], 'still within the limit: waiting');
  bad.send(Buffer.alloc(1500, 0x41));
  assert.equal((await bad.waitEnd()).length, 0, 'closed without a reply, to either part');
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
  await until(() => srv.connections === 0, WAIT_MS, 'the over-limit connection to go');
  const w = await connect(srv.path, true);
  w.send(bytes('W\0'));
  assert.equal(show(await w.waitEnd()), show(GREETING_BYTES));
  await until(() => srv.connections === 0, WAIT_MS, 'the wake-up connection to go');
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

test('a stream that sends the next request from within write() still gets every reply', async () => {
  // An in-memory Duplex answers inside write(): the next request arrives while the server
  // is still writing this turn's replies.
  const h = makeHarness();
  const replies: Buffer[] = [];
  const got = new Signal();
  let left = 5;
  const sock = new Duplex({
    read: () => undefined,
    write: (chunk: Buffer, _enc, cb) => {
      replies.push(Buffer.from(chunk));
      cb();
      got.wake();
      if (left-- > 0) sock.push(seed(String(left + 1)));
    },
  });
  serveConnection(sock, h.ctx);
  try {
    await got.until(() => replies.length === 6, WAIT_MS, () => `6 writes, have ${replies.length}`);
    assert.equal(show(replies[0]), show(GREETING_BYTES));
    assert.deepEqual(replies.slice(1).map((r) => r.length > 14 && r.subarray(0, 14).toString('latin1') === `status\0${OK}\0seed\0`), [true, true, true, true, true]);
  } finally {
    sock.destroy();
  }
});

/* ---- a remote store: replies that come later ---- */

/** One seed request held by the "remote store" until the test releases it. */
interface Held {
  readonly request: Request;
  /** Answer now (the real dispatcher's reply), or reject with err. */
  release(err?: Error): void;
}

/**
 * A dispatcher like a shared cache's: seed requests answer later, when the test releases
 * them (the real dispatcher's reply, or a rejection); every other request answers at once.
 */
function remoteSeeds(h: Harness): { dispatcher: Dispatcher; next(): Promise<Held>; readonly count: number } {
  const held: Held[] = [];
  const arrived = new Signal();
  let count = 0;
  const dispatcher = Object.create(h.dispatcher) as Dispatcher;
  dispatcher.handle = (r: Request) => {
    if (r.request !== 'seed') return h.dispatcher.handle(r);
    count++;
    return new Promise<Buffer>((resolve, reject) => {
      held.push({
        request: r,
        release: (err) => {
          if (err !== undefined) return reject(err);
          const reply = h.dispatcher.handle(r);
          if (reply instanceof Promise) void reply.then(resolve);
          else resolve(reply);
        },
      });
      arrived.wake();
    });
  };
  return {
    dispatcher,
    async next() {
      await arrived.until(() => held.length > 0, WAIT_MS, 'a seed request to reach the store');
      return held.shift() as Held;
    },
    get count() {
      return count;
    },
  };
}

/** A round trip on another connection: the server has read what was written before it. */
async function roundTrip(path: string): Promise<void> {
  const other = await open(path);
  other.send(PROBE);
  assert.equal(show(await other.readList()), show(bytes(PROBE_REPLY)));
  other.destroy();
}

test('a remote store: the connection waits for the reply on its way; replies keep request order', async () => {
  const h = makeHarness();
  const remote = remoteSeeds(h);
  const { path } = await serve(h, { ...h.ctx, dispatcher: remote.dispatcher });
  const c = await open(path);
  c.send(seed('5'));
  const first = await remote.next();
  // The probe is answered at once by a local cache, but only once the seed is answered.
  c.send(PROBE);
  await roundTrip(path);
  assert.equal(c.pending.length, 0, 'a reply before the seed\'s');
  first.release();
  assert.equal((await c.reply()).data('seed').length, 5, 'the seed\'s reply comes first');
  assert.equal(show(await c.readList()), show(bytes(PROBE_REPLY)));
  // Two seeds in turn: each waits for its reply, none overtakes.
  c.send(seed('6'));
  (await remote.next()).release();
  assert.equal((await c.reply()).data('seed').length, 6);
  c.send(seed('7'));
  (await remote.next()).release();
  assert.equal((await c.reply()).data('seed').length, 7);
  assert.equal(remote.count, 3);
  await nothingBefore(c, 'nothing more');
  assert.deepEqual(h.warnings, []);
});

test('a remote store whose reply fails: that request\'s FAIL and a warning; the connection goes on', async () => {
  const h = makeHarness();
  const remote = remoteSeeds(h);
  const { path } = await serve(h, { ...h.ctx, dispatcher: remote.dispatcher });
  const c = await open(path);
  c.send(seed('5'));
  (await remote.next()).release(new Error('remote store down'));
  assert.equal(show(await c.readList()), show(bytes(`status\0${FAIL}\0seed\0\0\0`)));
  assert.deepEqual(h.takeWarnings(), ['"seed" request failed: remote store down']);
  await nothingBefore(c, 'the connection is still served');
});

test('a remote store: a half-close while the reply is on its way -> that reply, then close', async () => {
  const h = makeHarness();
  const remote = remoteSeeds(h);
  const { path, srv } = await serve(h, { ...h.ctx, dispatcher: remote.dispatcher });
  const c = await open(path, true);
  c.send(seed('5'));
  const held = await remote.next();
  c.end();
  await roundTrip(path); // the server has seen the end of input before the reply comes
  held.release();
  const rest = await c.waitEnd();
  assert.equal(rest.subarray(0, 14).toString('latin1'), `status\0${OK}\0seed\0`);
  assert.equal(show(rest.subarray(listLength(rest))), show(Buffer.alloc(0)), 'one reply only');
  await until(() => srv.connections === 0, WAIT_MS, 'the connection to be closed for good');
  assert.deepEqual(h.warnings, []);
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
