/*
 * random-pool - pooledRandom(): sizes, never a repeated slice, refills, large requests direct,
 * and the returned buffers are independent copies (daemon/random-pool.ts).
 */

import assert from 'node:assert/strict';
import test from 'node:test';
import { pooledRandom } from '../../src/daemon/random-pool.js';

test('pooledRandom: right sizes, distinct outputs across refills, independent copies', () => {
  const random = pooledRandom(64);
  const seen = new Set<string>();
  for (let i = 0; i < 200; i++) {
    const b = random(12);
    assert.equal(b.length, 12);
    const hex = b.toString('hex');
    assert.ok(!seen.has(hex), 'a 12-byte output repeated');
    seen.add(hex);
  }
  const a = random(16);
  const copy = Buffer.from(a);
  random(16);
  assert.deepEqual(a, copy, 'a later draw changed an earlier output');
  assert.equal(random(32).length, 32, 'over a quarter of the block: straight from randomBytes');
  assert.equal(random(0).length, 0);
});
