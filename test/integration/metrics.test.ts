/*
 * metrics - the Prometheus metrics of a real standalone daemon (`node bin/tlsmgr`,
 * bench/daemon.ts startDaemon) with tlsmgr_metrics_listen on a free loopback port:
 * - requests made with a TlsmgrClient (updates, lookups hit and miss, a delete, seeds,
 *   ticket key lookups, a policy) show EXACTLY in `tlsmgr-ctl metrics` (ctl/main.ts) and in
 *   GET /metrics: the cache counters, seed requests and bytes, ticket key lookups by result,
 *   requests_total and the duration histogram's count per request name, the open
 *   connections; both texts carry the same counts;
 * - GET /metrics has prom-client's Content-Type; another path is 404, another method 405;
 * - no cache_id, session byte, seed byte or ticket key name is in the text;
 * - a listener that cannot be bound (the port taken) is a warning, and the daemon serves
 *   Postfix and tlsmgr-ctl metrics all the same; once the port is free (as after the old
 *   daemon of a postfix reload exits) the next try binds it and GET /metrics answers.
 * Every wait is bounded (client timeouts, request timeouts, the child's exit).
 */

import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { startDaemon, type RunningDaemon } from '../../bench/daemon.js';
import { TlsmgrClient } from '../../src/client/client.js';
import { main } from '../../src/ctl/main.js';
import { STAT } from '../../src/protocol/names.js';

let d: RunningDaemon;
let client: TlsmgrClient;
let port: number;

/** A loopback port free now (bound by the system, then released). */
async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const p = (s.address() as AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return p;
}

before(async () => {
  port = await freePort();
  d = await startDaemon({ args: ['-o', `tlsmgr_metrics_listen=127.0.0.1:${port}`] });
  client = await TlsmgrClient.connect(d.socket, { timeoutMs: 5000 });
});

after(async () => {
  client?.close();
  await d?.stop();
});

async function ctl(dir: string, ...argv: string[]): Promise<{ code: number; out: string[]; err: string[] }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(['-c', join(dir, 'etc'), ...argv], { out: (l) => out.push(l), err: (l) => err.push(l) }, {});
  return { code, out, err };
}

