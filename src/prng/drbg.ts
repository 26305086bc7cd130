/*
 * NAME
 *   prng/drbg - HMAC_DRBG with SHA-256 (NIST SP 800-90A Rev. 1, section 10.1.2)
 * SYNOPSIS
 *   const d = new HmacDrbg(entropy, nonce, personalization?, { reseedInterval? })
 *   d.reseed(entropy, additional?)
 *   d.generate(n, { additional?, predictionResistance? }): Buffer
 *   d.reseedRequired: boolean        d.destroy()
 * DESCRIPTION
 *   The deterministic random bit generator behind tlsmgr's PRNG pool, built on node:crypto
 *   HMAC only, so that its output can be checked against the NIST CAVP vectors
 *   (../shared/vectors, test/unit/prng-drbg.test.ts) rather than trusted.
 *   - Instantiate (10.1.2.3): K = 0x00..., V = 0x01..., Update(entropy || nonce || pers).
 *   - Reseed (10.1.2.4): Update(entropy || additional), reseed counter back to 1.
 *   - Generate (10.1.2.5, with the prediction-resistance steps of 9.3.1): with
 *     `predictionResistance` the given fresh entropy is first used for a reseed together with
 *     the additional input, which is then not used again; otherwise a non-empty additional
 *     input goes through Update before and after the output is produced.
 *   Entropy is never gathered here: the caller passes it in (prng/pool.ts), which is what
 *   makes the mechanism testable with fixed vectors.
 *   The working state K and V is replaced by every Update and every output block; each
 *   replaced buffer is zeroed at once (a dropped Buffer keeps its bytes until the GC reuses
 *   the memory), and destroy() zeroes the live ones. Output handed to the caller is the
 *   caller's to wipe.
 * LIMITS
 *   Security strength 256 bits: entropy input must be 32..2^32 bytes (SP 800-90A allows up to
 *   2^35 bits; Buffers stop earlier), nonce and personalization at most 2^32 bytes; at most
 *   65536 bytes (2^19 bits) per generate; reseed interval at most 2^48 generates (default).
 * DIAGNOSTICS
 *   RangeError for inputs out of bounds; DrbgReseedRequiredError from generate() once the
 *   reseed counter has passed the reseed interval (the caller must reseed first).
 * SEE ALSO
 *   NIST SP 800-90A Rev. 1; ../shared/vectors/SOURCES.md (the CAVS procedure).
 */

import { createHmac } from 'node:crypto';

/** outlen of SHA-256, bytes. */
export const OUTLEN = 32;
/** Bytes of entropy needed for the 256-bit security strength of HMAC_DRBG with SHA-256. */
export const MIN_ENTROPY = 32;
/** max_number_of_bits_per_request (2^19 bits), in bytes. */
export const MAX_BYTES_PER_REQUEST = 65536;
/** reseed_interval limit of table 2 (2^48 requests). */
export const MAX_RESEED_INTERVAL = 2 ** 48;
/** Our bound on every input string (the standard's 2^35 bits is larger than a Buffer). */
const MAX_INPUT = 2 ** 32;

const EMPTY = Buffer.alloc(0);
const ZERO = Buffer.from([0x00]);
const ONE = Buffer.from([0x01]);

export class DrbgReseedRequiredError extends Error {
  constructor() {
    super('HMAC_DRBG: reseed required');
    this.name = 'DrbgReseedRequiredError';
  }
}

export interface DrbgOptions {
  /** Generates allowed between reseeds (1..2^48, default 2^48). */
  readonly reseedInterval?: number;
}

export interface GenerateOptions {
  readonly additional?: Buffer;
  /** Fresh entropy: reseed with it (and the additional input) before generating (9.3.1 step 7). */
  readonly predictionResistance?: Buffer;
}

function checkLen(what: string, b: Buffer, min: number, max: number): void {
  if (b.length < min || b.length > max) throw new RangeError(`HMAC_DRBG: ${what} length ${b.length} not in [${min}, ${max}]`);
}

export class HmacDrbg {
  private k: Buffer = Buffer.alloc(OUTLEN, 0x00);
  private v: Buffer = Buffer.alloc(OUTLEN, 0x01);
  private counter = 1;
  private readonly interval: number;

  constructor(entropy: Buffer, nonce: Buffer, personalization: Buffer = EMPTY, opts: DrbgOptions = {}) {
    this.interval = opts.reseedInterval ?? MAX_RESEED_INTERVAL;
    if (!Number.isInteger(this.interval) || this.interval < 1 || this.interval > MAX_RESEED_INTERVAL) {
      throw new RangeError(`HMAC_DRBG: reseed interval ${this.interval} not in [1, 2^48]`);
    }
    checkLen('entropy input', entropy, MIN_ENTROPY, MAX_INPUT);
    checkLen('nonce', nonce, 0, MAX_INPUT);
    checkLen('personalization string', personalization, 0, MAX_INPUT);
    this.update(entropy, nonce, personalization);
  }

  /** True once generate() would refuse to run without a reseed. */
  get reseedRequired(): boolean {
    return this.counter > this.interval;
  }

  reseed(entropy: Buffer, additional: Buffer = EMPTY): void {
    checkLen('entropy input', entropy, MIN_ENTROPY, MAX_INPUT);
    checkLen('additional input', additional, 0, MAX_INPUT);
    this.update(entropy, additional);
    this.counter = 1;
  }

  generate(n: number, opts: GenerateOptions = {}): Buffer {
    if (!Number.isInteger(n) || n < 0 || n > MAX_BYTES_PER_REQUEST) {
      throw new RangeError(`HMAC_DRBG: request of ${n} bytes not in [0, ${MAX_BYTES_PER_REQUEST}]`);
    }
    let additional = opts.additional ?? EMPTY;
    checkLen('additional input', additional, 0, MAX_INPUT);
    if (opts.predictionResistance !== undefined) {
      this.reseed(opts.predictionResistance, additional);
      additional = EMPTY;
    } else if (this.reseedRequired) {
      throw new DrbgReseedRequiredError();
    }
    if (additional.length > 0) this.update(additional);
    const out = Buffer.allocUnsafe(n);
    for (let off = 0; off < n; off += OUTLEN) {
      this.setV(this.hmac(this.v));
      this.v.copy(out, off, 0, Math.min(OUTLEN, n - off));
    }
    this.update(additional);
    this.counter++;
    return out;
  }

  /** Overwrite the working state (K and V); the object is unusable afterwards. */
  destroy(): void {
    this.k.fill(0);
    this.v.fill(0);
    this.counter = Number.POSITIVE_INFINITY;
  }

  private hmac(...parts: Buffer[]): Buffer {
    const h = createHmac('sha256', this.k);
    for (const p of parts) h.update(p);
    return h.digest();
  }

  /* setK, setV - replace a state buffer, zeroing the one replaced rather than leaving it to the GC */
  private setK(next: Buffer): void {
    this.k.fill(0);
    this.k = next;
  }

  private setV(next: Buffer): void {
    this.v.fill(0);
    this.v = next;
  }

  /* HMAC_DRBG_Update (10.1.2.2); provided_data is the concatenation of `data`. */
  private update(...data: Buffer[]): void {
    this.setK(this.hmac(this.v, ZERO, ...data));
    this.setV(this.hmac(this.v));
    if (data.every((d) => d.length === 0)) return;
    this.setK(this.hmac(this.v, ONE, ...data));
    this.setV(this.hmac(this.v));
  }
}
