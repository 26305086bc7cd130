/*
 * prng-wiring - how requests reach the pool (spec 4.6, 4.7): the Dispatcher calls its `stir`
 * dependency once before every request, whatever its type or outcome (tlsmgr_loop mixes the
 * time after every event), so the time goes in before the bytes of a seed reply come out;
 * seed replies are the pool's bytes, of every size 1..255, and sizes outside get FAIL without
 * touching the pool. A pool that cannot produce (its CSPRNG failed) makes a seed ERR with an
 * empty seed, never bytes, until it has recovered; a stir that throws loses only that stir.
 */

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { PrngPool } from '../../src/prng/pool.js';
import type { Request } from '../../src/protocol/requests.js';
import { Dispatcher } from '../../src/server/dispatch.js';
import { ERR, FAIL, OK, parseReply } from '../helpers/attr.js';
import { makeHarness } from '../helpers/harness.js';

/* now - a local dispatcher answers at once: the reply itself, never a promise */
function now(reply: Buffer | Promise<Buffer>): Buffer {
  assert.ok(Buffer.isBuffer(reply), 'a seed request is answered synchronously');
  return reply;
}

function wired(): { d: Dispatcher; calls: string[]; served: Buffer[] } {
  const h = makeHarness();
  const pool = PrngPool.create();
  const calls: string[] = [];
  const served: Buffer[] = [];
  const d = new Dispatcher({
    caches: h.caches,
    tickets: h.tickets,
    clock: h.clock,
    warn: () => undefined,
    stir: () => {
      calls.push('stir');
      pool.stir();
    },
    seed: (n) => {
      calls.push(`seed ${n}`);
      const b = pool.generate(n);
      served.push(Buffer.from(b));
      return b;
    },
  });
  return { d, calls, served };
}

test('stir runs once before every request, of every type and outcome; the seed comes after it', () => {
  const { d, calls } = wired();
  const id = Buffer.from('id');
  const reqs: Request[] = [
    { request: 'seed', size: 32 },
    { request: 'policy', cacheType: 'smtpd' },
    { request: 'policy', cacheType: 'bogus' },
    { request: 'update', cacheType: 'smtpd', cacheId: id, session: Buffer.from('s') },
    { request: 'lookup', cacheType: 'smtpd', cacheId: id },
    { request: 'delete', cacheType: 'smtpd', cacheId: id },
    { request: 'tktkey', keyname: Buffer.alloc(0) },
    { request: 'seed', size: 0 },
  ];
  for (const r of reqs) d.handle(r);
  assert.deepEqual(calls, ['stir', 'seed 32', 'stir', 'stir', 'stir', 'stir', 'stir', 'stir', 'stir']);
});

test('seed replies carry the pool bytes for every size 1..255; 0 and 256 FAIL without a pool call', () => {
  const { d, calls, served } = wired();
  for (let n = 1; n <= 255; n++) {
    const r = parseReply(now(d.handle({ request: 'seed', size: n })));
    assert.equal(r.text('status'), OK);
    assert.ok(r.data('seed').equals(served[n - 1]), `size ${n}`);
  }
  calls.length = 0;
  for (const n of [0, 256, -1]) assert.equal(parseReply(now(d.handle({ request: 'seed', size: n }))).text('status'), FAIL);
  assert.deepEqual(calls, ['stir', 'stir', 'stir']);
});

test('a pool whose CSPRNG failed: seed ERR with an empty seed and a warning; OK again once it works', () => {
  const h = makeHarness();
  let armed = false;
  const pool = PrngPool.create({
    randomBytes: (n) => {
      if (armed) throw new Error('CSPRNG failure');
      return randomBytes(n);
    },
  });
  const warnings: string[] = [];
  const d = new Dispatcher({
    caches: h.caches,
    tickets: h.tickets,
    clock: h.clock,
    warn: (m) => warnings.push(m),
    stir: () => pool.stir(),
    seed: (n) => pool.generate(n),
  });
  const seed = (n: number): Buffer => now(d.handle({ request: 'seed', size: n }));
  assert.equal(parseReply(seed(32)).text('status'), OK);
  armed = true;
  assert.throws(() => pool.addEntropy(Buffer.from('source bytes')), /CSPRNG failure/);
  for (const n of [1, 32, 255]) {
    assert.equal(seed(n).toString('latin1'), `status\0${ERR}\0seed\0\0\0`, `size ${n}`);
  }
  assert.deepEqual(warnings, [1, 32, 255].map((n) => `cannot generate ${n} seed bytes: CSPRNG failure`));
  armed = false;
  const r = parseReply(seed(32));
  assert.equal(r.text('status'), OK);
  assert.equal(r.data('seed').length, 32);
});

test('a stir that throws is a warning; every request is still served', () => {
  const h = makeHarness();
  const warnings: string[] = [];
  const d = new Dispatcher({
    caches: h.caches,
    tickets: h.tickets,
    clock: h.clock,
    warn: (m) => warnings.push(m),
    stir: () => {
      throw new Error('clock gone');
    },
    seed: (n) => randomBytes(n),
  });
  const seed = parseReply(now(d.handle({ request: 'seed', size: 16 })));
  assert.equal(seed.text('status'), OK);
  assert.equal(seed.data('seed').length, 16);
  assert.equal(parseReply(now(d.handle({ request: 'policy', cacheType: 'smtpd' }))).text('status'), OK);
  assert.deepEqual(warnings, ['cannot stir the PRNG pool: clock gone', 'cannot stir the PRNG pool: clock gone']);
});
