/*
 * metrics - the pieces of metrics/ without a daemon:
 * - BucketCounts and CountedHistogram: the exact text exposition of a histogram read from
 *   plain counts (cumulative buckets, +Inf, _sum, _count, every series, a value on a bound
 *   in that bound's bucket), and prom-client's JSON view agrees;
 * - TlsmgrMetrics from stub sources: names, labels, values; a shared cache (entries -1)
 *   has no size gauges; no label holds anything but fixed names and the Redis file;
 * - ServiceMeter.countSeed: requests and bytes of full answers only;
 * - MeteredTicketKeys over a real TicketKeyRing: current, previous (after rotate), unknown;
 *   ring.created counts the keys made;
 * - tlsmgr_metrics_listen: parseListenAddress() accepts host:port and [v6]:port, refuses the
 *   rest with a fatal error, loadConfig() reads it from tlsmgr.cf; a change needs a restart.
 */

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, test } from 'node:test';
import { Registry } from 'prom-client';
import { newCounters, type CacheStats } from '../../src/cache/stats.js';
import { loadConfig, parseListenAddress } from '../../src/config/load.js';
import type { CacheType } from '../../src/config/types.js';
import { needsRestart } from '../../src/daemon/reload.js';
import { CountedHistogram } from '../../src/metrics/histogram.js';
import { BucketCounts, MeteredTicketKeys, ServiceMeter } from '../../src/metrics/meter.js';
import { TlsmgrMetrics } from '../../src/metrics/registry.js';
import { TicketKeyRing } from '../../src/tickets/keys.js';
import { FatalError } from '../../src/util/errors.js';
import { testConfig } from '../helpers/attr.js';
import { writeCold } from '../helpers/cold.js';

