/*
 * cleanup - CacheTable cleanup passes (spec 3.5, scenario 25; style.md 6.10): expired entries
 * are removed in batches of CLEANUP_BATCH with event-loop turns in between, so requests are
 * answered while a pass runs; live entries stay; delete and update during a pass work; a
 * second pass is not started while one runs; startCleanup() runs a pass at once and then
 * every `timeout` seconds (mocked setTimeout: util/timer.ts runEvery); close() stops a pass.
 */

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CLEANUP_BATCH } from '../../src/cache/caches.js';
import type { TlsScache } from '../../src/cache/scache.js';
import { b64, ERR, OK, req, show, testConfig } from '../helpers/attr.js';
import { makeHarness, T0, type Harness } from '../helpers/harness.js';

const TIMEOUT = 300;
const lookup = (id: string): Buffer => req('lookup', ['cache_type', 'smtpd'], ['cache_id', id]);
const update = (id: string, s: string): Buffer => req('update', ['cache_type', 'smtpd'], ['cache_id', id], ['session', b64(s)]);
const del = (id: string): Buffer => req('delete', ['cache_type', 'smtpd'], ['cache_id', id]);

/** A harness with `expired` entries stored at T0 and `live` entries stored at T0 + TIMEOUT + 1 (= now). */
function filled(expired: number, live: number): { h: Harness; cache: TlsScache } {
  const h = makeHarness({ config: testConfig({ cache: { smtpd: { timeout: TIMEOUT } } }) });
  for (let i = 0; i < expired; i++) assert.equal(h.serve(update(`old-${i}`, `o${i}`))?.status, 0);
  h.clock.set(T0 + TIMEOUT + 1);
  for (let i = 0; i < live; i++) assert.equal(h.serve(update(`live-${i}`, `l${i}`))?.status, 0);
  const cache = h.caches.get('smtpd');
  assert.ok(cache !== undefined);
  assert.equal(cache.size, expired + live);
  return { h, cache: cache as TlsScache };
}

/** Resolve with fn()'s value on the next event-loop turn (after already queued immediates). */
function nextTurn<T>(fn: () => T): Promise<T> {
  return new Promise((resolve) => setImmediate(() => resolve(fn())));
}

test('a pass over 5000 expired entries takes several turns and a request is answered meanwhile', async () => {
  const { h, cache } = filled(5000, 10);
  let done = false;
  const pass = h.caches.runPass('smtpd', cache).then((n) => {
    done = true;
    return n;
  });
  // The first batch runs at once.
  assert.equal(cache.size, 5010 - CLEANUP_BATCH);
  let turns = 0;
  const observe = (): void => {
    if (done || turns > 1000) return;
    turns++;
    setImmediate(observe);
  };
  setImmediate(observe);
  const during = await nextTurn(() => ({ done, size: cache.size, reply: h.serveRaw(lookup('live-3')) }));
  assert.equal(during.done, false, 'the request was served before the pass ended');
  assert.ok(during.size > 10 && during.size < 5010 - CLEANUP_BATCH, `size during the pass: ${during.size}`);
  assert.equal(show(during.reply), show(Buffer.from(`status\0${OK}\0session\0${b64('l3')}\0\0`, 'latin1')));
  const removed = await pass;
  assert.equal(removed, 5000);
  assert.equal(cache.size, 10);
  const minTurns = Math.ceil(5000 / CLEANUP_BATCH) - 1;
  assert.ok(turns >= minTurns - 1, `ran over ${turns} turns, expected about ${minTurns}`);
  for (let i = 0; i < 10; i++) assert.equal(h.serve(lookup(`live-${i}`))?.status, 0);
  assert.deepEqual(h.warnings, []);
});

