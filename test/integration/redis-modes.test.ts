/*
 * redis-modes - the other ways of reaching Redis, end to end against real redis-server
 * processes: TLS, Sentinel (plain and over TLS, with a failover) and Redis Cluster. As in
 * redis-cluster.test.ts, two in-process "members" (each its own RedisLink, TlsScache over a
 * RedisStore, and SharedTicketKeys from readRedisConfig + parseClusterKeys, one cluster key)
 * must share:
 * a session stored through A is found, byte for byte, through B; a delete through B makes A
 * miss; both hand out the same ticket key and find it by name. Every check also reads the
 * servers directly (the helper's raw RESP client on the UNIX socket, or redis-cli --tls with
 * the test CA) for the keys under the configured key_prefix, so nothing passes without data
 * crossing a server.
 * - TLS: a TLS-only server (--port 0 --tls-port) that requires client certificates, with a
 *   throw-away CA; the server certificate names localhost only, so tls_server_name is used.
 *   Negatives (never ready, lookups miss at once without a round trip, no exception): another
 *   CA, no client certificate, no server name (127.0.0.1 is not in the certificate).
 * - Sentinel: a master, a replica and one Sentinel; members find the master through the
 *   Sentinel; SENTINEL FAILOVER promotes the replica, the old master is stopped, and the
 *   members share again through the new master (bounded waits), with the data written before.
 * - Sentinel over TLS: a TLS-only master and a TLS-only Sentinel (tls = yes must reach both).
 * - Redis Cluster: 3 masters, no replicas; keys spread over the nodes (each key on the node
 *   that owns its slot); a cluster key roll ([1] -> [2, 1] -> [3, 2, 1]), whose lookups and
 *   deletes name keys in different hash slots (a multi-key DEL there fails with CROSSSLOT).
 * Two bugs these found are fixed in src/: with sentinels, tls = yes was ignored by ioredis
 * (cluster/link.ts), and in Redis Cluster a delete during a key roll failed with CROSSSLOT
 * and an update left the old entries (cache/stores/redis.ts, RedisStore.del).
 * LIMITS
 *   Needs redis-server, redis-cli and openssl (skipWithoutRedis; CI=true makes a missing
 *   redis-server a failure). Servers listen on 127.0.0.1 (free ports) and UNIX sockets in
 *   mkdtemp() directories, and are stopped in after(). Every wait is bounded; nothing is timed:
 *   "fails fast" is checked by the link's counters (no round trip, each call a fallback).
 *   The failover is a manual SENTINEL FAILOVER (no down-detection wait); the old master is
 *   then stopped, so the members may switch on +switch-master or on the lost connection --
 *   which of the two is not checked. Redis Cluster is tested without TLS and without
 *   replicas (no cluster failover, no slot migration).
 * DIAGNOSTICS
 *   Assertion messages name the mode and what did not cross; the members' warnings are in
 *   the message when a link does not become ready.
 */

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { TlsScache } from '../../src/cache/scache.js';
import { RedisStore } from '../../src/cache/stores/redis.js';
import { readRedisConfig } from '../../src/cluster/config.js';
import { parseClusterKeys, type ClusterKeys } from '../../src/cluster/keyfile.js';
import { RedisLink } from '../../src/cluster/link.js';
import { FakeClock } from '../../src/util/clock.js';
import { TicketKeyRing, type TicketKeyResult } from '../../src/tickets/keys.js';
import { SharedTicketKeys } from '../../src/tickets/shared.js';
import { T0 } from '../helpers/harness.js';
import { makeTestPki, redisCli, skipWithoutRedis, startRedis, startRedisCluster, startSentinel, waitFor, writeClusterFiles, type RedisServer, type RespValue, type SentinelServer, type TestPki } from '../helpers/redis.js';

const skip = skipWithoutRedis();
const TIMEOUT = 3600;
const K1 = `1 ${'a1'.repeat(32)}`;
const K2 = `2 ${'b2'.repeat(32)}`;
const K3 = `3 ${'c3'.repeat(32)}`;
/** Call timeout of the members: generous, as a loaded machine must not make a false miss. */
const CALL = '2s';

let dir: string;
let pki: TestPki;

