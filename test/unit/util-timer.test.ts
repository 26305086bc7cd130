/*
 * util/timer runEvery() and util/maybe: periodic timers of any length re-arm after each run
 * and stop when cancelled (fake timers, no waiting); Maybe helpers keep plain values
 * synchronous and route failures to the error handler.
 */

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runEvery, TIMER_MAX_MS } from '../../src/util/timer.js';
import { settle, then } from '../../src/util/maybe.js';
import { FakeTimers } from '../helpers/fake-timers.js';

test('runEvery: runs once per period, re-arming after each run, and cancel stops it', () => {
  const t = new FakeTimers();
  let runs = 0;
  const cancel = runEvery(3600, () => runs++, t);
  assert.deepEqual(t.delays, [3600_000]);
  for (let i = 1; i <= 3; i++) {
    assert.equal(t.fireAll(), 1);
    assert.equal(runs, i);
  }
  assert.equal(t.size, 1);
  cancel();
  assert.equal(t.size, 0);
  assert.equal(t.fireAll(), 0);
  assert.equal(runs, 3);
});

test('runEvery: a period past 2^31-1 ms is chained, never shortened to 1 ms', () => {
  const t = new FakeTimers();
  let runs = 0;
  const days100 = 100 * 86400;
  runEvery(days100, () => runs++, t);
  let fires = 0;
  while (runs === 0 && fires < 10) {
    t.fireAll();
    fires++;
  }
  assert.equal(runs, 1);
  assert.ok(t.delays.every((ms) => ms <= TIMER_MAX_MS && ms > 1));
  assert.equal(t.delays.slice(0, fires).reduce((a, b) => a + b, 0), days100 * 1000);
});

test('runEvery: cancelling from inside the callback stops the next run', () => {
  const t = new FakeTimers();
  let runs = 0;
  const cancel = runEvery(60, () => {
    runs++;
    cancel();
  }, t);
  t.fireAll();
  assert.equal(t.fireAll(), 0);
  assert.equal(runs, 1);
});

test('maybe: then() on a plain value is synchronous; on a promise it waits', async () => {
  const now = then(2, (v) => v * 3);
  assert.equal(now, 6);
  const later = then(Promise.resolve(2), (v) => v * 3);
  assert.ok(later instanceof Promise);
  assert.equal(await later, 6);
});

test('maybe: settle() routes a throw and a rejection to onError', async () => {
  const thrown = settle<number, string>(() => {
    throw new Error('now');
  }, String, (e) => `caught ${(e as Error).message}`);
  assert.equal(thrown, 'caught now');
  const rejected = settle<number, string>(() => Promise.reject(new Error('later')), String, (e) => `caught ${(e as Error).message}`);
  assert.equal(await rejected, 'caught later');
  assert.equal(settle(() => 5, (v) => v + 1, () => 0), 6);
});
