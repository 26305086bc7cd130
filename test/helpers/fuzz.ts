/*
 * NAME
 *   test/helpers/fuzz - run fast-check properties inside node:test, bounded or long
 * SYNOPSIS
 *   checkProperty(t, property, runs): void
 * DESCRIPTION
 *   Runs one property with fast-check and fails the test with fast-check's report plus the
 *   command that replays the counterexample. Environment:
 *     FUZZ_RUNS  runs per property (default: the `runs` given, small enough for `npm test`);
 *                `npm run fuzz` sets it high and runs only test/property;
 *     FUZZ_SEED  the seed (default: fast-check's random seed, printed on failure);
 *     FUZZ_PATH  with FUZZ_SEED: replay the shrunk counterexample only.
 *   When FUZZ_RUNS is set, each property also prints its seed and run count as a test
 *   diagnostic, so that a long run that is stopped can be resumed with another seed.
 * LIMITS
 *   Properties are synchronous; shrinking is bounded by fast-check's defaults.
 * DIAGNOSTICS
 *   Throws an Error whose message names the seed, the path and the replay command.
 */

import type { TestContext } from 'node:test';
import fc from 'fast-check';

function envInt(name: string): number | undefined {
  const v = process.env[name];
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  if (!Number.isInteger(n)) throw new Error(`${name} must be an integer, not ${JSON.stringify(v)}`);
  return n;
}

export function checkProperty<Ts>(t: TestContext, property: fc.IProperty<Ts>, runs: number): void {
  const fuzzRuns = envInt('FUZZ_RUNS');
  const seed = envInt('FUZZ_SEED') ?? (Date.now() ^ (Math.random() * 0x100000000)) | 0;
  const path = process.env.FUZZ_PATH;
  const numRuns = fuzzRuns ?? runs;
  if (fuzzRuns !== undefined) t.diagnostic(`fuzz: seed ${seed}, ${path ? `replaying path ${path}` : `${numRuns} runs`}`);
  const out = fc.check(property, { numRuns, seed, ...(path ? { path } : {}) });
  if (!out.failed) return;
  const pattern = JSON.stringify(`^${t.name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`);
  const replay = `FUZZ_SEED=${out.seed} FUZZ_PATH=${out.counterexamplePath ?? ''} npm run fuzz -- --test-name-pattern=${pattern}`;
  throw new Error(`${fc.defaultReportMessage(out) ?? 'property failed'}\nreplay: ${replay}`);
}
