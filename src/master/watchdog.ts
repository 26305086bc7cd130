/*
 * NAME
 *   master/watchdog - kill the daemon when its event loop is stuck for $daemon_timeout
 * SYNOPSIS
 *   const w = startWatchdog(timeoutSeconds, targets); w.stop()
 * DESCRIPTION
 *   util/watchdog.c arms alarm(timeout / 3) at every event-loop iteration and gives up on the
 *   third alarm in a row. JavaScript cannot interrupt a stuck callback, so the alarm lives in
 *   a worker thread: the main thread stamps a shared heartbeat from a timer every timeout/3
 *   (capped at 10 s), and the worker, waking every timeout/3, counts the wake-ups without a
 *   new heartbeat. On the third it writes "fatal: watchdog timeout" to the log targets (raw
 *   descriptors: the syslog or postlog datagram socket, stderr), waits about a
 *   second (as msg_fatal does) and kills the process with SIGKILL: exiting normally needs
 *   the stuck main thread. An idle daemon is never killed: its timer keeps stamping.
 * SEE ALSO
 *   util/watchdog.c
 */

import { Worker } from 'node:worker_threads';
import { msgWarn } from '../log/msg.js';

const WORKER_SOURCE = `
const { workerData } = require('node:worker_threads');
const { writeSync } = require('node:fs');
const M = ['Jan','Feb','Mar','Apr','May','Jun','Jul','Aug','Sep','Oct','Nov','Dec'];
function stamp(d, zeroPadDay) {
  const p = (n) => String(n).padStart(2, '0');
  return M[d.getMonth()] + ' ' + String(d.getDate()).padStart(2, zeroPadDay ? '0' : ' ') + ' ' + p(d.getHours()) + ':' + p(d.getMinutes()) + ':' + p(d.getSeconds());
}
const beat = new Int32Array(workerData.shared);
let last = Atomics.load(beat, 0), misses = 0;
const period = workerData.periodMs;
setInterval(() => {
  const now = Atomics.load(beat, 0);
  if (now !== last) { last = now; misses = 0; return; }
  if (++misses < 3) return;
  for (const t of workerData.targets) {
    try { writeSync(t.fd, t.template.replace('%STAMP%', stamp(new Date(), t.zeroPadDay === true)) + 'fatal: watchdog timeout' + (t.fd === 2 ? '\\n' : '')); } catch {}
  }
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1000);
  process.kill(workerData.pid, 'SIGKILL');
}, period);
`;

export interface Watchdog {
  stop(): void;
}

/**
 * Where the fatal record goes: a descriptor and a prefix with %STAMP% (log/syslog RawTarget);
 * zeroPadDay for postlog's "%b %d" time stamp.
 */
export interface WatchdogTarget {
  readonly fd: number;
  readonly template: string;
  readonly zeroPadDay?: boolean;
}

export function startWatchdog(timeoutSeconds: number, targets: readonly WatchdogTarget[]): Watchdog {
  const periodMs = Math.max(10, Math.floor((timeoutSeconds * 1000) / 3));
  const shared = new SharedArrayBuffer(4);
  const beat = new Int32Array(shared);
  // execArgv []: the source is a CommonJS script whatever the parent was started with
  // (an inherited --input-type=module would make `require` undefined in it).
  // resourceLimits: the thread allocates next to nothing; small heap limits keep its isolate
  // about 1 MB smaller than V8's defaults would (issue 6: most of its ~9 MB is Node's own
  // bootstrap, which no limit removes).
  const worker = new Worker(WORKER_SOURCE, {
    eval: true,
    execArgv: [],
    workerData: { shared, periodMs, pid: process.pid, targets },
    resourceLimits: { maxYoungGenerationSizeMb: 1, maxOldGenerationSizeMb: 16, stackSizeMb: 1 },
  });
  worker.unref();
  // A watchdog that fails must not take the daemon down with it (an unhandled 'error' would).
  worker.on('error', (err) => msgWarn(`watchdog thread failed: ${err.message} -- running without a watchdog`));
  const stamp = setInterval(() => Atomics.add(beat, 0, 1), Math.min(periodMs / 2, 10000));
  stamp.unref();
  return {
    stop() {
      clearInterval(stamp);
      void worker.terminate();
    },
  };
}
