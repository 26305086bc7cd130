/*
 * NAME
 *   prng/pool - tlsmgr's PRNG pool: an HMAC_DRBG seeded from every source tlsmgr has
 * SYNOPSIS
 *   const pool = PrngPool.create(deps?)
 *   pool.addEntropy(bytes)      external source or exchange-file bytes (a DRBG reseed)
 *   pool.stir(extra?)           time (and optional non-entropy data) as additional input
 *   pool.generate(n): Buffer    seed replies, exchange-file contents, timer bytes
 *   pool.randomByte(): number   pool.destroy()
 * DESCRIPTION
 *   The OpenSSL RAND pool of Postfix's tlsmgr, rebuilt on prng/drbg.ts (spec 4.6, 4.7):
 *   - create(): Instantiate with 32 bytes of Node's CSPRNG as entropy input and, as nonce,
 *     the time of day with the seconds XORed with the process id (tlsmgr_pre_init's first
 *     RAND_seed) followed by 16 more CSPRNG bytes. The configured source and the exchange
 *     file follow as reseeds right after (prng/manager.ts, in Postfix's order).
 *   - addEntropy(): Reseed with entropy input = the bytes || 32 fresh CSPRNG bytes, so that a
 *     weak or hostile configured source can never make the output predictable; pending
 *     stir material rides along as additional input.
 *   - stir(): tlsmgr_loop's RAND_seed(&tv) after every event. The 16-byte time (wall clock in
 *     microseconds, then the monotonic nanosecond clock) is queued and becomes the additional
 *     input of the next generate or reseed; queuing keeps a stir to a copy, not four HMACs,
 *     per request. `extra` (e.g. session-cache data, which the manual mentions and Postfix
 *     3.7 does not use) is hashed to 32 bytes and queued the same way: additional input is
 *     never counted as entropy. When the queue passes STIR_FOLD bytes it is folded in at once
 *     with a zero-length generate, so it stays bounded however long no seed is asked for.
 *   - generate(): HMAC_DRBG Generate in pieces of at most 65536 bytes; when the DRBG's reseed
 *     counter runs out (2^48 requests) it is reseeded from the CSPRNG first. One piece (every
 *     seed reply) is the DRBG's own output buffer, handed over; more are copied into one
 *     buffer and each piece is wiped, so no copy of handed-out bytes stays behind.
 *   - Failure: when the CSPRNG or the DRBG throws in the middle of an operation (a reseed
 *     whose CSPRNG draw fails, a generate or a fold that breaks off), the pool is marked
 *     failed and the error is passed on. A failed pool produces nothing until a reseed from
 *     the CSPRNG has succeeded: generate() tries that reseed first and throws while it fails,
 *     so output never comes from a state that an interrupted update left half-done, and a
 *     pool whose entropy source is gone refuses instead of serving on, as OpenSSL's
 *     RAND_bytes() then does. generate() hands out its buffer only when every byte of it was
 *     produced; on failure the partial output is wiped.
 * LIMITS
 *   Nothing here logs; pool bytes and inputs are never passed to the log.
 * DIAGNOSTICS
 *   generate() and addEntropy() throw the CSPRNG's or the DRBG's error; stir() throws only
 *   when a fold fails; all three then leave the pool failed (see above). The error of a
 *   destroyed pool: "PRNG pool used after destroy()".
 * SEE ALSO
 *   tlsmgr/tlsmgr.c tlsmgr_pre_init(), tlsmgr_loop(); prng/drbg.ts
 */

import { createHash, randomBytes } from 'node:crypto';
import { HmacDrbg, MAX_BYTES_PER_REQUEST, MIN_ENTROPY } from './drbg.js';

/** Queued stir material is folded into the DRBG once it exceeds this many bytes. */
export const STIR_FOLD = 4096;
/** Extra stir data longer than this is hashed first (keeps stirs cheap and bounded). */
const EXTRA_DIRECT = 64;
const PERSONALIZATION = Buffer.from('postfix-tlsmgr prng pool v1', 'latin1');

export interface PoolDeps {
  /** Node's CSPRNG, or a stand-in in tests. */
  readonly randomBytes?: (n: number) => Buffer;
  /** Wall-clock time in microseconds since the epoch. */
  readonly nowMicros?: () => bigint;
  /** A monotonic clock in nanoseconds. */
  readonly hrtime?: () => bigint;
  readonly pid?: number;
  /** DRBG reseed interval (tests). */
  readonly reseedInterval?: number;
}