before(async () => {
  if (skip !== false) return;
  dir = mkdtempSync(join(tmpdir(), 'tlsmgr-redis-modes-'));
  pki = await makeTestPki(dir);
});

after(() => {
  if (skip !== false) return;
  rmSync(dir, { recursive: true, force: true });
});

interface Member {
  readonly link: RedisLink;
  readonly cache: TlsScache;
  readonly store: RedisStore;
  readonly tickets: SharedTicketKeys;
  readonly warnings: string[];
}

function member(cf: string, clock: FakeClock, keys: ClusterKeys = parseClusterKeys(K1, 'k')): Member {
  const warnings: string[] = [];
  const warn = (m: string): void => void warnings.push(m);
  const link = RedisLink.open(readRedisConfig(cf, warn), { clock, warn, info: () => undefined });
  const store = new RedisStore({ cacheType: 'smtpd', link, keys });
  const cache = new TlsScache({ cacheType: 'smtpd', dictName: `redis:${cf}`, timeout: TIMEOUT, store, clock, smtputf8: true, warn });
  const tickets = new SharedTicketKeys({
    link, sealer: keys.sealer, random: randomBytes, fallback: new TicketKeyRing(randomBytes), clock, warn,
  });
  return { link, cache, store, tickets, warnings };
}

function close(...ms: Member[]): void {
  for (const m of ms) m.link.close();
}

/** Wait (bounded: 10 s) until every member's link is ready. */
async function ready(...ms: Member[]): Promise<void> {
  for (const m of ms) {
    const ok = await waitFor(() => m.link.ready, 200, 50);
    assert.ok(ok, `the link did not become ready within 10 s; warnings:\n${m.warnings.join('\n')}`);
  }
}

function okKey(r: TicketKeyResult): Buffer {
  assert.equal(r.status, 'ok');
  return (r as Extract<TicketKeyResult, { status: 'ok' }>).key.record;
}

interface Shared {
  /** Store keys of the entries still there (one per session, under the first id key). */
  readonly kept: string[];
  /** Store key of the entry deleted through B. */
  readonly deleted: string;
  /** The sessions still there, by store key. */
  readonly sessions: Map<string, Buffer>;
}

/*
 * share - n sessions stored through a are found through b (same bytes); the first is deleted
 * through b and then missed by both; a and b hand out the same current ticket key, and b
 * finds a's by name. No Redis call failed on either side.
 */
async function share(a: Member, b: Member, clock: FakeClock, n: number, what: string): Promise<Shared> {
  const sessions = new Map<string, Buffer>();
  let deleted = '';
  for (let i = 0; i < n; i++) {
    const id = Buffer.from(`[192.0.2.${i + 1}]:25&${what}&${randomBytes(8).toString('hex')}`);
    const s = randomBytes(200 + i);
    await a.cache.update(id, s);
    assert.deepEqual(await b.cache.lookup(id), s, `${what}: session ${i} stored through A was not found through B`);
    const key = a.store.keysFor(id)[0];
    if (i === 0) {
      assert.equal(await b.cache.delete(id), true, `${what}: the delete through B found nothing`);
      assert.equal(await a.cache.lookup(id), null, `${what}: A still finds the entry B deleted`);
      assert.equal(await b.cache.lookup(id), null);
      deleted = key;
    } else {
      sessions.set(key, s);
    }
  }
  const ka = okKey(await a.tickets.key(null, clock.now(), TIMEOUT));
  const kb = okKey(await b.tickets.key(null, clock.now(), TIMEOUT));
  assert.ok(ka.equals(kb), `${what}: the members hand out different ticket keys`);
  assert.equal(ka.length, 88);
  assert.ok(okKey(await b.tickets.key(ka.subarray(0, 16), clock.now(), TIMEOUT)).equals(ka), `${what}: B does not find A's key by name`);
  for (const [m, name] of [[a, 'A'], [b, 'B']] as const) {
    assert.equal(m.link.counters.errors + m.link.counters.timeouts + m.link.counters.fallbacks, 0,
      `${what}: member ${name} had failed calls: ${JSON.stringify(m.link.counters)} ${m.warnings.join('\n')}`);
    assert.ok(m.link.counters.roundtrips >= n, `${what}: member ${name} made ${m.link.counters.roundtrips} round trips`);
  }
  return { kept: [...sessions.keys()], deleted, sessions };
}

