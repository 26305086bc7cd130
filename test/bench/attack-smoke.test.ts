/*
 * bench smoke: `bench:attack` (bench/attack.ts) end to end with tiny parameters: one run of
 * 1 s, the attackers in their own processes (a 10,000-digit size, two tricklers of 20 kB
 * values, 50 half-open connections of 100 kB, 5 stalled requests) and the daemon's
 * tlsmgr_input_buffer_limit set to 2,000,000 bytes. Checks that the table has every row with
 * numbers, that the victim saw no error without attackers, and that the hold phase counted
 * the connections the daemon closed: 50 x 100,000 bytes against a 2,000,000-byte bound
 * leaves at most 20 held, so at least 30 closed. Not a timed test: no speed is asserted.
 */

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import test from 'node:test';
import { fileURLToPath } from 'node:url';

const BENCH = join(fileURLToPath(new URL('../../', import.meta.url)), 'bench', 'attack.js');

/** The numbers after a row's label (thousands separators dropped); fails when the row is missing. */
function row(out: string, label: string): number[] {
  const line = out.split('\n').find((l) => l.startsWith(label));
  assert.ok(line !== undefined, `row "${label}" in:\n${out}`);
  const cells = line.slice(label.length).trim().split(/\s+/);
  return cells.map((c) => {
    const v = c === '-' ? NaN : Number(c.replace(/,/g, ''));
    assert.ok(c === '-' || Number.isFinite(v), `row "${label}": "${c}" is a number`);
    return v;
  });
}

test('bench:attack runs baseline, attack and hold and prints every row with numbers', { timeout: 60000 }, async () => {
  const args = [
    BENCH,
    ...['--runs', '1', '--seconds', '1', '--warmup', '0.2', '--settle', '0.2', '--hold-max', '5'],
    ...['--size-digits', '10000', '--tricklers', '2', '--value-bytes', '20000'],
    ...['--half-open', '50', '--half-open-bytes', '100000', '--stalled', '5'],
    ...['--set', 'tlsmgr_input_buffer_limit=2000000'],
  ];
  const out = await new Promise<string>((resolve, reject) =>
    execFile(process.execPath, args, { timeout: 50000, maxBuffer: 1 << 20 }, (err, stdout, stderr) =>
      err ? reject(new Error(`${err.message}\n${stdout}\n${stderr}`)) : resolve(stdout),
    ),
  );
  assert.match(out, /^machine: .+ cores, .+ node v\d+/m);
  assert.match(out, /^daemon: .*bin\/tlsmgr .*tlsmgr_input_buffer_limit = 2000000/m);
  assert.match(out, /^method: victim = 1 connection/m);
  for (const label of ['seed p50 (us)', 'seed p99 (us)', 'seed max (us)', 'victim requests/s', 'daemon tree peak RSS (MB)']) {
    const [b, a] = row(out, label);
    assert.ok(b > 0 && a > 0, `${label}: baseline ${b}, attack ${a}`);
  }
  const [p50] = row(out, 'seed p50 (us)');
  const [max] = row(out, 'seed max (us)');
  assert.ok(max >= p50, 'max is at least the median');
  assert.deepEqual(row(out, 'victim errors').slice(0, 1), [0], 'no victim error without attackers');
  assert.equal(row(out, 'daemon CPU s in the 1 s window').length, 2);
  const [, answered] = row(out, '(a) big-size seeds answered');
  const [, trickled] = row(out, '(b) MB trickled');
  assert.ok(answered >= 0 && trickled > 0, `(a) ${answered} answered, (b) ${trickled} MB`);
  const [, halfOpen] = row(out, '(c) half-open closed by the daemon (of 50)');
  assert.ok(halfOpen >= 0 && halfOpen <= 50);
  row(out, '(d) stalled closed by the daemon (of 5)');
  const [idle] = row(out, 'daemon tree RSS idle (MB)');
  const [peak] = row(out, 'daemon tree RSS peak (MB)');
  assert.ok(idle > 0 && peak >= idle, `RSS idle ${idle}, peak ${peak}`);
  row(out, 'daemon tree RSS held (MB)');
  const [closed] = row(out, 'closed by the daemon (of 50)');
  assert.ok(closed >= 30 && closed <= 50, `closed ${closed} of 50 over a 2,000,000-byte bound`);
});