const tmp = mkdtempSync(join(tmpdir(), 'tlsmgr-metrics-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

test('a CountedHistogram prints cumulative buckets, +Inf, _sum and _count of every series, exactly', async () => {
  const counts = new BucketCounts([0.001, 0.01], 2);
  counts.observe(0, 0.0005);
  counts.observe(0, 0.001); // on the bound: in that bucket (le is "less than or equal")
  counts.observe(0, 0.005);
  counts.observe(0, 2);
  counts.observe(1, 0.25);
  const registry = new Registry();
  new CountedHistogram({ name: 'x_seconds', help: 'Test.', label: 'request', values: ['seed', 'lookup'], counts, registers: [registry] });
  assert.equal(
    await registry.metrics(),
    [
      '# HELP x_seconds Test.',
      '# TYPE x_seconds histogram',
      'x_seconds_bucket{request="seed",le="0.001"} 2',
      'x_seconds_bucket{request="seed",le="0.01"} 3',
      'x_seconds_bucket{request="seed",le="+Inf"} 4',
      'x_seconds_sum{request="seed"} 2.0065',
      'x_seconds_count{request="seed"} 4',
      'x_seconds_bucket{request="lookup",le="0.001"} 0',
      'x_seconds_bucket{request="lookup",le="0.01"} 0',
      'x_seconds_bucket{request="lookup",le="+Inf"} 1',
      'x_seconds_sum{request="lookup"} 0.25',
      'x_seconds_count{request="lookup"} 1',
      '',
    ].join('\n'),
  );
  const json = await registry.getMetricsAsJSON();
  assert.equal(json.length, 1);
  const inf = json[0].values.find((v) => v.labels.request === 'seed' && v.labels.le === '+Inf');
  assert.equal(inf?.value, 4);
});

test('a CountedHistogram refuses label values that do not match its series', () => {
  assert.throws(
    () => new CountedHistogram({ name: 'y', help: 'h', label: 'request', values: ['a'], counts: new BucketCounts([1], 2), registers: [] }),
    /1 label values for 2 series/,
  );
});

function stats(over: Partial<CacheStats>): CacheStats {
  return { ...newCounters(), entries: 0, bytes: 0, ...over };
}

test('TlsmgrMetrics reads the sources at scrape time: names, labels, values', async () => {
  const meter = new ServiceMeter();
  const table = new Map<CacheType, CacheStats>([
    ['smtpd', stats({ hits: 5, misses: 2, stores: 3, deletes: 1, expired: 4, evicted: 6, corrupt: 7, refused: 8, entries: 9, bytes: 900 })],
    ['smtp', stats({ hits: 1, entries: -1, bytes: -1 })],
  ]);
  const counters = { roundtrips: 11, errors: 12, timeouts: 13, fallbacks: 14 };
  let open = 3;
  const m = new TlsmgrMetrics(
    {
      caches: { stats: () => table },
      meter,
      ticketKeysCreated: () => 2,
      connections: () => open,
      links: () => [{ source: '/etc/postfix/tlsmgr-redis.cf', connected: true, counters }],
    },
    { processMetrics: false },
  );
  meter.requests.observe(2, 0.00002);
  meter.seedRequests = 4;
  meter.seedBytes = 128;
  meter.ticketCurrent = 5;
  meter.ticketPrevious = 6;
  meter.ticketUnknown = 7;
  open = 4; // read when asked, not when made
  const text = await m.text();
  const lines = new Set(text.split('\n'));
  for (const want of [
    'postfix_tlsmgr_cache_lookups_total{cache="smtpd",result="hit"} 5',
    'postfix_tlsmgr_cache_lookups_total{cache="smtpd",result="miss"} 2',
    'postfix_tlsmgr_cache_lookups_total{cache="smtp",result="hit"} 1',
    'postfix_tlsmgr_cache_updates_total{cache="smtpd"} 3',
    'postfix_tlsmgr_cache_deletes_total{cache="smtpd"} 1',
    'postfix_tlsmgr_cache_removed_total{cache="smtpd",reason="expired"} 4',
    'postfix_tlsmgr_cache_removed_total{cache="smtpd",reason="evicted"} 6',
    'postfix_tlsmgr_cache_removed_total{cache="smtpd",reason="corrupt"} 7',
    'postfix_tlsmgr_cache_removed_total{cache="smtpd",reason="refused"} 8',
    'postfix_tlsmgr_cache_entries{cache="smtpd"} 9',
    'postfix_tlsmgr_cache_bytes{cache="smtpd"} 900',
    'postfix_tlsmgr_ticket_key_lookups_total{result="current"} 5',
    'postfix_tlsmgr_ticket_key_lookups_total{result="previous"} 6',
    'postfix_tlsmgr_ticket_key_lookups_total{result="unknown"} 7',
    'postfix_tlsmgr_ticket_keys_created_total 2',
    'postfix_tlsmgr_seed_requests_total 4',
    'postfix_tlsmgr_seed_bytes_total 128',
    'postfix_tlsmgr_connections 4',
    'postfix_tlsmgr_requests_total{request="lookup"} 1',
    'postfix_tlsmgr_requests_total{request="seed"} 0',
    'postfix_tlsmgr_request_duration_seconds_bucket{request="lookup",le="0.000025"} 1',
    'postfix_tlsmgr_request_duration_seconds_bucket{request="lookup",le="0.00001"} 0',
    'postfix_tlsmgr_request_duration_seconds_count{request="lookup"} 1',
    'postfix_tlsmgr_redis_roundtrips_total{link="/etc/postfix/tlsmgr-redis.cf"} 11',
    'postfix_tlsmgr_redis_errors_total{link="/etc/postfix/tlsmgr-redis.cf"} 12',
    'postfix_tlsmgr_redis_timeouts_total{link="/etc/postfix/tlsmgr-redis.cf"} 13',
    'postfix_tlsmgr_redis_fallbacks_total{link="/etc/postfix/tlsmgr-redis.cf"} 14',
    '# TYPE postfix_tlsmgr_request_duration_seconds histogram',
    '# TYPE postfix_tlsmgr_requests_total counter',
    '# TYPE postfix_tlsmgr_connections gauge',
  ]) {
    assert.ok(lines.has(want), `missing: ${want}\n${text}`);
  }
  // A shared cache's size is the group's: no gauge for it.
  assert.ok(!text.includes('cache_entries{cache="smtp"}'));
  assert.ok(!text.includes('cache_bytes{cache="smtp"}'));
  // Every sample: the prefix, and labels only from the fixed vocabulary (and the Redis file).
  const allowed = /^(cache="(smtpd|smtp|lmtp)"|result="(hit|miss|current|previous|unknown)"|reason="(expired|evicted|corrupt|refused)"|request="(seed|policy|lookup|update|delete|tktkey)"|le="[^"]+"|link="\/etc\/postfix\/tlsmgr-redis\.cf")$/;
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    assert.match(line, /^postfix_tlsmgr_[a-z_]+(\{[^}]*\})? [-0-9.e+]+$/);
    const labels = /\{([^}]*)\}/.exec(line)?.[1];
    for (const l of labels ? labels.split(',') : []) assert.match(l, allowed, line);
  }
  assert.equal(m.contentType, 'text/plain; version=0.0.4; charset=utf-8');
});