function str(v: RespValue): string {
  assert.ok(Buffer.isBuffer(v), `expected a string reply, got ${String(v)}`);
  return v.toString();
}

/*
 * checkStored - the raw view of one server (its dump) holds exactly the kept session keys
 * under prefix (each a sealed record: longer than the session, not containing it), not the
 * deleted one, and two ticket keys (this slot and the next).
 */
function checkStored(dump: Map<string, Buffer>, prefix: string, shared: Shared, what: string): void {
  const mine = [...dump.keys()].filter((k) => k.startsWith(prefix));
  const sessionKeys = mine.filter((k) => k.startsWith(`${prefix}scache:smtpd:`));
  assert.deepEqual(sessionKeys.sort(), [...shared.kept].sort(), `${what}: the session keys in Redis`);
  assert.equal(mine.filter((k) => /^tktkey:1800:\d+$/.test(k.slice(prefix.length))).length, 2, `${what}: ticket keys in Redis: ${mine.join(' ')}`);
  assert.equal(mine.length, sessionKeys.length + 2, `${what}: unexpected keys: ${mine.join(' ')}`);
  assert.equal(dump.has(shared.deleted), false, `${what}: the deleted entry is still in Redis`);
  for (const k of sessionKeys) {
    const v = dump.get(k) as Buffer;
    const s = shared.sessions.get(k) as Buffer;
    assert.ok(v.length > s.length && !v.includes(s.subarray(0, 32)), `${what}: ${k} does not hold a sealed record`);
  }
}