/** struct timeval with tv_sec ^= pid, as tlsmgr_pre_init() seeds it (16 bytes, x86-64 layout). */
function timevalXorPid(micros: bigint, pid: number): Buffer {
  const b = Buffer.alloc(16);
  b.writeBigInt64LE((micros / 1_000_000n) ^ BigInt(pid), 0);
  b.writeBigInt64LE(micros % 1_000_000n, 8);
  return b;
}

export class PrngPool {
  private readonly drbg: HmacDrbg;
  private readonly random: (n: number) => Buffer;
  private readonly nowMicros: () => bigint;
  private readonly hrtime: () => bigint;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private destroyed = false;
  /** An operation broke off: no output before a successful reseed from the CSPRNG. */
  private failed = false;

  private constructor(deps: PoolDeps) {
    this.random = deps.randomBytes ?? randomBytes;
    this.nowMicros = deps.nowMicros ?? ((): bigint => BigInt(Date.now()) * 1000n);
    this.hrtime = deps.hrtime ?? process.hrtime.bigint;
    const nonce = Buffer.concat([timevalXorPid(this.nowMicros(), deps.pid ?? process.pid), this.random(16)]);
    this.drbg = new HmacDrbg(this.random(MIN_ENTROPY), nonce, PERSONALIZATION, { reseedInterval: deps.reseedInterval });
  }

  static create(deps: PoolDeps = {}): PrngPool {
    return new PrngPool(deps);
  }

  /** Mix external entropy (source bytes, exchange-file contents): a reseed, CSPRNG included. */
  addEntropy(data: Buffer): void {
    this.alive();
    this.guarded(() => this.drbg.reseed(Buffer.concat([data, this.random(MIN_ENTROPY)]), this.takePending()));
    this.failed = false;
  }

  /** Queue the time of day, and optionally non-entropy data, as additional input. */
  stir(extra?: Buffer): void {
    const t = Buffer.allocUnsafe(16);
    t.writeBigUInt64LE(BigInt.asUintN(64, this.nowMicros()), 0);
    t.writeBigUInt64LE(BigInt.asUintN(64, this.hrtime()), 8);
    this.queue(t);
    if (extra !== undefined && extra.length > 0) {
      this.queue(extra.length <= EXTRA_DIRECT ? Buffer.from(extra) : createHash('sha256').update(extra).digest());
    }
    if (this.pendingBytes > STIR_FOLD) this.guarded(() => this.drbg.generate(0, { additional: this.takePending() }));
  }

  /** n pseudo-random bytes (any n >= 0); throws, and hands out nothing, when they cannot be made. */
  generate(n: number): Buffer {
    this.alive();
    if (n <= MAX_BYTES_PER_REQUEST) {
      // One DRBG request (every seed reply): its output is handed out as it is, no copy.
      return this.guarded(() => {
        this.reseedIfNeeded();
        return this.drbg.generate(n, { additional: this.takePending() });
      });
    }
    const out = Buffer.allocUnsafe(n);
    try {
      this.guarded(() => {
        let off = 0;
        do {
          this.reseedIfNeeded();
          const len = Math.min(n - off, MAX_BYTES_PER_REQUEST);
          const piece = this.drbg.generate(len, { additional: this.takePending() });
          piece.copy(out, off);
          piece.fill(0); // copied into out: no second copy is left to the GC
          off += len;
        } while (off < n);
      });
    } catch (err) {
      out.fill(0);
      throw err;
    }
    return out;
  }

  /* reseedIfNeeded - a failed pool, or a DRBG whose reseed counter ran out, reseeds from the CSPRNG first */
  private reseedIfNeeded(): void {
    if (this.failed) {
      this.drbg.reseed(this.random(MIN_ENTROPY), this.takePending());
      this.failed = false;
    } else if (this.drbg.reseedRequired) {
      this.drbg.reseed(this.random(MIN_ENTROPY), this.takePending());
    }
  }

  /** One byte 0..255, for the timer formula of spec 4.4. */
  randomByte(): number {
    return this.generate(1)[0];
  }

  destroy(): void {
    this.destroyed = true;
    this.drbg.destroy();
    this.takePending().fill(0);
  }

  private alive(): void {
    if (this.destroyed) throw new Error('PRNG pool used after destroy()');
  }

  /* guarded - run a CSPRNG/DRBG step; if it throws, the pool is failed until a CSPRNG reseed */
  private guarded<T>(step: () => T): T {
    try {
      return step();
    } catch (err) {
      this.failed = true;
      throw err;
    }
  }

  private queue(b: Buffer): void {
    this.pending.push(b);
    this.pendingBytes += b.length;
  }

  private takePending(): Buffer {
    const b = this.pending.length === 1 ? this.pending[0] : Buffer.concat(this.pending);
    this.pending = [];
    this.pendingBytes = 0;
    return b;
  }
}
