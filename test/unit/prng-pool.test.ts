/*
 * prng-pool - the pool around HMAC_DRBG (spec 4.6, 4.7; issue 4 item 2): with fixed stand-ins
 * for the CSPRNG and the clocks the pool is deterministic, which makes every input visible:
 * the CSPRNG at instantiate and at every reseed, time ^ pid in the nonce, source bytes
 * (addEntropy), time per stir, non-entropy extra data; the stir queue is bounded and folded;
 * generate() serves any size, reseeds by itself when the DRBG demands it; randomByte().
 * Failure: a CSPRNG draw that fails in a reseed, or an HMAC that breaks off inside generate()
 * or a stir fold (node:crypto patched for the length of one test), leaves the pool failed: it
 * hands out nothing until a reseed from the CSPRNG has worked, and never partial output.
 */

import assert from 'node:assert/strict';
import { createRequire, syncBuiltinESMExports } from 'node:module';
import { test } from 'node:test';
import { HmacDrbg, MAX_BYTES_PER_REQUEST } from '../../src/prng/drbg.js';
import { PrngPool, STIR_FOLD, type PoolDeps } from '../../src/prng/pool.js';

/** Deterministic deps: counter "CSPRNG", fixed clocks (settable), fixed pid. */
function fixed(over: Partial<PoolDeps> & { seed?: number } = {}): PoolDeps & { calls: number[]; clock: { us: bigint; ns: bigint } } {
  const calls: number[] = [];
  let k = over.seed ?? 1;
  const clock = { us: 1_700_000_000_000_000n, ns: 5_000n };
  return {
    randomBytes: (n) => {
      calls.push(n);
      const b = Buffer.alloc(n);
      for (let i = 0; i < n; i++) b[i] = (k++ * 31) & 0xff;
      return b;
    },
    nowMicros: () => clock.us,
    hrtime: () => clock.ns,
    pid: 4242,
    ...over,
    calls,
    clock,
  };
}

test('deterministic given the same inputs; the CSPRNG is drawn at instantiate (32 + 16 bytes)', () => {
  const da = fixed();
  const a = PrngPool.create(da);
  const b = PrngPool.create(fixed());
  assert.deepEqual(da.calls, [16, 32]);
  assert.ok(a.generate(64).equals(b.generate(64)));
});

test('a different CSPRNG, time or pid at instantiate gives a different pool', () => {
  const ref = PrngPool.create(fixed()).generate(32);
  assert.ok(!PrngPool.create(fixed({ seed: 2 })).generate(32).equals(ref));
  assert.ok(!PrngPool.create(fixed({ pid: 4243 })).generate(32).equals(ref));
  const d = fixed();
  d.clock.us += 1n;
  assert.ok(!PrngPool.create(d).generate(32).equals(ref));
});

test('addEntropy reseeds with the bytes plus 32 fresh CSPRNG bytes', () => {
  const da = fixed();
  const a = PrngPool.create(da);
  const b = PrngPool.create(fixed());
  a.addEntropy(Buffer.from('source bytes'));
  assert.deepEqual(da.calls, [16, 32, 32]);
  assert.ok(!a.generate(32).equals(b.generate(32)));
  // Same source bytes, same CSPRNG: same state (nothing else goes in).
  const c = PrngPool.create(fixed());
  const d = PrngPool.create(fixed());
  c.addEntropy(Buffer.from('x'));
  d.addEntropy(Buffer.from('x'));
  assert.ok(c.generate(32).equals(d.generate(32)));
});

test('stir() mixes the time: a different time of day or monotonic clock changes the next output', () => {
  const mk = (us: bigint, ns: bigint): Buffer => {
    const d = fixed();
    const p = PrngPool.create(d);
    d.clock.us = us;
    d.clock.ns = ns;
    p.stir();
    return p.generate(32);
  };
  const base = mk(1n, 1n);
  assert.ok(mk(1n, 1n).equals(base));
  assert.ok(!mk(2n, 1n).equals(base));
  assert.ok(!mk(1n, 2n).equals(base));
  const unstirred = PrngPool.create(fixed()).generate(32);
  assert.ok(!base.equals(unstirred));
});