describe('TLS to Redis', { skip }, () => {
  let server: RedisServer;
  let cfDir: string;
  const PREFIX = 'tlsmgr-tls:';
  const cf = (name: string, lines: readonly string[], timeout = CALL): string =>
    writeClusterFiles(cfDir, server, { name, via: 'tcp', timeout, keys: [K1], extra: ['tls = yes', `key_prefix = ${PREFIX}`, ...lines] }).cf;
  const good = (): string[] => [`tls_ca_file = ${pki.ca}`, `tls_cert_file = ${pki.clientCert}`, `tls_key_file = ${pki.clientKey}`, 'tls_server_name = localhost'];

  before(async () => {
    cfDir = mkdtempSync(join(tmpdir(), 'tlsmgr-redis-tls-'));
    server = await startRedis({ tls: { cert: pki.serverCert, key: pki.serverKey, ca: pki.ca, authClients: true } });
  });
  after(async () => {
    await server?.destroy();
    rmSync(cfDir, { recursive: true, force: true });
  });

  test('two members share sessions and ticket keys over TLS (CA, client certificate, server name)', async () => {
    const clock = new FakeClock(T0);
    const file = cf('good', good());
    const a = member(file, clock);
    const b = member(file, clock);
    try {
      await ready(a, b);
      const shared = await share(a, b, clock, 5, 'tls');
      // The server has no plain TCP port (--port 0): the members spoke TLS. Look with redis-cli
      // over TLS, checking the server with the test CA, and with the raw client.
      const listed = (await redisCli(server, pki, '--scan', '--pattern', `${PREFIX}*`)).split('\n').filter((l) => l !== '');
      assert.deepEqual(listed.filter((k) => k.includes(':scache:')).sort(), [...shared.kept].sort(), 'redis-cli --tls lists the session keys');
      assert.equal(listed.length, shared.kept.length + 2, `redis-cli --tls: ${listed.join(' ')}`);
      const pttl = Number((await redisCli(server, pki, 'PTTL', shared.kept[0])).trim());
      assert.ok(pttl > (TIMEOUT - 60) * 1000 && pttl <= (TIMEOUT + 1) * 1000, `the entry's TTL is the cache timeout + 1 s: ${pttl}`);
      checkStored(await server.dump(), PREFIX, shared, 'tls');
      const plain = await redisCli(server, null, 'PING').catch((e: Error) => e.message);
      assert.doesNotMatch(plain, /PONG/, 'the server must not answer without TLS');
    } finally {
      close(a, b);
    }
  });

  for (const [name, lines, reason] of [
    ['another CA', ['tls_ca_file = <other>', 'tls_server_name = localhost'], /certificate/i],
    ['no client certificate', ['<ca>', 'tls_server_name = localhost'], /certificate required|ECONNRESET|socket hang up|Connection is closed/i],
    ['no server name (127.0.0.1 is not in the certificate)', ['<ca>', '<client>'], /altnames/i],
  ] as const) {
    test(`TLS with ${name}: never ready, lookups miss at once, no exception`, async () => {
      const expand = (l: string): string[] =>
        l === '<ca>' ? [`tls_ca_file = ${pki.ca}`]
          : l === '<client>' ? [`tls_cert_file = ${pki.clientCert}`, `tls_key_file = ${pki.clientKey}`]
            : [l.replace('<other>', pki.otherCa)];
      const all = lines.flatMap(expand);
      // A client certificate everywhere except in the case without one.
      if (name !== 'no client certificate' && !all.some((l) => l.startsWith('tls_cert_file'))) all.push(...expand('<client>'));
      const clock = new FakeClock(T0);
      const m = member(cf(`bad-${name.split(' ')[1]}`, all, '2s'), clock);
      const control = member(cf('control', good()), clock);
      try {
        await ready(control); // the server is there and takes the good configuration
        const id = Buffer.from(`bad-tls.example:25&${name}`);
        await control.cache.update(id, Buffer.from('stored over good TLS'));
        // Never ready for 1 s (20 looks), while ioredis tries again every 200 ms at most.
        const everReady = await waitFor(() => m.link.ready, 20, 50);
        assert.equal(everReady, false, `${name}: the link became ready`);
        for (let i = 0; i < 10; i++) assert.equal(await m.cache.lookup(id), null, `${name}: a lookup found something`);
        assert.equal(await m.cache.delete(id), false);
        await m.cache.update(id, Buffer.from('dropped'));
        assert.equal(okKey(await m.tickets.key(null, clock.now(), TIMEOUT)).length, 88, 'a local ticket key instead');
        // Fail fast, by the counters: no call was sent (so none could wait for the 2 s timeout);
        // each of the 13 (10 lookups, the delete, the update, the ticket-key claim) fell back.
        assert.equal(m.link.counters.roundtrips, 0, JSON.stringify(m.link.counters));
        assert.equal(m.link.counters.timeouts, 0);
        assert.equal(m.link.counters.fallbacks, 13, JSON.stringify(m.link.counters));
        assert.ok(m.warnings.some((w) => reason.test(w) && /serving without Redis/.test(w)), `${name}: warnings:\n${m.warnings.join('\n')}`);
        assert.equal((await control.cache.lookup(id))?.toString(), 'stored over good TLS', 'the update through the bad link was dropped');
      } finally {
        close(m, control);
      }
    });
  }
});

