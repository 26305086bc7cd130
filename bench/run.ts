/*
 * NAME
 *   bench/run - `npm run bench`: ours (default store, memory:) and Postfix's tlsmgr side by side
 * SYNOPSIS
 *   node dist/bench/run.js [--connections N] [--seconds S] [--rounds R] [--warmup S] [--json]
 *                          [--no-postfix] [--scaling] [--scaling-seconds S] [--entries 10000,100000]
 *                          [--profile DIR] [--mix seed=10,update=30,lookup_hit=35,...]
 * DESCRIPTION
 *   Default: the side-by-side benchmark of bench/compare.ts: the same verified load (N = 32
 *   connections, the default mix, S = 5 s after a 1 s warm-up, a fresh daemon each run)
 *   against "ours" (btree: -> the embedded database), "ours-memory" (memory:) and, when it
 *   is installed and we are root, Postfix's real tlsmgr, alternated A B C for R = 3 rounds;
 *   prints the medians with ratios ours / Postfix and the machine. Without Postfix it runs
 *   ours only and says so.
 *   --scaling adds a table over 1, 8, 32, 128 and 512 connections (--scaling-seconds, 2 s,
 *   one run each) and a table of entries held (--entries, default 10000,100000: RSS, cache
 *   file size, lookup p50/p99).
 *   --json prints one JSON document instead of the tables.
 *   --profile DIR runs our daemons under `node --cpu-prof --cpu-prof-dir=DIR`.
 *   --mix sets the side-by-side mix (request types seed, update, lookup_hit, lookup_miss,
 *   delete with weights; the ones not named are 0), e.g. a lookup-heavy load.
 */

import { parseArgs } from 'node:util';
import { benchTargets, parseMix, formatEntries, formatScaling, formatSideBySide, runEntries, runScaling, runSideBySide, type EntriesRow, type ScalingRow } from './compare.js';
import type { Op } from './loadgen.js';

const { values } = parseArgs({
  options: {
    connections: { type: 'string', default: '32' },
    seconds: { type: 'string', default: '5' },
    rounds: { type: 'string', default: '3' },
    warmup: { type: 'string', default: '1' },
    json: { type: 'boolean', default: false },
    'no-postfix': { type: 'boolean', default: false },
    scaling: { type: 'boolean', default: false },
    'scaling-seconds': { type: 'string', default: '2' },
    entries: { type: 'string', default: '10000,100000' },
    profile: { type: 'string' },
    mix: { type: 'string' },
  },
});
let mix: Record<Op, number> | undefined;
try {
  mix = values.mix === undefined ? undefined : parseMix(values.mix);
} catch (err) {
  console.error((err as Error).message);
  process.exit(2);
}

const log = (m: string): void => {
  if (values.json) process.stderr.write(`${m}\n`);
  else console.log(m);
};
const nodeArgs = values.profile ? ['--cpu-prof', `--cpu-prof-dir=${values.profile}`] : undefined;
const { targets, skipped } = benchTargets({ postfix: !values['no-postfix'], nodeArgs });
if (skipped) log(`NOTE: ${skipped}; running ours only`);

log('side by side:');
const side = await runSideBySide({
  targets,
  skipped,
  connections: Number(values.connections),
  durationMs: Number(values.seconds) * 1000,
  warmupMs: Number(values.warmup) * 1000,
  rounds: Number(values.rounds),
  mix,
  log,
});
let scaling: ScalingRow[] | undefined;
let entries: EntriesRow[] | undefined;
if (values.scaling) {
  log('scaling over connections:');
  scaling = await runScaling({ targets, connections: [1, 8, 32, 128, 512], durationMs: Number(values['scaling-seconds']) * 1000, log });
  log('entries held:');
  entries = await runEntries({ targets, entries: values.entries.split(',').map(Number), log });
}

if (values.json) {
  console.log(JSON.stringify({ side_by_side: side, scaling, entries }, null, 2));
} else {
  console.log('');
  console.log(formatSideBySide(side));
  if (scaling) console.log(`\nscaling (${values['scaling-seconds']} s per run, one run each, ${side.machine}):\n${formatScaling(scaling)}`);
  if (entries) console.log(`\nentries held (200-byte sessions, 20000 verified lookups over 8 connections):\n${formatEntries(entries)}`);
}
const errors = side.targets.reduce((a, t) => a + t.median.errors, 0);
if (errors > 0) process.exitCode = 1;
