/*
 * NAME
 *   daemon-threads - the daemon started from bin/tlsmgr runs one V8 platform worker thread
 * SYNOPSIS
 *   node --test dist/test/integration/daemon-threads.test.js
 * DESCRIPTION
 *   Issue 16 (RSS): every V8 platform worker thread costs the daemon its stack and a glibc
 *   malloc arena, so bin/tlsmgr's #! line asks for one (--v8-pool-size=1) instead of Node's
 *   four. Two daemons start as master(8) would run bin/tlsmgr (bench/daemon.ts passes the
 *   #! line's node options): one as the #! line says, one with --v8-pool-size=4 after those
 *   options (the later option wins). Both do the same start-up work, so their other threads
 *   (libuv's threadpool, Node's own) are the same: the first must have three threads fewer,
 *   counted in /proc/<pid>/task once each answers on its socket.
 * LIMITS
 *   Linux (/proc) only; skipped elsewhere. Each daemon start is bounded by startDaemon() (15 s).
 * DIAGNOSTICS
 *   The assertion message gives both thread counts.
 * SEE ALSO
 *   bin/tlsmgr, bench/daemon.ts
 */

import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { test } from 'node:test';
import { startDaemon, type RunningDaemon } from '../../bench/daemon.js';

const threads = (d: RunningDaemon): number => readdirSync(`/proc/${d.proc.pid}/task`).length;

test('bin/tlsmgr runs the daemon with one V8 platform worker thread, three fewer than Node\'s default four', { skip: !existsSync('/proc/self/task') }, async () => {
  const ours = await startDaemon();
  try {
    const four = await startDaemon({ nodeArgs: ['--v8-pool-size=4'] });
    try {
      const n = threads(ours);
      const m = threads(four);
      assert.equal(n, m - 3, `threads: ${n} as bin/tlsmgr says, ${m} with --v8-pool-size=4`);
    } finally {
      await four.stop();
    }
  } finally {
    await ours.stop();
  }
});