describe('Sentinel', { skip }, () => {
  const NAME = 'tlsmgr-test';
  const PREFIX = 'tlsmgr-sentinel:';
  let master: RedisServer;
  let replica: RedisServer;
  let sentinel: SentinelServer;
  let cfDir: string;
  let cf: string;

  /*
   * caughtUp - wait (bounded: 5 s) until the replica has applied everything the master had
   * written when asked. (WAIT on the raw client's fresh connection would not do: it waits
   * only for that connection's own writes.)
   */
  async function caughtUp(): Promise<void> {
    const offset = (info: string, name: string): number => Number(new RegExp(`^${name}:(\\d+)`, 'm').exec(info)?.[1] ?? NaN);
    const target = offset(str(await master.command('INFO', 'replication')), 'master_repl_offset');
    assert.ok(target > 0, 'the master has no replication offset');
    const ok = await waitFor(async () => offset(str(await replica.command('INFO', 'replication')), 'slave_repl_offset') >= target, 100, 50);
    assert.ok(ok, `the replica did not reach offset ${target} within 5 s`);
  }

  before(async () => {
    cfDir = mkdtempSync(join(tmpdir(), 'tlsmgr-redis-sentinel-'));
    // No 5 s wait before a diskless full sync (repl-diskless-sync-delay).
    master = await startRedis({ args: ['--repl-diskless-sync-delay', '0'] });
    replica = await startRedis({ args: ['--replicaof', '127.0.0.1', String(master.port)] });
    const linked = await waitFor(async () => str(await replica.command('INFO', 'replication')).includes('master_link_status:up'), 100, 50);
    assert.ok(linked, 'the replica did not sync with the master within 5 s');
    sentinel = await startSentinel(master, NAME);
    cf = writeClusterFiles(cfDir, master, {
      endpoints: [`sentinels = 127.0.0.1:${sentinel.port}`, `sentinel_master = ${NAME}`],
      timeout: CALL,
      keys: [K1],
      extra: [`key_prefix = ${PREFIX}`],
    }).cf;
  });
  after(async () => {
    await sentinel?.destroy();
    await replica?.destroy();
    await master?.destroy();
    rmSync(cfDir, { recursive: true, force: true });
  });

  test('two members find the master through the Sentinel and share through it', async () => {
    const clock = new FakeClock(T0);
    const a = member(cf, clock);
    const b = member(cf, clock);
    try {
      await ready(a, b);
      const shared = await share(a, b, clock, 5, 'sentinel');
      checkStored(await master.dump(), PREFIX, shared, 'sentinel master');
      // The replica has them too, once it has caught up.
      await caughtUp();
      checkStored(await replica.dump(), PREFIX, shared, 'sentinel replica');
    } finally {
      close(a, b);
    }
  });

  test('failover: the Sentinel promotes the replica; the members share again through it', async () => {
    const clock = new FakeClock(T0 + 10);
    const a = member(cf, clock);
    const b = member(cf, clock);
    try {
      await ready(a, b);
      const id = Buffer.from('before-failover.example:25');
      const s = randomBytes(256);
      await a.cache.update(id, s);
      assert.deepEqual(await b.cache.lookup(id), s);
      const ticket = okKey(await a.tickets.key(null, clock.now(), TIMEOUT));
      await caughtUp();

      // The Sentinel must know the replica (from the master's INFO) and have a link to it.
      const known = await waitFor(async () => {
        const r = await sentinel.command('SENTINEL', 'REPLICAS', NAME);
        if (!Array.isArray(r) || r.length !== 1 || !Array.isArray(r[0])) return false;
        const f = r[0].map(String);
        const field = (name: string): string | undefined => f[f.indexOf(name) + 1];
        return field('port') === String(replica.port) && field('flags') === 'slave' && field('master-link-status') === 'ok';
      }, 200, 50);
      assert.ok(known, 'the Sentinel did not list a healthy replica within 10 s');
      // NOGOODSLAVE while its view of the replica is not yet fresh: try again (bounded).
      const started = await waitFor(async () => str(await sentinel.command('SENTINEL', 'FAILOVER', NAME)) === 'OK', 50, 200);
      assert.ok(started, 'SENTINEL FAILOVER was refused for 10 s');
      const switched = await waitFor(async () => {
        const r = await sentinel.command('SENTINEL', 'get-master-addr-by-name', NAME);
        return Array.isArray(r) && String(r[1]) === String(replica.port);
      }, 300, 50);
      assert.ok(switched, 'the Sentinel did not name the replica as master within 15 s');
      assert.match(str(await replica.command('INFO', 'replication')), /role:master/);
      // The old master goes away: from now on, any write that succeeds went to the new one.
      await master.stop();

      // Bounded: the members notice (+switch-master or a lost connection), ask the Sentinel
      // again, and reach the new master.
      let n = 0;
      const again = await waitFor(async () => {
        const probe = Buffer.from(`after-failover-${n++}`);
        await a.cache.update(Buffer.from('probe.example:25'), probe);
        return (await b.cache.lookup(Buffer.from('probe.example:25')))?.equals(probe) === true;
      }, 100, 100);
      assert.ok(again, `no sharing through the new master within 10 s; warnings:\n${[...a.warnings, ...b.warnings].join('\n')}`);
      assert.deepEqual(await b.cache.lookup(id), s, 'the session stored before the failover is found after it');
      assert.ok(okKey(await b.tickets.key(null, clock.now(), TIMEOUT)).equals(ticket), 'the same ticket key after the failover');
      const onReplica = await replica.dump();
      assert.ok(onReplica.has(a.store.keysFor(Buffer.from('probe.example:25'))[0]), 'the probe is on the promoted replica');
      assert.ok(onReplica.has(a.store.keysFor(id)[0]));
    } finally {
      close(a, b);
    }
  });
});