test('expired entries are answered ERR during the pass, whether or not the pass reached them', async () => {
  const { h, cache } = filled(1000, 1);
  const pass = h.caches.runPass('smtpd', cache);
  const r = await nextTurn(() => [h.serveRaw(lookup('old-0')), h.serveRaw(lookup('old-999'))]);
  for (const b of r) assert.equal(show(b), show(Buffer.from(`status\0${ERR}\0session\0\0\0`, 'latin1')));
  await pass;
  assert.equal(cache.size, 1);
});

test('delete during a pass works, for entries ahead of the pass and for live ones', async () => {
  const { h, cache } = filled(2000, 5);
  const pass = h.caches.runPass('smtpd', cache);
  const replies = await nextTurn(() => [h.serve(del('old-1999'))?.status, h.serve(del('live-2'))?.status, h.serve(del('nope'))?.status]);
  assert.deepEqual(replies, [0, 0, -1]);
  assert.equal(await pass, 1999, 'the deleted entry was not counted by the pass');
  assert.equal(cache.size, 4);
  assert.equal(h.serve(lookup('live-2'))?.status, -1);
  assert.equal(h.serve(lookup('live-1'))?.status, 0);
});

test('an expired entry updated during the pass is kept', async () => {
  const { h, cache } = filled(2000, 0);
  const pass = h.caches.runPass('smtpd', cache);
  const st = await nextTurn(() => h.serve(update('old-1500', 'fresh'))?.status);
  assert.equal(st, 0);
  assert.equal(await pass, 1999);
  assert.equal(cache.size, 1);
  assert.equal(show(h.serveRaw(lookup('old-1500'))), show(Buffer.from(`status\0${OK}\0session\0${b64('fresh')}\0\0`, 'latin1')));
});

test('a pass started while one runs does nothing', async () => {
  const { h, cache } = filled(1000, 0);
  const first = h.caches.runPass('smtpd', cache);
  assert.equal(await h.caches.runPass('smtpd', cache), 0);
  assert.equal(await first, 1000);
  // Once finished, a new pass may run again (and finds nothing).
  assert.equal(await h.caches.runPass('smtpd', cache), 0);
  h.clock.advance(TIMEOUT + 1);
  assert.equal(h.serve(update('x', 'y'))?.status, 0);
  h.clock.advance(TIMEOUT + 1);
  assert.equal(await h.caches.runPass('smtpd', cache), 1);
});

test('entries at exactly stamp + timeout survive a pass; one second later they go', async () => {
  const h = makeHarness({ config: testConfig({ cache: { smtpd: { timeout: TIMEOUT } } }) });
  const cache = h.caches.get('smtpd');
  assert.ok(cache !== undefined);
  assert.equal(h.serve(update('a', 'x'))?.status, 0);
  h.clock.set(T0 + TIMEOUT);
  assert.equal(await h.caches.runPass('smtpd', cache), 0);
  h.clock.set(T0 + TIMEOUT + 1);
  assert.equal(await h.caches.runPass('smtpd', cache), 1);
});

test('close() during a pass stops it', async () => {
  const { h, cache } = filled(3000, 0);
  const pass = h.caches.runPass('smtpd', cache);
  h.caches.close();
  const n = await pass;
  assert.equal(n, CLEANUP_BATCH, 'only the first (synchronous) batch ran');
});

test('startCleanup(): a pass at once, then every timeout seconds; close() stops the timer', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const { h, cache } = filled(CLEANUP_BATCH + 10, 1);
  h.caches.startCleanup();
  assert.equal(cache.size, 11, 'first batch ran synchronously');
  await nextTurn(() => undefined);
  assert.equal(cache.size, 1);
  // New entries expire; nothing removes them until the timer fires.
  h.clock.advance(TIMEOUT + 1);
  assert.equal(cache.size, 1);
  t.mock.timers.tick(TIMEOUT * 1000 - 1);
  assert.equal(cache.size, 1, 'not before timeout seconds');
  t.mock.timers.tick(1);
  assert.equal(cache.size, 0, 'the periodic pass removed the expired entry');
  h.caches.close();
  assert.equal(h.caches.get('smtpd'), undefined);
});
