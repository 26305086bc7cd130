/*
 * NAME
 *   bench/run - `npm run bench`: ours (default store, memory:), Postfix's tlsmgr and the floor side by side
 * SYNOPSIS
 *   node dist/bench/run.js [--connections N] [--seconds S] [--rounds R] [--warmup S] [--json]
 *                          [--no-postfix] [--no-floor] [--fresh] [--mix seed=10,update=30,...]
 *                          [--preload N] [--scaling] [--scaling-seconds S] [--entries 10000,100000]
 *                          [--profile DIR]
 * DESCRIPTION
 *   Default: the side-by-side benchmark of bench/compare.ts on two mixes, one after the other:
 *   the default mix, then the lookup-heavy one (update 2%, lookup hit 98%, after N = 20000
 *   sessions preloaded into every target's cache). Targets: "ours" (btree: -> the embedded
 *   database), "ours-memory" (memory:), Postfix's real tlsmgr when it is installed and we are
 *   root, and the floor (bench/floor.ts, a bare Node net server answering the same requests
 *   with replies of the same bytes over the same kind of socket). Each mix: N = 32
 *   connections per target, R = 3 rounds, every daemon up at once and S = 5 s slices
 *   alternated (A B C D, D C B A, A B C D) after a 1 s warm-up; --fresh instead starts a new
 *   daemon for every run. Prints, per mix, the medians of the rounds (requests/s, daemon CPU
 *   us per request, p50/p99/p99.9, RSS), ratios x / Postfix and x / floor, then the targets
 *   of issue #16 with PASS / MISS. Without Postfix it says so and those targets read n/a.
 *   --mix runs that one mix instead of the two (weights of seed, update, lookup_hit,
 *   lookup_miss, delete; the ones not named are 0), after --preload sessions (default 20000,
 *   as for the lookup-heavy mix; 0 for none).
 *   --scaling adds a table over 1, 8, 32, 128 and 512 connections (--scaling-seconds, 2 s,
 *   one run each, fresh daemons) and a table of entries held (--entries, default
 *   10000,100000: RSS, cache file size, lookup p50/p99).
 *   --json prints one JSON document ({ mixes, targets, scaling, entries }) instead of the tables.
 *   --profile DIR runs our daemons under `node --cpu-prof --cpu-prof-dir=DIR`.
 * LIMITS
 *   About 2.5 minutes with the defaults and Postfix (2 mixes x 3 rounds x 4 targets x 5 s,
 *   plus start-up, preloads and warm-ups). The load generator shares the machine with the
 *   daemons: on a 2-core machine it takes one core.
 * DIAGNOSTICS
 *   Exit status 1 when any reply was wrong, 2 on a bad option; a MISS does not change it.
 */

import { parseArgs } from 'node:util';
import {
  LOOKUP_HEAVY_MIX,
  LOOKUP_HEAVY_PRELOAD,
  benchTargets,
  formatEntries,
  formatHeader,
  formatScaling,
  formatSideBySide,
  formatTargets,
  issueTargets,
  parseMix,
  runEntries,
  runScaling,
  runSideBySide,
  type EntriesRow,
  type ScalingRow,
  type SideBySide,
} from './compare.js';
import type { Op } from './loadgen.js';

const { values } = parseArgs({
  options: {
    connections: { type: 'string', default: '32' },
    seconds: { type: 'string', default: '5' },
    rounds: { type: 'string', default: '3' },
    warmup: { type: 'string', default: '1' },
    json: { type: 'boolean', default: false },
    'no-postfix': { type: 'boolean', default: false },
    'no-floor': { type: 'boolean', default: false },
    fresh: { type: 'boolean', default: false },
    scaling: { type: 'boolean', default: false },
    'scaling-seconds': { type: 'string', default: '2' },
    entries: { type: 'string', default: '10000,100000' },
    profile: { type: 'string' },
    mix: { type: 'string' },
    preload: { type: 'string', default: String(LOOKUP_HEAVY_PRELOAD) },
  },
});
let mixes: { label: string; mix?: Record<Op, number>; preload: number }[];
const preload = Number(values.preload);
try {
  if (!Number.isInteger(preload) || preload < 0) throw new Error(`--preload: not a number of sessions: "${values.preload}"`);
  mixes =
    values.mix === undefined
      ? [
          { label: 'default', preload: 0 },
          { label: 'lookup-heavy', mix: { ...LOOKUP_HEAVY_MIX }, preload },
        ]
      : [{ label: 'custom', mix: parseMix(values.mix), preload }];
} catch (err) {
  console.error((err as Error).message);
  process.exit(2);
}

const log = (m: string): void => {
  if (values.json) process.stderr.write(`${m}\n`);
  else console.log(m);
};
const nodeArgs = values.profile ? ['--cpu-prof', `--cpu-prof-dir=${values.profile}`] : undefined;
const { targets, skipped } = benchTargets({ postfix: !values['no-postfix'], nodeArgs, floor: !values['no-floor'] });
if (skipped) log(`NOTE: ${skipped}; running ours and the floor only`);

const sides: SideBySide[] = [];
for (const m of mixes) {
  log(`mix ${m.label}:`);
  sides.push(
    await runSideBySide({
      targets,
      skipped,
      connections: Number(values.connections),
      durationMs: Number(values.seconds) * 1000,
      warmupMs: Number(values.warmup) * 1000,
      rounds: Number(values.rounds),
      mix: m.mix,
      label: m.label,
      preload: m.preload,
      fresh: values.fresh,
      log,
    }),
  );
}
const checks = issueTargets(sides);
let scaling: ScalingRow[] | undefined;
let entries: EntriesRow[] | undefined;
if (values.scaling) {
  log('scaling over connections:');
  scaling = await runScaling({ targets, connections: [1, 8, 32, 128, 512], durationMs: Number(values['scaling-seconds']) * 1000, log });
  log('entries held:');
  entries = await runEntries({ targets, entries: values.entries.split(',').map(Number), log });
}

if (values.json) {
  console.log(JSON.stringify({ mixes: sides, targets: checks, scaling, entries }, null, 2));
} else {
  console.log('');
  console.log(formatHeader());
  for (const s of sides) console.log(`\n${formatSideBySide(s)}`);
  console.log(`\n${formatTargets(checks)}`);
  if (scaling) console.log(`\nscaling (${values['scaling-seconds']} s per run, one run each):\n${formatScaling(scaling)}`);
  if (entries) console.log(`\nentries held (200-byte sessions, 20000 verified lookups over 8 connections):\n${formatEntries(entries)}`);
}
const errors = sides.reduce((a, s) => a + s.targets.reduce((b, t) => b + t.median.errors, 0), 0);
if (errors > 0) process.exitCode = 1;
