/*
 * NAME
 *   log/msg - Postfix-style logging: info, warning, error, fatal, panic
 * SYNOPSIS
 *   msgInfo(text) msgWarn(text) msgError(text) msgFatal(text): never  msgVerbose(level, text)
 *   setLogSink(sink) setLogTag(tag) setVerbose(n)
 * DESCRIPTION
 *   Mirrors util/msg.c: info lines have no prefix; the others start with "warning: ",
 *   "error: ", "fatal: ", "panic: ". The default sink writes one line per record to stderr as
 *   "<Mon dd hh:mm:ss> <tag>[<pid>]: <text>"; the master(8) issue adds syslog and postlogd
 *   sinks. msgFatal() logs, sleeps one second (so that master(8) does not respawn in a tight
 *   loop) and exits with status 1, as vmsg_fatal() does.
 *   Callers pass peer text through log/printable first. Session bytes, keys and seeds are
 *   never passed to these functions.
 * SEE ALSO
 *   util/msg.c, util/msg_vstream.c
 */

import { sleepSync } from '../util/sleep.js';

export type Severity = 'info' | 'warning' | 'error' | 'fatal' | 'panic';

export interface LogSink {
  write(severity: Severity, line: string): void;
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

function stamp(d: Date): string {
  const p = (n: number): string => String(n).padStart(2, '0');
  return `${MONTHS[d.getMonth()]} ${String(d.getDate()).padStart(2, ' ')} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

let tag = 'postfix/tlsmgr';
let verbose = 0;

export const stderrSink: LogSink = {
  write(_severity, line) {
    process.stderr.write(`${stamp(new Date())} ${tag}[${process.pid}]: ${line}\n`);
  },
};

let sink: LogSink = stderrSink;

export function setLogSink(s: LogSink): LogSink {
  const old = sink;
  sink = s;
  return old;
}

export function setLogTag(t: string): void {
  tag = t;
}

export function getLogTag(): string {
  return tag;
}

export function setVerbose(level: number): void {
  verbose = level;
}

export function msgVerboseLevel(): number {
  return verbose;
}

export function msgInfo(text: string): void {
  sink.write('info', text);
}

export function msgVerbose(level: number, text: string): void {
  if (verbose >= level) sink.write('info', text);
}

export function msgWarn(text: string): void {
  sink.write('warning', `warning: ${text}`);
}

export function msgError(text: string): void {
  sink.write('error', `error: ${text}`);
}

/** Log "fatal: text", sleep 1 s, exit 1 (util/msg.c vmsg_fatal). */
export function msgFatal(text: string): never {
  sink.write('fatal', `fatal: ${text}`);
  sleepSync(1000);
  process.exit(1);
}
