/*
 * prng-drbg - HMAC_DRBG (SHA-256) against the NIST CAVP vectors (issue 4, item 1).
 * Reads test/vectors/{drbgvectors_no_reseed,drbgvectors_pr_false,drbgvectors_pr_true}/
 * HMAC_DRBG.rsp (NIST's files, byte for byte, checked against the SHA-256 in
 * test/vectors/SOURCES.md), runs EVERY vector of every [SHA-256] parameter block (no sampling)
 * by the CAVS procedure, and asserts and prints the counts (16 blocks x 15 COUNTs = 240 per
 * file). Also: input bounds, the reseed counter, destroy(), and (hardening issue, finding 7)
 * that every K and V the generator replaces, and every intermediate HMAC output, is zeroed
 * rather than left to the GC, while the output stays the same. The vectors are in the repository,
 * so the test runs from any clone; a missing or altered file fails with its path.
 */

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { DrbgReseedRequiredError, HmacDrbg, MAX_BYTES_PER_REQUEST } from '../../src/prng/drbg.js';

/** dist/test/unit/ -> the repository root -> test/vectors. */
const VECTORS = fileURLToPath(new URL('../../../test/vectors/', import.meta.url));
/** test/vectors/SOURCES.md: the SHA-256 of each file as NIST published it. */
const SHA256: Readonly<Record<string, string>> = {
  drbgvectors_no_reseed: '43947f6f080a1f11d60b3169e4d0f97fad3a1af5304990bd6c1dac27ee25d4d8',
  drbgvectors_pr_false: '527cd386df658cfedcdbcd408341416ad8ebf815f52d4093230155629b073bff',
  drbgvectors_pr_true: 'a2b2d473e69d6469cd2d6f44b4a17d40d43c90dc4d80d8741686d1f5ac4760ec',
};
const FOLDERS = ['drbgvectors_no_reseed', 'drbgvectors_pr_false', 'drbgvectors_pr_true'] as const;
type Folder = (typeof FOLDERS)[number];
/** SOURCES.md: 16 parameter blocks x 15 COUNTs in each file's [SHA-256] section. */
const EXPECTED_PER_FILE = 240;

interface Vector {
  readonly block: string;
  readonly count: number;
  /** Fields in file order; AdditionalInput and EntropyInputPR repeat. */
  readonly fields: ReadonlyArray<readonly [string, Buffer]>;
}

/** The [SHA-256] blocks of one .rsp file, every COUNT in order. */
function parseSha256(text: string): Vector[] {
  const out: Vector[] = [];
  let inSha256 = false;
  let blockNo = 0;
  let block: string[] = [];
  let cur: { count: number; fields: Array<[string, Buffer]> } | null = null;
  const flush = (): void => {
    if (cur !== null && inSha256) out.push({ block: `#${blockNo} ${block.join(' ')}`, count: cur.count, fields: cur.fields });
    cur = null;
  };
  for (const raw of text.split('\n')) {
    const line = raw.replace(/\r$/, '').trim();
    if (line === '' || line.startsWith('#')) continue;
    const hdr = /^\[(.*)\]$/.exec(line);
    if (hdr !== null) {
      flush();
      // A hash-name header ("[SHA-256]", "[SHA-1]") starts a new parameter block; the files
      // repeat identical parameter lines in several blocks, so blocks are told apart by number.
      if (!hdr[1].includes('=')) {
        inSha256 = hdr[1] === 'SHA-256';
        if (inSha256) blockNo++;
        block = [];
      } else {
        block.push(hdr[1]);
      }
      continue;
    }
    const kv = /^(\w+)\s*=\s*(.*)$/.exec(line);
    assert.ok(kv !== null, `unparsable line: ${line}`);
    const [, key, value] = kv;
    if (key === 'COUNT') {
      flush();
      cur = { count: Number(value), fields: [] };
    } else if (cur !== null) {
      assert.match(value, /^([0-9a-f]{2})*$/i, `${key} is not hex`);
      (cur as { fields: Array<[string, Buffer]> }).fields.push([key, Buffer.from(value, 'hex')]);
    }
  }
  flush();
  return out;
}

function field(v: Vector, name: string, nth = 0): Buffer {
  const all = v.fields.filter(([k]) => k === name).map(([, b]) => b);
  assert.ok(all.length > nth, `COUNT ${v.count} in ${v.block}: no ${name} #${nth + 1}`);
  return all[nth];
}

