/*
 * NAME
 *   master/watchdog - kill the daemon when its event loop is stuck for $daemon_timeout
 * SYNOPSIS
 *   const w = startWatchdog(timeoutSeconds, targets, owner?); w.stop()
 * DESCRIPTION
 *   util/watchdog.c arms alarm() at every event-loop iteration; the kernel's timer fires even
 *   while the process is stuck. JavaScript has no alarm(), and a stuck callback cannot be
 *   interrupted from the main thread, so the timer lives in a small watchdog process: bash,
 *   reading heartbeat bytes from a pipe with `read -t $daemon_timeout`. The main thread
 *   writes one byte from a timer every min(timeout/3, 10 s); when a read times out, the
 *   watchdog writes "fatal: watchdog timeout" to the log targets (raw descriptors handed to
 *   it: the syslog or postlog datagram socket, stderr), waits about a second (as msg_fatal
 *   does) and kills the daemon with SIGKILL: exiting normally needs the stuck main thread.
 *   An idle daemon is never killed: its timer keeps writing.
 *   Why a process and not a worker thread: a Node worker thread carries a second V8 isolate
 *   and Node bootstrap, 8-9 MB of the daemon's RSS (measured at 100k cached sessions: 81.4
 *   MB with the thread, 73.0 MB without); bash waiting in read() is about 1.7 MB, and almost
 *   all of that is bash's shared text.
 *   The watchdog keeps only its pipe and the log descriptors: everything else it inherited
 *   (master's status and listening descriptors are not close-on-exec) it closes first. It runs
 *   as the user the daemon is about to become (`owner`), so it holds no privilege the daemon
 *   gives up. When the daemon exits, the pipe reaches end of file and the watchdog exits.
 * DIAGNOSTICS
 *   A watchdog that cannot start or dies is a warning, and the daemon runs on without one
 *   (as it did with a failed thread): it must never take the daemon down.
 * SEE ALSO
 *   util/watchdog.c
 */

import { spawn, type StdioOptions } from 'node:child_process';
import type { Socket } from 'node:net';
import { msgWarn } from '../log/msg.js';

/*
 * $1 timeout (seconds), $2 the daemon's pid; WD_N targets, target i: descriptor WD_FD_i,
 * record WD_A_i <stamp> WD_B_i "fatal: watchdog timeout" [newline if WD_NL_i], stamp day
 * zero-padded if WD_Z_i (postlog's "%b %d") else space-padded (syslog's "%b %e").
 */
const SCRIPT = `
keep=" 0 1 2 "
for ((i = 0; i < WD_N; i++)); do v=WD_FD_$i; keep+="\${!v} "; done
for f in /proc/self/fd/*; do
  n=\${f##*/}
  case $keep in *" $n "*) ;; *) { exec {n}>&-; } 2>/dev/null ;; esac
done
while :; do IFS= read -r -t "$1" -n 1 _; r=$?; [ $r = 0 ] || break; done
[ $r -gt 128 ] || exit 0
for ((i = 0; i < WD_N; i++)); do
  fd=WD_FD_$i a=WD_A_$i b=WD_B_$i z=WD_Z_$i nl=WD_NL_$i
  if [ "\${!z}" = 1 ]; then printf -v s '%(%b %d %H:%M:%S)T' -1; else printf -v s '%(%b %e %H:%M:%S)T' -1; fi
  m="\${!a}$s\${!b}fatal: watchdog timeout"
  [ "\${!nl}" = 1 ] && m+=$'\\n'
  printf '%s' "$m" >&"\${!fd}" 2>/dev/null
done
sleep 1
kill -KILL "$2"
`;

// --norc: with a socket on standard input (libuv's pipes are socketpairs), bash takes itself
// for an rshd child and would read ~/.bashrc.
const BASH = '/bin/bash';

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

export function startWatchdog(
  timeoutSeconds: number,
  targets: readonly WatchdogTarget[],
  owner: { uid: number; gid: number } | null = null,
): Watchdog {
  const timeout = Math.max(1, Math.floor(timeoutSeconds));
  // The watchdog's descriptors: 0 the heartbeat pipe, 2 our stderr, then each other target.
  const stdio: StdioOptions = ['pipe', 'ignore', 'inherit'];
  const env: NodeJS.ProcessEnv = { LC_ALL: 'C', PATH: '/usr/bin:/bin', WD_N: String(targets.length) };
  if (process.env.TZ !== undefined) env.TZ = process.env.TZ;
  targets.forEach((t, i) => {
    let fd = 2;
    if (t.fd !== 2) {
      fd = stdio.length;
      stdio.push(t.fd);
    }
    const at = t.template.indexOf('%STAMP%');
    env[`WD_FD_${i}`] = String(fd);
    env[`WD_A_${i}`] = at < 0 ? t.template : t.template.slice(0, at);
    env[`WD_B_${i}`] = at < 0 ? '' : t.template.slice(at + '%STAMP%'.length);
    env[`WD_Z_${i}`] = t.zeroPadDay === true ? '1' : '0';
    env[`WD_NL_${i}`] = fd === 2 ? '1' : '0';
  });
  const root = process.getuid?.() === 0;
  // The script comes in the environment, so that ps shows a short command line:
  // bash --norc --noprofile -c eval "$WD_SCRIPT" tlsmgr-watchdog <timeout> <pid>.
  env.WD_SCRIPT = SCRIPT;
  const child = spawn(BASH, ['--norc', '--noprofile', '-c', 'eval "$WD_SCRIPT"', 'tlsmgr-watchdog', String(timeout), String(process.pid)], {
    stdio,
    env,
    ...(root && owner !== null ? { uid: owner.uid, gid: owner.gid } : {}),
  });
  let stopped = false;
  let warned = false;
  const lost = (why: string): void => {
    clearInterval(beat);
    if (stopped || warned) return;
    warned = true;
    msgWarn(`watchdog process ${why} -- running without a watchdog`);
  };
  child.on('error', (err) => lost(`failed: ${err.message}`));
  child.on('exit', (code, signal) => lost(`exited (${signal ?? `status ${String(code)}`})`));
  const pipe = child.stdin as Socket | null;
  pipe?.on('error', () => undefined); // EPIPE after the watchdog died: its 'exit' reports it
  pipe?.unref();
  child.unref();
  const beat = setInterval(() => pipe?.write('.'), Math.min((timeout * 1000) / 3, 10000));
  beat.unref();
  return {
    stop() {
      stopped = true;
      clearInterval(beat);
      pipe?.destroy(); // end of file: the watchdog exits
    },
  };
}