test('stir(extra) mixes non-entropy data, short or long (hashed), without touching the CSPRNG', () => {
  const out = (extra?: Buffer): Buffer => {
    const d = fixed();
    const p = PrngPool.create(d);
    p.stir(extra);
    const r = p.generate(32);
    assert.deepEqual(d.calls, [16, 32], 'no CSPRNG draw for a stir');
    return r;
  };
  const none = out();
  assert.ok(!out(Buffer.from('session')).equals(none));
  assert.ok(!out(Buffer.alloc(100_000, 1)).equals(out(Buffer.alloc(100_000, 2))));
  assert.ok(out(Buffer.alloc(0)).equals(none));
});

test('the stir queue stays bounded: it is folded in once past STIR_FOLD bytes', () => {
  const p = PrngPool.create(fixed());
  const pending = (): number => (p as unknown as { pendingBytes: number }).pendingBytes;
  for (let i = 0; i < 10_000; i++) {
    p.stir();
    assert.ok(pending() <= STIR_FOLD + 16, `pending ${pending()}`);
  }
  p.generate(1);
  assert.equal(pending(), 0);
});

test('generate: sizes 0, 1, 255, 1024 and more than one DRBG request (65536) at once', () => {
  const p = PrngPool.create();
  for (const n of [0, 1, 32, 255, 1024, 65536, 65537, 200_000]) assert.equal(p.generate(n).length, n);
  const seen = new Set<string>();
  for (let i = 0; i < 1000; i++) seen.add(p.generate(32).toString('hex'));
  assert.equal(seen.size, 1000, 'consecutive seeds differ');
});

test('when the DRBG reseed counter runs out, generate reseeds from the CSPRNG by itself', () => {
  const d = fixed({ reseedInterval: 3 });
  const p = PrngPool.create(d);
  for (let i = 0; i < 10; i++) p.generate(8);
  assert.deepEqual(d.calls, [16, 32, 32, 32, 32]);
});

test('randomByte() is 0..255 and covers the range', () => {
  const p = PrngPool.create();
  const seen = new Set<number>();
  for (let i = 0; i < 20_000 && seen.size < 256; i++) {
    const r = p.randomByte();
    assert.ok(Number.isInteger(r) && r >= 0 && r <= 255);
    seen.add(r);
  }
  assert.equal(seen.size, 256);
});

test('destroy() leaves a pool that refuses to generate', () => {
  const p = PrngPool.create();
  p.destroy();
  assert.throws(() => p.generate(1));
});

/** Counter "CSPRNG" that throws while `armed`, recording every draw (also the failed ones). */
function switchable(): PoolDeps & { armed: boolean; calls: number[] } {
  const d = fixed();
  const draw = d.randomBytes as (n: number) => Buffer;
  const s = {
    ...d,
    armed: false,
    randomBytes: (n: number): Buffer => {
      if (s.armed) {
        d.calls.push(-n);
        throw new Error('CSPRNG failure');
      }
      return draw(n);
    },
  };
  return s;
}

test('a CSPRNG failure in addEntropy fails the pool: no output until a CSPRNG reseed works', () => {
  const d = switchable();
  const p = PrngPool.create(d);
  p.generate(8);
  d.armed = true;
  assert.throws(() => p.addEntropy(Buffer.from('source bytes')), /CSPRNG failure/);
  for (let i = 0; i < 3; i++) assert.throws(() => p.generate(32), /CSPRNG failure/, 'refuses while the CSPRNG fails');
  assert.throws(() => p.randomByte(), /CSPRNG failure/);
  assert.deepEqual(d.calls, [16, 32, -32, -32, -32, -32, -32], 'each refusal is a reseed attempt');
  d.armed = false;
  assert.equal(p.generate(32).length, 32);
  assert.deepEqual(d.calls.slice(-1), [32], 'the reseed came before the output');
  p.generate(32);
  assert.deepEqual(d.calls.slice(-1), [32], 'recovered: no more reseeds');
  // A good addEntropy also recovers it (its reseed draws the CSPRNG too).
  d.armed = true;
  assert.throws(() => p.addEntropy(Buffer.from('x')));
  d.armed = false;
  p.addEntropy(Buffer.from('y'));
  const before = d.calls.length;
  p.generate(32);
  assert.equal(d.calls.length, before, 'no extra reseed after a good addEntropy');
});