/** The CAVS procedure per folder (SOURCES.md); returns the second Generate's output. */
function runVector(folder: Folder, v: Vector): Buffer {
  const bits = field(v, 'ReturnedBits');
  const d = new HmacDrbg(field(v, 'EntropyInput'), field(v, 'Nonce'), field(v, 'PersonalizationString'));
  switch (folder) {
    case 'drbgvectors_no_reseed':
      d.generate(bits.length, { additional: field(v, 'AdditionalInput', 0) });
      return d.generate(bits.length, { additional: field(v, 'AdditionalInput', 1) });
    case 'drbgvectors_pr_false':
      d.reseed(field(v, 'EntropyInputReseed'), field(v, 'AdditionalInputReseed'));
      d.generate(bits.length, { additional: field(v, 'AdditionalInput', 0) });
      return d.generate(bits.length, { additional: field(v, 'AdditionalInput', 1) });
    case 'drbgvectors_pr_true':
      d.generate(bits.length, { additional: field(v, 'AdditionalInput', 0), predictionResistance: field(v, 'EntropyInputPR', 0) });
      return d.generate(bits.length, { additional: field(v, 'AdditionalInput', 1), predictionResistance: field(v, 'EntropyInputPR', 1) });
  }
}

const counts = new Map<Folder, number>();

for (const folder of FOLDERS) {
  test(`NIST CAVP ${folder}/HMAC_DRBG.rsp [SHA-256]: every vector passes`, (t) => {
    const path = `${VECTORS}${folder}/HMAC_DRBG.rsp`;
    assert.ok(existsSync(path), `NIST vector file missing: ${path}`);
    const bytes = readFileSync(path);
    assert.equal(createHash('sha256').update(bytes).digest('hex'), SHA256[folder], `${path} is not NIST's file`);
    const vectors = parseSha256(bytes.toString('latin1'));
    let passed = 0;
    const failed: string[] = [];
    for (const v of vectors) {
      const want = field(v, 'ReturnedBits');
      const got = runVector(folder, v);
      if (got.equals(want)) passed++;
      else failed.push(`${v.block} COUNT ${v.count}`);
    }
    t.diagnostic(`${folder}/HMAC_DRBG.rsp [SHA-256]: ${passed}/${vectors.length} vectors passed`);
    assert.deepEqual(failed, [], 'failing vectors');
    assert.equal(vectors.length, EXPECTED_PER_FILE, 'every [SHA-256] vector was read');
    assert.equal(passed, EXPECTED_PER_FILE);
    // Each of the 16 parameter blocks contributes 15 vectors.
    const perBlock = new Map<string, number>();
    for (const v of vectors) perBlock.set(v.block, (perBlock.get(v.block) ?? 0) + 1);
    assert.equal(perBlock.size, 16, [...perBlock.keys()].join('; '));
    for (const [b, n] of perBlock) assert.equal(n, 15, b);
    counts.set(folder, passed);
  });
}

test('all three folders together: 720 vectors', (t) => {
  const total = FOLDERS.reduce((s, f) => s + (counts.get(f) ?? 0), 0);
  t.diagnostic(`HMAC_DRBG SHA-256 vectors passed: ${FOLDERS.map((f) => `${f} ${counts.get(f) ?? 0}`).join(', ')}; total ${total}`);
  assert.equal(total, 3 * EXPECTED_PER_FILE);
});

const E32 = Buffer.alloc(32, 7);

test('input bounds: entropy below 256 bits, oversized requests and bad intervals are refused', () => {
  assert.throws(() => new HmacDrbg(Buffer.alloc(31), Buffer.alloc(16)), RangeError);
  const d = new HmacDrbg(E32, Buffer.alloc(16));
  assert.throws(() => d.reseed(Buffer.alloc(31)), RangeError);
  assert.throws(() => d.generate(MAX_BYTES_PER_REQUEST + 1), RangeError);
  assert.throws(() => d.generate(-1), RangeError);
  assert.throws(() => d.generate(1.5), RangeError);
  assert.equal(d.generate(MAX_BYTES_PER_REQUEST).length, MAX_BYTES_PER_REQUEST);
  assert.equal(d.generate(0).length, 0);
  assert.equal(d.generate(33).length, 33);
  assert.throws(() => new HmacDrbg(E32, Buffer.alloc(16), Buffer.alloc(0), { reseedInterval: 0 }), RangeError);
  assert.throws(() => new HmacDrbg(E32, Buffer.alloc(16), Buffer.alloc(0), { reseedInterval: 2 ** 48 + 1 }), RangeError);
});