test('the process metrics carry the prefix', async () => {
  const m = new TlsmgrMetrics({
    caches: { stats: () => new Map() },
    meter: new ServiceMeter(),
    ticketKeysCreated: () => 0,
    connections: () => 0,
    links: () => [],
  });
  const text = await m.text();
  assert.match(text, /^postfix_tlsmgr_process_cpu_seconds_total /m);
  assert.match(text, /^postfix_tlsmgr_nodejs_heap_size_used_bytes /m);
  assert.doesNotMatch(text, /^process_cpu_seconds_total /m);
});

test('after a chroot the memory gauges still read /proc/self/status (from a descriptor opened before)', { skip: process.getuid?.() !== 0 && 'needs root' }, () => {
  const jail = mkdtempSync(join(tmpdir(), 'tlsmgr-metrics-jail-'));
  try {
    const dist = join(dirname(fileURLToPath(import.meta.url)), '../../src');
    // The registry is made before the chroot, as the daemon makes it; the text after.
    const script = `
      const { TlsmgrMetrics } = await import(${JSON.stringify(join(dist, 'metrics/registry.js'))});
      const { ServiceMeter } = await import(${JSON.stringify(join(dist, 'metrics/meter.js'))});
      const { chrootTo } = await import(${JSON.stringify(join(dist, 'master/chroot.js'))});
      const m = new TlsmgrMetrics({ caches: { stats: () => new Map() }, meter: new ServiceMeter(), ticketKeysCreated: () => 0, connections: () => 0, links: () => [] });
      chrootTo(${JSON.stringify(jail)});
      process.stdout.write(await m.text());`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.status, 0, r.stderr);
    for (const name of ['process_resident_memory_bytes', 'process_virtual_memory_bytes', 'process_heap_bytes']) {
      const lines = r.stdout.split('\n').filter((l) => l.startsWith(`postfix_tlsmgr_${name} `));
      assert.equal(lines.length, 1, `${name} once:\n${lines.join('\n')}`);
      assert.ok(Number(lines[0].split(' ')[1]) > 1_000_000, lines[0]);
    }
  } finally {
    rmSync(jail, { recursive: true, force: true });
  }
});

test('countSeed counts the requests answered with their bytes, and the bytes', () => {
  const meter = new ServiceMeter();
  let short = false;
  const seed = meter.countSeed((n) => Buffer.alloc(short ? n - 1 : n));
  seed(32);
  seed(7);
  short = true;
  seed(5); // the dispatcher answers ERR for this one
  assert.equal(meter.seedRequests, 2);
  assert.equal(meter.seedBytes, 39);
});