interface HttpReply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function http(method: string, path: string, p = port): Promise<HttpReply> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port: p, method, path, timeout: 5000, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer to ${method} ${path} within 5 s`)));
    req.on('error', reject);
    req.end();
  });
}

/** The samples of a text exposition: "name{labels}" -> value (labels as printed). */
function samples(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^(\S+(?:\{[^}]*\})?) (\S+)$/.exec(line);
    assert.ok(m !== null, `not a sample line: ${line}`);
    out.set(m[1], Number(m[2]));
  }
  return out;
}

async function viaCtl(dir = d.dir): Promise<string> {
  const r = await ctl(dir, 'metrics');
  assert.equal(r.code, 0, r.err.join('\n'));
  return `${r.out.join('\n')}\n`;
}

async function viaHttp(): Promise<string> {
  const r = await http('GET', '/metrics');
  assert.equal(r.status, 200, r.body);
  return r.body;
}

const P = 'postfix_tlsmgr_';
const get = (s: Map<string, number>, key: string): number => {
  const v = s.get(P + key);
  assert.ok(v !== undefined, `no sample ${P}${key}`);
  return v;
};

/** The figures this test changes, read from one text. */
function figures(text: string): Record<string, number> {
  const s = samples(text);
  const f: Record<string, number> = {
    hit: get(s, 'cache_lookups_total{cache="smtpd",result="hit"}'),
    miss: get(s, 'cache_lookups_total{cache="smtpd",result="miss"}'),
    updates: get(s, 'cache_updates_total{cache="smtpd"}'),
    deletes: get(s, 'cache_deletes_total{cache="smtpd"}'),
    entries: get(s, 'cache_entries{cache="smtpd"}'),
    seedRequests: get(s, 'seed_requests_total'),
    seedBytes: get(s, 'seed_bytes_total'),
    keysCreated: get(s, 'ticket_keys_created_total'),
    keyCurrent: get(s, 'ticket_key_lookups_total{result="current"}'),
    keyPrevious: get(s, 'ticket_key_lookups_total{result="previous"}'),
    keyUnknown: get(s, 'ticket_key_lookups_total{result="unknown"}'),
    connections: get(s, 'connections'),
  };
  for (const r of ['seed', 'policy', 'lookup', 'update', 'delete', 'tktkey']) {
    f[`requests.${r}`] = get(s, `requests_total{request="${r}"}`);
    f[`count.${r}`] = get(s, `request_duration_seconds_count{request="${r}"}`);
    f[`inf.${r}`] = get(s, `request_duration_seconds_bucket{request="${r}",le="+Inf"}`);
  }
  return f;
}

test('tlsmgr-ctl metrics and GET /metrics show exactly the requests made, and no secret', async () => {
  const before = figures(await viaCtl());
  assert.deepEqual(figures(await viaHttp()), before, 'both ways give the same figures');

  const session = Buffer.from('metrics-test-session-bytes-0123456789');
  assert.equal(await client.update('smtpd', 'metrics-id-1', session), STAT.OK);
  assert.equal(await client.update('smtpd', 'metrics-id-2', session), STAT.OK);
  assert.equal((await client.lookup('smtpd', 'metrics-id-1')).status, STAT.OK);
  assert.equal((await client.lookup('smtpd', 'metrics-id-none-a')).status, STAT.ERR);
  assert.equal((await client.lookup('smtpd', 'metrics-id-none-b')).status, STAT.ERR);
  assert.equal(await client.delete('smtpd', 'metrics-id-2'), STAT.OK);
  const seeds = [await client.seed(32), await client.seed(7)];
  assert.deepEqual(seeds.map((s) => s.status), [STAT.OK, STAT.OK]);
  const enc = await client.tktkey();
  assert.equal(enc.status, STAT.OK);
  const name = enc.keybuf.subarray(0, 16);
  assert.equal((await client.tktkey(name)).status, STAT.OK);
  assert.equal((await client.tktkey(Buffer.alloc(16, 0xa5))).status, STAT.ERR);
  assert.equal((await client.policy('smtpd')).status, STAT.OK);

  const text = await viaCtl();
  const now = figures(text);
  const delta = (k: string): number => now[k] - before[k];
  assert.equal(delta('hit'), 1);
  assert.equal(delta('miss'), 2);
  assert.equal(delta('updates'), 2);
  assert.equal(delta('deletes'), 1);
  assert.equal(delta('entries'), 1);
  assert.equal(delta('seedRequests'), 2);
  assert.equal(delta('seedBytes'), 39);
  assert.equal(delta('keyCurrent'), 2, 'the encryption lookup and the lookup of its name');
  assert.equal(delta('keyPrevious'), 0);
  assert.equal(delta('keyUnknown'), 1);
  // A daemon with no key yet makes one on the first lookup without a name.
  assert.equal(now.keysCreated, 1);
  assert.equal(now.connections, 1, 'this test client');
  const made: Record<string, number> = { seed: 2, policy: 1, lookup: 3, update: 2, delete: 1, tktkey: 3 };
  for (const [r, n] of Object.entries(made)) {
    assert.equal(delta(`requests.${r}`), n, `requests_total{request="${r}"}`);
    assert.equal(delta(`count.${r}`), n, `request_duration_seconds_count{request="${r}"}`);
    assert.equal(now[`inf.${r}`], now[`count.${r}`], `the +Inf bucket of ${r} is its count`);
  }
  assert.deepEqual(figures(await viaHttp()), now, 'GET /metrics gives the same figures');

  // Nothing secret: no cache_id, session, seed or ticket key name, in any spelling.
  const secrets = [
    'metrics-id-1', 'metrics-id-2', 'metrics-id-none-a',
    session.toString('latin1'), session.toString('base64'), session.toString('hex'),
    name.toString('hex'), name.toString('base64'),
    ...seeds.map((s) => s.seed.toString('hex')),
  ];
  for (const secret of secrets) assert.ok(!text.includes(secret), `the metrics text holds ${secret}`);
  // The process metrics are there too, with the prefix.
  assert.match(text, /^postfix_tlsmgr_process_cpu_seconds_total \d/m);
});

test('GET /metrics: the Prometheus Content-Type; other paths 404; other methods 405', async () => {
  const ok = await http('GET', '/metrics');
  assert.equal(ok.status, 200);
  assert.equal(ok.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8');
  assert.match(ok.body, /^# HELP postfix_tlsmgr_requests_total /m);
  assert.match(ok.body, /^# TYPE postfix_tlsmgr_request_duration_seconds histogram$/m);
  assert.equal((await http('GET', '/metrics?x=1')).status, 200);
  for (const path of ['/', '/metric', '/metrics/', '/status']) {
    assert.equal((await http('GET', path)).status, 404, path);
  }
  for (const method of ['POST', 'PUT', 'DELETE']) {
    const r = await http(method, '/metrics');
    assert.equal(r.status, 405, method);
    assert.equal(r.headers.allow, 'GET, HEAD');
  }
  const head = await http('HEAD', '/metrics');
  assert.equal(head.status, 200);
  assert.equal(head.body, '');
});

test('GET /metrics in a loop: at most one exposition per 100 ms, so a scraper cannot take the daemon\'s thread', async () => {
  const t0 = performance.now();
  for (let i = 0; i < 6; i++) assert.equal((await http('GET', '/metrics')).status, 200);
  // Six renders need at least five intervals between them (a lower bound: never flaky).
  assert.ok(performance.now() - t0 >= 500, `6 expositions in ${(performance.now() - t0).toFixed(0)} ms`);
});

test('a metrics port in use: a warning, the daemon serves on (tlsmgr-ctl metrics too), and binds it once it is free', async () => {
  const taken: Server = createServer();
  await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
  const busy = (taken.address() as AddressInfo).port;
  let other: RunningDaemon | undefined;
  try {
    other = await startDaemon({ args: ['-o', `tlsmgr_metrics_listen=127.0.0.1:${busy}`] });
    const c = await TlsmgrClient.connect(other.socket, { timeoutMs: 5000 });
    try {
      assert.equal((await c.lookup('smtpd', 'nothing-here')).status, STAT.ERR);
    } finally {
      c.close();
    }
    assert.match(
      other.stderr(),
      new RegExp(`warning: metrics listener 127\\.0\\.0\\.1:${busy}: .*EADDRINUSE.* -- trying again every second for 30 s; GET /metrics is not served meanwhile`),
    );
    const s = samples(await viaCtl(other.dir));
    assert.equal(get(s, 'cache_lookups_total{cache="smtpd",result="miss"}'), 1);
    // The port let go (as by the daemon before a postfix reload): the next try binds it.
    await new Promise<void>((resolve) => taken.close(() => resolve()));
    let reply: HttpReply | undefined;
    for (let i = 0; i < 50 && reply?.status !== 200; i++) {
      reply = await http('GET', '/metrics', busy).catch(() => undefined);
      if (reply?.status !== 200) await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(reply?.status, 200, `GET /metrics on ${busy} after the port was freed:\n${other.stderr()}`);
    assert.match(reply.body, /postfix_tlsmgr_cache_lookups_total\{cache="smtpd",result="miss"\} 1\n/);
    assert.match(other.stderr(), new RegExp(`metrics listener 127\\.0\\.0\\.1:${busy}: bound after \\d+ retr(y|ies)`));
  } finally {
    await other?.stop();
    if (taken.listening) await new Promise<void>((resolve) => taken.close(() => resolve()));
  }
});
