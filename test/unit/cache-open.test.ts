/*
 * cache-open - how the daemon's cache table gets a redis: store (issue 14): cache/open.ts maps
 * redis:<file> to a RedisStore over the members registry (cluster/members.ts), one connection
 * and one key ring per configuration file however many cache types name it; a redis:
 * database may be named by several cache types (sharedByTypes, the store kind's trait) while
 * a file may not; an opener without a registry refuses redis: at start; the cache over it
 * has the store's traits (entries and bytes unknown, records sealed with the group's ring,
 * nothing swept). No Redis server is needed: the connection is made in the background
 * (to a port nothing listens on) and never used.
 */

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { CacheTable } from '../../src/cache/caches.js';
import { sharedByTypes, storeOpener } from '../../src/cache/open.js';
import { RedisStore } from '../../src/cache/stores/redis.js';
import { ClusterMembers } from '../../src/cluster/members.js';
import { FakeClock } from '../../src/util/clock.js';
import { FatalError } from '../../src/util/errors.js';
import { testConfig } from '../helpers/attr.js';
import { T0 } from '../helpers/harness.js';
import { clusterKeyLine, freePorts } from '../helpers/redis.js';

const dir = mkdtempSync(join(tmpdir(), 'tlsmgr-cache-open-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** A redis: configuration file and its key file, pointing at a port nothing listens on. */
async function redisCf(name: string): Promise<string> {
  const [port] = await freePorts(1);
  const keyFile = join(dir, `${name}.key`);
  writeFileSync(keyFile, `${clusterKeyLine(1)}\n`, { mode: 0o600 });
  const cf = join(dir, `${name}.cf`);
  writeFileSync(cf, `hosts = 127.0.0.1:${port}\nkey_file = ${keyFile}\nretry_max_delay = 10s\n`, { mode: 0o600 });
  return cf;
}

function members(): ClusterMembers {
  return new ClusterMembers({ clock: new FakeClock(T0), warn: () => undefined, random: randomBytes });
}

test('sharedByTypes: redis: tables key entries by cache type; files and memory: do not', () => {
  assert.equal(sharedByTypes('redis:/etc/postfix/tlsmgr-redis.cf'), true);
  for (const d of ['btree:/var/lib/postfix/smtpd_scache', 'hash:/x', 'memory:', 'memory:smtpd', 'lmdb:/x']) assert.equal(sharedByTypes(d), false, d);
});

test('three cache types on one redis: file: three stores, one connection and key ring', async () => {
  const cf = await redisCf('shared');
  const m = members();
  const db = `redis:${cf}`;
  const config = testConfig({ cache: { smtpd: { database: db }, smtp: { database: db }, lmtp: { database: db } } });
  const opened: RedisStore[] = [];
  const open = storeOpener({ mailOwner: 'postfix', lookupUser: () => null, members: m });
  const table = new CacheTable(config, {
    clock: new FakeClock(T0),
    warn: () => undefined,
    sharedByTypes,
    openStore: (type, dict, use) => {
      const s = open(type, dict, use);
      assert.ok(s instanceof RedisStore, `${type}: ${dict} gave ${s.constructor.name}`);
      opened.push(s);
      return s;
    },
  });
  try {
    assert.equal(opened.length, 3);
    assert.equal(m.statsLines().length, 1, 'one connection for the file');
    assert.equal(new Set(opened.map((s) => s.sealer)).size, 1, 'one key ring for the file');
    // Each type's entries live under its own keys.
    const id = Buffer.from('mx.example:25');
    assert.equal(new Set(opened.map((s) => s.keysFor(id)[0])).size, 3);
    for (const [type, s] of table.stats()) assert.deepEqual({ entries: s.entries, bytes: s.bytes }, { entries: -1, bytes: -1 }, type);
    assert.equal(table.get('smtpd')?.sweep(64), 0, 'a store that expires its own entries is never swept');
  } finally {
    table.close();
    m.close();
  }
});

test('without the trait two types on one redis: table are the same-file error; without members redis: is refused', async () => {
  const cf = await redisCf('refused');
  const db = `redis:${cf}`;
  const config = testConfig({ cache: { smtpd: { database: db }, smtp: { database: db } } });
  const m = members();
  try {
    const openStore = storeOpener({ mailOwner: 'postfix', lookupUser: () => null, members: m });
    assert.throws(() => new CacheTable(config, { clock: new FakeClock(T0), warn: () => undefined, openStore }), {
      message: `do not use the same TLS cache file ${db} for smtpd and smtp`,
    });
  } finally {
    m.close();
  }
  const alone = testConfig({ cache: { smtpd: { database: db } } });
  assert.throws(
    () => new CacheTable(alone, { clock: new FakeClock(T0), warn: () => undefined, openStore: storeOpener({ mailOwner: 'postfix', lookupUser: () => null }) }),
    (e: unknown) => e instanceof FatalError && e.message === `smtpd_tls_session_cache_database = ${db}: redis: tables are not available here`,
  );
});
