/*
 * NAME
 *   daemon/random-pool - small random strings cut from a block of CSPRNG output
 * SYNOPSIS
 *   const random = pooledRandom(4096); random(12): Buffer
 * DESCRIPTION
 *   node:crypto randomBytes() costs one trip into OpenSSL per call, whatever the size; for the
 *   24-byte nonce of every sealed session (util/seal.ts) that trip was about 9% of the
 *   daemon's CPU under load (bench profile). This draws one block of randomBytes(blockSize)
 *   and hands out fresh copies of consecutive, never reused slices of it; each slice is
 *   zeroed in the block as soon as it is handed out, so key material drawn from it does not
 *   stay behind. Requests over a quarter of the block go straight to randomBytes().
 *   The output is the CSPRNG's output, unchanged and never repeated.
 */

import { randomBytes } from 'node:crypto';

export function pooledRandom(blockSize = 4096): (n: number) => Buffer {
  let block = randomBytes(blockSize);
  let pos = 0;
  return (n: number): Buffer => {
    if (n > blockSize >> 2) return randomBytes(n);
    if (pos + n > blockSize) {
      block.fill(0);
      block = randomBytes(blockSize);
      pos = 0;
    }
    const out = Buffer.allocUnsafe(n);
    block.copy(out, 0, pos, pos + n);
    block.fill(0, pos, pos + n);
    pos += n;
    return out;
  };
}
