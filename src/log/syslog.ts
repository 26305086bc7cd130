/*
 * NAME
 *   log/syslog - log sinks for syslog(3) (/dev/log) and Postfix's postlogd (maillog_file)
 * SYNOPSIS
 *   openSyslogSink({ path, facility, ident }): LogSink
 *   openPostlogSink({ path, progname, hostname }): LogSink
 * DESCRIPTION
 *   Both connect a UNIX datagram socket once, at startup, before any chroot, and keep it, so
 *   logging survives the chroot as it does in Postfix. Node has no UNIX datagram sockets of
 *   its own; unix-dgram provides them.
 *   - syslog: "<PRI>Mmm dd hh:mm:ss ident[pid]: text", PRI = facility * 8 + severity
 *     (info 6, warning 4, error 3, fatal 2, panic 1), like glibc's syslog(3);
 *   - postlog: "Mmm dd hh:mm:ss host progname[pid]: text", util/msg_logger.c's record for
 *     postlogd(8), which writes it to maillog_file as it is: strftime "%b %d %H:%M:%S" (the
 *     day zero-padded, unlike syslog's "%e"), and the host is the first label of the given
 *     name ($myhostname, as maillog_client_init() passes it).
 *   A record longer than 2000 characters is cut (MSG_LOGGER_RECLEN).
 * DIAGNOSTICS
 *   The open functions throw an Error when the socket cannot be connected; send errors later
 *   are dropped silently (syslog(3) drops them too), except that the first one is written to
 *   stderr once.
 * SEE ALSO
 *   util/msg_syslog.c, util/msg_logger.c
 */

import { createRequire } from 'node:module';
import type { LogSink, Severity } from './msg.js';

interface DgramSocket {
  readonly fd: number;
  on(event: 'error', fn: (err: Error) => void): void;
  connect(path: string): void;
  send(buf: Buffer, cb?: (err?: Error) => void): void;
  close(): void;
}
interface UnixDgram {
  createSocket(type: 'unix_dgram'): DgramSocket;
}

const require = createRequire(import.meta.url);
const unixDgram = require('unix-dgram') as UnixDgram;

const FACILITIES: Readonly<Record<string, number>> = {
  kern: 0, user: 1, mail: 2, daemon: 3, auth: 4, syslog: 5, lpr: 6, news: 7, uucp: 8, cron: 9,
  authpriv: 10, ftp: 11, local0: 16, local1: 17, local2: 18, local3: 19, local4: 20, local5: 21,
  local6: 22, local7: 23,
};
const SEVERITY: Readonly<Record<Severity, number>> = { info: 6, warning: 4, error: 3, fatal: 2, panic: 1 };
const RECLEN = 2000;
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

export function syslogStamp(d: Date): string {
  const p = (n: number): string => String(n).padStart(2, '0');
  return `${MONTHS[d.getMonth()]} ${String(d.getDate()).padStart(2, ' ')} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** msg_logger.c's time stamp: strftime("%b %d %H:%M:%S"), the day zero-padded. */
export function postlogStamp(d: Date): string {
  const p = (n: number): string => String(n).padStart(2, '0');
  return `${MONTHS[d.getMonth()]} ${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** Facility name (syslog_facility) to its number, or undefined. */
export function facilityCode(name: string): number | undefined {
  return FACILITIES[name.toLowerCase()];
}

function connect(path: string): DgramSocket {
  const sock = unixDgram.createSocket('unix_dgram');
  let failed: Error | null = null;
  sock.on('error', (err) => {
    if (failed === null) {
      failed = err;
    }
  });
  sock.connect(path); // synchronous; errors arrive as 'error' events at once
  if (failed !== null) {
    sock.close();
    throw new Error(`cannot connect to ${path}: ${(failed as Error).message}`);
  }
  return sock;
}

function sender(sock: DgramSocket): (record: string) => void {
  let reported = false;
  return (record) => {
    sock.send(Buffer.from(record, 'utf8'), (err) => {
      if (err && !reported) {
        reported = true;
        process.stderr.write(`log: cannot send to log socket: ${err.message}\n`);
      }
    });
  };
}

/**
 * A sink plus a raw fatal-record target: the descriptor and a record prefix with %STAMP% for
 * the time, so that the watchdog process can write "fatal: watchdog timeout" itself.
 */
export interface RawTarget {
  readonly fd: number;
  readonly template: string;
  /** %STAMP% with a zero-padded day (postlog) instead of syslog's space-padded one. */
  readonly zeroPadDay?: boolean;
}
export type TargetSink = LogSink & {
  readonly target: () => RawTarget;
  /** Close the socket (the daemon never does; tests must, or the socket keeps Node running). */
  readonly close: () => void;
};

function closer(sock: DgramSocket): () => void {
  return () => {
    try {
      sock.close();
    } catch {
      /* already closed */
    }
  };
}

export function openSyslogSink(opts: { path: string; facility: string; ident: () => string }): TargetSink {
  const fac = facilityCode(opts.facility) ?? 2;
  const sock = connect(opts.path);
  const send = sender(sock);
  return {
    target: () => ({ fd: sock.fd, template: `<${fac * 8 + SEVERITY.fatal}>%STAMP% ${opts.ident()}[${process.pid}]: ` }),
    close: closer(sock),
    write(severity, line) {
      const pri = fac * 8 + SEVERITY[severity];
      send(`<${pri}>${syslogStamp(new Date())} ${opts.ident()}[${process.pid}]: ${line.slice(0, RECLEN)}`);
    },
  };
}

export function openPostlogSink(opts: { path: string; progname: () => string; hostname: string }): TargetSink {
  const host = opts.hostname.split('.')[0];
  const sock = connect(opts.path);
  const send = sender(sock);
  return {
    target: () => ({ fd: sock.fd, template: `%STAMP% ${host} ${opts.progname()}[${process.pid}]: `, zeroPadDay: true }),
    close: closer(sock),
    write(_severity, line) {
      send(`${postlogStamp(new Date())} ${host} ${opts.progname()}[${process.pid}]: ${line.slice(0, RECLEN)}`);
    },
  };
}

/** Write each record to several sinks (e.g. syslog and stderr with -V). */
export function teeSink(...sinks: LogSink[]): LogSink {
  return {
    write(severity, line) {
      for (const s of sinks) s.write(severity, line);
    },
  };
}
