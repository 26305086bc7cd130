/*
 * prng-schedule - the timer formula of spec 4.4 (scenario 40): next = floor(period * r / 255)
 * with r a pool byte and period clamped to INT_MAX / 255 = 8421504. Many draws from a real
 * pool stay within [0, period] and cover the whole range (all 256 steps); the clamp; and
 * runAfter() chains Node timers for delays past 2^31-1 ms (fake timers, no waiting).
 */

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PrngPool } from '../../src/prng/pool.js';
import { clampPeriod, nextInterval, PERIOD_MAX } from '../../src/prng/schedule.js';
import { FakeTimers } from '../helpers/fake-timers.js';
import { Signal } from '../helpers/signal.js';
import { runAfter, TIMER_MAX_MS } from '../../src/util/timer.js';

test('PERIOD_MAX is INT_MAX / UCHAR_MAX in integer arithmetic', () => {
  assert.equal(PERIOD_MAX, 8421504);
  assert.equal(clampPeriod(3600), 3600);
  assert.equal(clampPeriod(PERIOD_MAX), PERIOD_MAX);
  assert.equal(clampPeriod(PERIOD_MAX + 1), PERIOD_MAX);
  assert.equal(clampPeriod(2147483647), PERIOD_MAX);
});

test('every r: 0 -> 0, 255 -> period, monotonic, integral', () => {
  for (const period of [1, 2, 3, 60, 255, 3600, 86400, PERIOD_MAX]) {
    let prev = -1;
    for (let r = 0; r <= 255; r++) {
      const n = nextInterval(period, r);
      assert.ok(Number.isInteger(n) && n >= 0 && n <= period, `period ${period} r ${r}: ${n}`);
      assert.ok(n >= prev);
      prev = n;
    }
    assert.equal(nextInterval(period, 0), 0);
    assert.equal(nextInterval(period, 255), period);
  }
  assert.equal(nextInterval(3600, 128), Math.floor((3600 * 128) / 255));
  assert.throws(() => nextInterval(3600, 256), RangeError);
  assert.throws(() => nextInterval(3600, -1), RangeError);
});

test('the clamp: a period over 8421504 s behaves as 8421504', () => {
  for (const r of [0, 1, 100, 254, 255]) {
    assert.equal(nextInterval(10 ** 9, r), nextInterval(PERIOD_MAX, r));
    assert.equal(nextInterval(2147483647, r), Math.floor((PERIOD_MAX * r) / 255));
  }
  assert.equal(nextInterval(10 ** 9, 255), PERIOD_MAX);
});

test('20000 draws with bytes from a real pool: all within [0, period], all 256 steps seen', () => {
  const pool = PrngPool.create();
  const period = 3600;
  const steps = new Set<number>();
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < 20_000; i++) {
    const n = nextInterval(period, pool.randomByte());
    assert.ok(n >= 0 && n <= period);
    steps.add(n);
    min = Math.min(min, n);
    max = Math.max(max, n);
  }
  // P(some step never drawn in 20000 tries) < 256 * (255/256)^20000, about 1e-32.
  assert.equal(steps.size, 256);
  assert.equal(min, 0);
  assert.equal(max, period);
});

test('runAfter chains timers for delays over 2^31-1 ms and fires once at the end', () => {
  const t = new FakeTimers();
  let fired = 0;
  runAfter(PERIOD_MAX, () => fired++, t);
  for (let i = 0; i < 10 && t.size > 0; i++) t.fireAll();
  assert.equal(fired, 1);
  assert.ok(t.delays.every((d) => d <= TIMER_MAX_MS && d >= 0));
  assert.equal(t.delays.reduce((s, d) => s + d, 0), PERIOD_MAX * 1000);
  assert.equal(t.delays.length, Math.ceil((PERIOD_MAX * 1000) / TIMER_MAX_MS));
});

test('runAfter: 0 s fires on the next turn; cancel stops it, also midway through a chain', async () => {
  let fired = 0;
  const ran = new Signal();
  runAfter(0, () => {
    fired++;
    ran.wake();
  });
  assert.equal(fired, 0, 'not at once');
  await ran.until(() => fired === 1, 2000, 'the 0 s timer');
  const t = new FakeTimers();
  const cancel = runAfter(PERIOD_MAX, () => fired++, t);
  t.fireAll();
  cancel();
  assert.equal(t.size, 0);
  assert.equal(fired, 1);
});