describe('Sentinel over TLS', { skip }, () => {
  const NAME = 'tlsmgr-tls-test';
  const PREFIX = 'tlsmgr-sentinel-tls:';
  let master: RedisServer;
  let sentinel: SentinelServer;
  let cfDir: string;

  before(async () => {
    cfDir = mkdtempSync(join(tmpdir(), 'tlsmgr-redis-sentinel-tls-'));
    const tls = { cert: pki.serverCert, key: pki.serverKey, ca: pki.ca, authClients: true };
    master = await startRedis({ tls });
    sentinel = await startSentinel(master, NAME, { tls });
  });
  after(async () => {
    await sentinel?.destroy();
    await master?.destroy();
    rmSync(cfDir, { recursive: true, force: true });
  });

  test('tls = yes reaches both the Sentinel and the master over TLS', async () => {
    const cf = writeClusterFiles(cfDir, master, {
      endpoints: [`sentinels = 127.0.0.1:${sentinel.port}`, `sentinel_master = ${NAME}`],
      timeout: CALL,
      keys: [K1],
      extra: ['tls = yes', `tls_ca_file = ${pki.ca}`, `tls_cert_file = ${pki.clientCert}`, `tls_key_file = ${pki.clientKey}`,
        'tls_server_name = localhost', `key_prefix = ${PREFIX}`],
    }).cf;
    const clock = new FakeClock(T0);
    const a = member(cf, clock);
    const b = member(cf, clock);
    try {
      await ready(a, b);
      const shared = await share(a, b, clock, 5, 'sentinel+tls');
      checkStored(await master.dump(), PREFIX, shared, 'sentinel+tls master');
      const listed = (await redisCli(master, pki, '--scan', '--pattern', `${PREFIX}scache:*`)).split('\n').filter((l) => l !== '');
      assert.deepEqual(listed.sort(), [...shared.kept].sort(), 'redis-cli --tls lists the session keys');
    } finally {
      close(a, b);
    }
  });
});