test('the reseed counter: generate refuses after reseedInterval requests until a reseed', () => {
  const d = new HmacDrbg(E32, Buffer.alloc(16), Buffer.alloc(0), { reseedInterval: 3 });
  for (let i = 0; i < 3; i++) d.generate(8);
  assert.equal(d.reseedRequired, true);
  assert.throws(() => d.generate(8), DrbgReseedRequiredError);
  // Prediction resistance carries its own fresh entropy, so it is allowed.
  assert.equal(d.generate(8, { predictionResistance: E32 }).length, 8);
  for (let i = 0; i < 2; i++) d.generate(8);
  assert.throws(() => d.generate(8), DrbgReseedRequiredError);
  d.reseed(E32);
  assert.equal(d.reseedRequired, false);
  assert.equal(d.generate(8).length, 8);
});

test('same inputs, same output; any difference in entropy, nonce or additional input changes it', () => {
  const a = new HmacDrbg(E32, Buffer.alloc(16), Buffer.from('p'));
  const b = new HmacDrbg(E32, Buffer.alloc(16), Buffer.from('p'));
  assert.ok(a.generate(64).equals(b.generate(64)));
  const c = new HmacDrbg(E32, Buffer.alloc(16, 1), Buffer.from('p'));
  assert.ok(!new HmacDrbg(E32, Buffer.alloc(16), Buffer.from('p')).generate(64).equals(c.generate(64)));
  assert.ok(!a.generate(32, { additional: Buffer.from('x') }).equals(b.generate(32, { additional: Buffer.from('y') })));
});

test('destroy() makes the generator unusable', () => {
  const d = new HmacDrbg(E32, Buffer.alloc(16));
  d.destroy();
  assert.throws(() => d.generate(1), DrbgReseedRequiredError);
});

/*
 * The working state of a generator, reached past TypeScript's `private` (a test hook: the
 * runtime fields are plain properties), and every HMAC output it computes, collected by
 * wrapping the instance's hmac() method.
 */
interface DrbgInside {
  k: Buffer;
  v: Buffer;
  hmac: (...parts: Buffer[]) => Buffer;
}

function watch(d: HmacDrbg): { inside: DrbgInside; outputs: Buffer[] } {
  const inside = d as unknown as DrbgInside;
  const outputs: Buffer[] = [];
  const hmac = inside.hmac.bind(d);
  inside.hmac = (...parts: Buffer[]): Buffer => {
    const out = hmac(...parts);
    outputs.push(out);
    return out;
  };
  return { inside, outputs };
}

const isZero = (b: Buffer): boolean => b.every((x) => x === 0);

test('replaced K and V buffers are zeroed, not dropped: update, generate (every block), reseed', () => {
  const d = new HmacDrbg(E32, Buffer.alloc(16));
  const { inside, outputs } = watch(d);
  const steps: Array<[string, () => unknown]> = [
    ['generate without additional input', () => d.generate(32)],
    ['generate of 3 blocks with additional input', () => d.generate(96, { additional: Buffer.from('extra') })],
    ['reseed', () => d.reseed(Buffer.alloc(32, 9), Buffer.from('more'))],
    ['generate with prediction resistance', () => d.generate(40, { predictionResistance: Buffer.alloc(32, 3) })],
  ];
  for (const [what, step] of steps) {
    const k0 = inside.k;
    const v0 = inside.v;
    assert.ok(!isZero(k0) && !isZero(v0), `${what}: live state before`);
    outputs.length = 0;
    step();
    assert.notEqual(inside.k, k0, `${what}: K replaced`);
    assert.notEqual(inside.v, v0, `${what}: V replaced`);
    assert.ok(isZero(k0), `${what}: the replaced K is zeroed`);
    assert.ok(isZero(v0), `${what}: the replaced V is zeroed`);
    assert.ok(outputs.length >= 3, `${what}: ${outputs.length} HMAC outputs seen`);
    // Every intermediate K and V of the step is gone too: only the live pair is non-zero.
    for (const [i, out] of outputs.entries()) {
      if (out === inside.k || out === inside.v) continue;
      assert.ok(isZero(out), `${what}: HMAC output ${i} of ${outputs.length} is zeroed`);
    }
  }
  const k = inside.k;
  const v = inside.v;
  d.destroy();
  assert.ok(isZero(k) && isZero(v), 'destroy() zeroes the live K and V');
});

test('zeroing the replaced state leaves the output unchanged (same as a fresh generator run alike)', () => {
  const a = new HmacDrbg(E32, Buffer.alloc(16), Buffer.from('p'));
  const b = new HmacDrbg(E32, Buffer.alloc(16), Buffer.from('p'));
  watch(b); // wrapping changes nothing but what is collected
  for (const n of [1, 32, 33, 100]) assert.deepEqual(a.generate(n), b.generate(n));
});
