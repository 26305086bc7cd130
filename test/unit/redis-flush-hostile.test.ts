/*
 * A Redis server the attacker owns answers `tlsmgr-ctl flush --cluster`'s SCAN with a cursor
 * that never ends, with keys outside the cache's prefix and with far more keys than asked
 * for. RedisStore.clear() must stop after a bounded number of rounds, remove only this
 * cache's keys, and pass at most 10 x 500 keys to one UNLINK. The server is simulated at the
 * client boundary (RedisLink.run), which is where its replies enter the daemon.
 */

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RedisStore } from '../../src/cache/stores/redis.js';
import { parseClusterKeys } from '../../src/cluster/keyfile.js';
import type { RedisLink } from '../../src/cluster/link.js';

const PREFIX = 'tlsmgr:';

function hostileLink(reply: (round: number) => [string, string[]]): { link: RedisLink; unlinked: string[][]; rounds: () => number } {
  let round = 0;
  const unlinked: string[][] = [];
  const client = {
    scan: async () => reply(round++),
    unlink: async (...keys: string[]) => {
      unlinked.push(keys);
      return keys.length;
    },
  };
  const link = {
    prefix: PREFIX,
    cluster: false,
    config: { source: 'redis:/etc/postfix/tlsmgr-redis.cf' },
    run: <T>(_op: string, call: (r: typeof client) => Promise<T>): Promise<T> => call(client),
  };
  return { link: link as unknown as RedisLink, unlinked, rounds: () => round };
}

const keys = parseClusterKeys(`1 ${'5a'.repeat(32)}\n`, 'test key file');

test('flush --cluster: a cursor that never ends is given up after a bounded number of rounds', { timeout: 120_000 }, async () => {
  const h = hostileLink(() => ['17', []]);
  const store = new RedisStore({ cacheType: 'smtpd', link: h.link, keys });
  await assert.rejects(store.clear(), /flush gave up after \d+ SCAN rounds/);
  assert.equal(h.rounds(), 1 << 20);
});

test('flush --cluster: only keys under the cache prefix are removed, at most 5000 per reply', async () => {
  const ours = Array.from({ length: 20000 }, (_, i) => `${PREFIX}scache:smtpd:${i.toString(16)}`);
  const foreign = [`${PREFIX}tktkey:1`, `${PREFIX}scache:smtp:aa`, 'other:key'];
  const h = hostileLink((r) => (r === 0 ? ['5', [...foreign, ...ours]] : ['0', [...foreign]]));
  const store = new RedisStore({ cacheType: 'smtpd', link: h.link, keys });
  const n = await store.clear();
  const all = h.unlinked.flat();
  assert.ok(all.every((k) => k.startsWith(`${PREFIX}scache:smtpd:`)), 'no foreign key unlinked');
  assert.ok(h.unlinked.every((batch) => batch.length <= 5000));
  assert.equal(n, all.length);
  assert.ok(n > 0 && n <= 5000, `${n} keys removed from one oversized reply`);
});