describe('Redis Cluster (3 masters)', { skip }, () => {
  const PREFIX = 'tlsmgr-cluster:';
  let nodes: RedisServer[] = [];
  let cfDir: string;
  let cf: string;

  /** Every node's keys under PREFIX, by node index. */
  async function perNode(): Promise<Array<Map<string, Buffer>>> {
    const out: Array<Map<string, Buffer>> = [];
    for (const n of nodes) out.push(new Map([...(await n.dump())].filter(([k]) => k.startsWith(PREFIX))));
    return out;
  }

  async function slotOf(key: string): Promise<number> {
    const r = await nodes[0].command('CLUSTER', 'KEYSLOT', key);
    assert.equal(typeof r, 'number');
    return r as number;
  }

  before(async () => {
    cfDir = mkdtempSync(join(tmpdir(), 'tlsmgr-redis-cluster3-'));
    nodes = await startRedisCluster(3);
    cf = writeClusterFiles(cfDir, nodes[0], {
      // Two of the three as seeds: the third is learnt from CLUSTER SLOTS.
      endpoints: [`hosts = 127.0.0.1:${nodes[0].port}, 127.0.0.1:${nodes[1].port}`, 'cluster = yes'],
      timeout: CALL,
      keys: [K1],
      extra: [`key_prefix = ${PREFIX}`],
    }).cf;
  });
  after(async () => {
    for (const n of nodes) await n.destroy();
    rmSync(cfDir, { recursive: true, force: true });
  });

  test('two members share; the keys are spread over the nodes, each where its slot is', async () => {
    const clock = new FakeClock(T0);
    const a = member(cf, clock);
    const b = member(cf, clock);
    try {
      await ready(a, b);
      const shared = await share(a, b, clock, 30, 'cluster');
      const views = await perNode();
      const all = new Map<string, Buffer>();
      for (const v of views) for (const [k, val] of v) all.set(k, val);
      checkStored(all, PREFIX, shared, 'cluster (all nodes)');
      assert.equal(views.reduce((n, v) => n + v.size, 0), all.size, 'a key is on more than one node');
      const holding = views.filter((v) => [...v.keys()].some((k) => k.includes(':scache:'))).length;
      assert.ok(holding >= 2, `the session keys are on ${holding} node(s): ${views.map((v) => v.size).join(', ')}`);
      // Each key is on the node that owns its slot, as the cluster itself says (CLUSTER SLOTS).
      const ranges = (await nodes[2].command('CLUSTER', 'SLOTS')) as RespValue[][];
      const ownerPort = (slot: number): number => {
        const r = ranges.find((x) => (x[0] as number) <= slot && slot <= (x[1] as number));
        assert.ok(r !== undefined, `slot ${slot} has no owner`);
        return (r[2] as RespValue[])[1] as number;
      };
      for (const [i, v] of views.entries()) {
        for (const k of v.keys()) {
          assert.equal(ownerPort(await slotOf(k)), nodes[i].port, `${k} is on node ${i}, not on the owner of its slot`);
        }
      }
    } finally {
      close(a, b);
    }
  });

  test('a cluster key roll across hash slots: lookups and deletes of several keys at once', async () => {
    const clock = new FakeClock(T0 + 20);
    const old = member(cf, clock, parseClusterKeys(K1, 'k'));
    const rolling = member(cf, clock, parseClusterKeys(`${K2}\n${K1}`, 'k'));
    const second = member(cf, clock, parseClusterKeys(K2, 'k'));
    const third = member(cf, clock, parseClusterKeys(`${K3}\n${K2}\n${K1}`, 'k'));
    try {
      await ready(old, rolling, second, third);
      let crossSlot = 0;
      for (let i = 0; i < 6; i++) {
        const id = Buffer.from(`roll${i}.example:25&${randomBytes(4).toString('hex')}`);
        const keys = third.store.keysFor(id); // [K3, K2, K1] hashes
        const slots = new Set(await Promise.all(keys.map((k) => slotOf(k))));
        if (slots.size === 3) crossSlot++;
        const s1 = Buffer.from(`sealed by key 1, ${i}`);
        await old.cache.update(id, s1);
        // A lookup under two id keys (two slots, one round trip) finds the old-key entry.
        assert.equal((await rolling.cache.lookup(id))?.toString(), s1.toString(), `roll ${i}: lookup under [2, 1]`);
        if (i % 2 === 0) {
          // A delete under two id keys removes it everywhere.
          assert.equal(await rolling.cache.delete(id), true, `roll ${i}: delete under [2, 1] found nothing`);
          assert.equal(await old.cache.lookup(id), null, `roll ${i}: deleted, still found under [1]`);
          assert.equal(await third.cache.lookup(id), null);
        } else {
          // An update under three id keys writes under key 3 and removes keys 2 and 1.
          await second.cache.update(id, Buffer.from(`sealed by key 2, ${i}`));
          assert.equal((await old.cache.lookup(id))?.toString(), s1.toString(), 'entries under keys 1 and 2 side by side');
          const s3 = Buffer.from(`sealed by key 3, ${i}`);
          await third.cache.update(id, s3);
          assert.equal((await third.cache.lookup(id))?.toString(), s3.toString());
          assert.equal(await old.cache.lookup(id), null, `roll ${i}: the key-1 entry survived an update under [3, 2, 1]`);
          assert.equal(await second.cache.lookup(id), null, `roll ${i}: the key-2 entry survived an update under [3, 2, 1]`);
        }
        const present = new Set<string>();
        for (const v of await perNode()) for (const k of v.keys()) present.add(k);
        assert.deepEqual(keys.map((k) => present.has(k)), i % 2 === 0 ? [false, false, false] : [true, false, false], `roll ${i}: raw keys`);
      }
      assert.ok(crossSlot >= 5, `only ${crossSlot} of 6 ids had their keys in three different slots`);
      for (const m of [old, rolling, second, third]) {
        assert.equal(m.link.counters.errors, 0, `failed calls: ${JSON.stringify(m.link.counters)}\n${m.warnings.join('\n')}`);
      }
    } finally {
      close(old, rolling, second, third);
    }
  });
});