test('MeteredTicketKeys: current, previous and unknown lookups; the ring counts the keys it makes', async () => {
  const meter = new ServiceMeter();
  let n = 0;
  const ring = new TicketKeyRing((len) => Buffer.alloc(len, ++n));
  const keys = new MeteredTicketKeys(ring, meter);
  const now = 1_000_000;
  const T = 3600;
  const first = keys.key(null, now, T);
  assert.ok(!(first instanceof Promise) && first.status === 'ok');
  const name1 = Buffer.from(first.key.record.subarray(0, 16));
  assert.equal(ring.created, 1);
  keys.key(name1, now, T); // the current key by name
  keys.key(Buffer.alloc(16, 0xee), now, T); // unknown
  assert.deepEqual([meter.ticketCurrent, meter.ticketPrevious, meter.ticketUnknown], [2, 0, 1]);
  await keys.rotate(now, T);
  assert.equal(ring.created, 2);
  keys.key(name1, now + 1, T); // the old key still decrypts: previous
  assert.deepEqual([meter.ticketCurrent, meter.ticketPrevious, meter.ticketUnknown], [2, 1, 1]);
  const second = keys.key(null, now + 1, T);
  assert.ok(!(second instanceof Promise) && second.status === 'ok');
  keys.key(second.key.record.subarray(0, 16), now + 1, T);
  assert.deepEqual([meter.ticketCurrent, meter.ticketPrevious, meter.ticketUnknown], [4, 1, 1]);
  await keys.revoke(now + 2, T);
  keys.key(name1, now + 2, T);
  assert.deepEqual([meter.ticketCurrent, meter.ticketPrevious, meter.ticketUnknown], [4, 1, 2]);
  // Keys disabled (timeout 0): not a lookup result.
  keys.key(null, now + 2, 0);
  assert.deepEqual([meter.ticketCurrent, meter.ticketPrevious, meter.ticketUnknown], [4, 1, 2]);
});

test('parseListenAddress: host:port and [v6]:port; anything else is fatal', () => {
  assert.equal(parseListenAddress('p', ''), null);
  assert.deepEqual(parseListenAddress('p', '127.0.0.1:9155'), { host: '127.0.0.1', port: 9155 });
  assert.deepEqual(parseListenAddress('p', 'localhost:1'), { host: 'localhost', port: 1 });
  assert.deepEqual(parseListenAddress('p', '[::1]:65535'), { host: '::1', port: 65535 });
  assert.deepEqual(parseListenAddress('p', '0.0.0.0:80'), { host: '0.0.0.0', port: 80 });
  for (const bad of ['9155', ':9155', '127.0.0.1', '127.0.0.1:', '127.0.0.1:0', '127.0.0.1:65536', '::1:9155', '[::1]9155', 'a b:1', 'host:12x', '[x]:1', 'h:123456']) {
    assert.throws(() => parseListenAddress('tlsmgr_metrics_listen', bad), (e: unknown) =>
      e instanceof FatalError && e.message === `tlsmgr_metrics_listen = ${bad}: use host:port or [ipv6-address]:port with a port from 1 to 65535, e.g. 127.0.0.1:9155`, bad);
  }
});

test('tlsmgr_metrics_listen comes from tlsmgr.cf (default empty: none); a change needs a restart', () => {
  const dir = mkdtempSync(join(tmp, 'cf-'));
  writeCold(join(dir, 'main.cf'), '');
  assert.equal(loadConfig({ configDir: dir, overrides: [] }).config.metricsListen, null);
  writeCold(join(dir, 'tlsmgr.cf'), 'tlsmgr_metrics_listen = [::1]:9155\n');
  const warnings: string[] = [];
  const c = loadConfig({ configDir: dir, overrides: [], warn: (m) => warnings.push(m) }).config;
  assert.deepEqual(c.metricsListen, { host: '::1', port: 9155 });
  assert.deepEqual(warnings, []);
  assert.throws(() => loadConfig({ configDir: dir, overrides: ['tlsmgr_metrics_listen=nonsense'] }), FatalError);
  const base = testConfig();
  assert.deepEqual(needsRestart(base, { ...base, metricsListen: { host: '127.0.0.1', port: 9155 } }), ['metricsListen']);
});
