/*
 * NAME
 *   test/helpers/splits - feed one byte stream in many chunkings
 * SYNOPSIS
 *   prng(seed): () => number            mulberry32, uniform in [0, 1)
 *   chunkings(length, opts?): Chunking[]  cut-offset sets, bounded in count
 *   cut(buf, cuts): Buffer[]
 *   splits(buf, opts?): { label, chunks }[]
 * DESCRIPTION
 *   The chunkings of a buffer of n bytes are: whole; byte by byte; every single split offset
 *   1..n-1 (two chunks); and opts.random (default 64) random multi-splits from a seeded PRNG
 *   (opts.seed, default 1), so a failure names a reproducible label ("random#17 seed 1").
 *   opts.keep(offset) may veto cut points (e.g. to keep the first bytes of a list together);
 *   chunkings that become identical are kept anyway: the count stays predictable.
 * LIMITS
 *   n <= MAX_SPLIT_LENGTH and random <= 1000, so that a loop over the result stays bounded.
 */

export const MAX_SPLIT_LENGTH = 8192;

export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface SplitOptions {
  /** Number of random chunkings (default 64). */
  readonly random?: number;
  /** PRNG seed (default 1). */
  readonly seed?: number;
  /** Return false to forbid a cut at this offset. */
  readonly keep?: (offset: number) => boolean;
}

export interface Chunking {
  readonly label: string;
  /** Strictly increasing cut offsets in 1..length-1. */
  readonly cuts: readonly number[];
}

export function chunkings(length: number, opts: SplitOptions = {}): Chunking[] {
  const random = opts.random ?? 64;
  const seed = opts.seed ?? 1;
  if (length > MAX_SPLIT_LENGTH) throw new RangeError(`splits: ${length} bytes is too long`);
  if (random > 1000) throw new RangeError(`splits: ${random} random chunkings is too many`);
  const ok = (c: number): boolean => opts.keep === undefined || opts.keep(c);
  const all: number[] = [];
  for (let c = 1; c < length; c++) if (ok(c)) all.push(c);
  const out: Chunking[] = [{ label: 'whole', cuts: [] }, { label: 'byte by byte', cuts: all }];
  for (const c of all) out.push({ label: `split at ${c}`, cuts: [c] });
  const rnd = prng(seed);
  for (let i = 0; i < random; i++) {
    // Cut density varies per run: from a few cuts to about half of all offsets.
    const p = rnd() * 0.5;
    out.push({ label: `random#${i} seed ${seed}`, cuts: all.filter(() => rnd() < p) });
  }
  return out;
}

export function cut(buf: Buffer, cuts: readonly number[]): Buffer[] {
  const chunks: Buffer[] = [];
  let from = 0;
  for (const c of cuts) {
    chunks.push(buf.subarray(from, c));
    from = c;
  }
  chunks.push(buf.subarray(from));
  return chunks;
}

/** Every chunking of buf, as chunks (copies, so that no two chunks share memory). */
export function splits(buf: Buffer, opts: SplitOptions = {}): Array<{ label: string; chunks: Buffer[] }> {
  return chunkings(buf.length, opts).map(({ label, cuts }) => ({
    label,
    chunks: cut(buf, cuts).map((c) => Buffer.from(c)),
  }));
}