/* withFailingHmac - run fn while createHmac throws from its `after`-th call on (0 = at once) */
function withFailingHmac(after: number, fn: (state: { calls: number; armed: boolean }) => void): void {
  const crypto = createRequire(import.meta.url)('node:crypto') as { createHmac: (...a: unknown[]) => unknown };
  const real = crypto.createHmac;
  const state = { calls: 0, armed: true };
  crypto.createHmac = function (this: unknown, ...a: unknown[]): unknown {
    if (state.armed && state.calls++ >= after) throw new Error('HMAC failure');
    return Reflect.apply(real, this, a);
  };
  syncBuiltinESMExports();
  try {
    fn(state);
  } finally {
    crypto.createHmac = real;
    syncBuiltinESMExports();
  }
}

test('a DRBG that breaks off inside generate(): nothing is handed out, the next output follows a CSPRNG reseed', () => {
  const d = fixed();
  const p = PrngPool.create(d);
  const ref = PrngPool.create(fixed());
  assert.ok(p.generate(32).equals(ref.generate(32)));
  withFailingHmac(1, (state) => {
    // The first V update of the 64-byte output succeeds, the second fails: half-made output.
    assert.throws(() => p.generate(64), /HMAC failure/);
    state.armed = false;
  });
  assert.deepEqual(d.calls, [16, 32]);
  const next = p.generate(32);
  assert.deepEqual(d.calls, [16, 32, 32], 'reseeded from the CSPRNG before producing again');
  assert.ok(!next.equals(ref.generate(32)), 'not the output of the interrupted state');
});

test('a stir whose fold breaks off throws and fails the pool; the next generate reseeds first', () => {
  const d = fixed();
  const p = PrngPool.create(d);
  withFailingHmac(0, () => {
    assert.throws(() => {
      for (let i = 0; i < 1000; i++) p.stir(Buffer.alloc(64, i));
    }, /HMAC failure/);
  });
  assert.deepEqual(d.calls, [16, 32]);
  assert.equal(p.generate(16).length, 16);
  assert.deepEqual(d.calls, [16, 32, 32]);
});

test('generate leaves no copy of the bytes it hands out: a DRBG output is handed over or wiped', () => {
  const sizes = [32, 255, MAX_BYTES_PER_REQUEST + 5];
  const ref = PrngPool.create(fixed());
  const wants = sizes.map((n) => ref.generate(n));
  const proto = HmacDrbg.prototype as unknown as { generate: (...a: unknown[]) => Buffer };
  const real = proto.generate;
  const made: Buffer[] = [];
  proto.generate = function (this: unknown, ...a: unknown[]): Buffer {
    const b = Reflect.apply(real, this, a) as Buffer;
    made.push(b);
    return b;
  };
  try {
    const p = PrngPool.create(fixed());
    for (const [i, n] of sizes.entries()) {
      made.length = 0;
      const out = p.generate(n);
      assert.ok(out.equals(wants[i]), `${n} bytes: the same output as an unwatched pool`);
      assert.ok(made.length >= 1, `${n} bytes: the DRBG was asked`);
      for (const b of made) {
        if (b === out || b.length === 0) continue;
        assert.ok(b.every((x) => x === 0), `${n} bytes: a DRBG output of ${b.length} bytes not handed out is wiped`);
      }
    }
  } finally {
    proto.generate = real;
  }
});
