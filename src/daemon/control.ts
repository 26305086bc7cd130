/*
 * NAME
 *   daemon/control - the control socket: tlsmgr-ctl's way into the running daemon
 * SYNOPSIS
 *   parts: [controlPart()]                 (cli/main.ts)
 *   CONTROL_SOCKET_NAME, CONTROL_LINE_LIMIT, CONTROL_CONNECTION_LIMIT, CONTROL_IDLE_MS
 *   controlSocketPath(queueDirectory): string
 * DESCRIPTION
 *   A Daemon part (daemon/part.ts). In pre-init, with root privileges and before the chroot,
 *   it listens on $queue_directory/private/tlsmgr-control under master(8) and standalone
 *   alike (not for -S), with the service socket's rules (server/server.ts
 *   listenStandalone()): every step on the path runs as $mail_owner, the socket is created
 *   mode 0600 owned by $mail_owner, a stale socket is replaced and a live one refused.
 *   private/ is closed to everyone but $mail_owner, so only root and $mail_owner reach it.
 *   beforeExit closes it and removes the socket.
 *
 *   Protocol (JSON lines, UTF-8): the client writes one JSON object per line, ending in
 *   "\n"; the daemon answers each with one JSON object on one line, in order:
 *   {"ok":true,...} or {"ok":false,"error":"..."}. The commands and their replies are in
 *   daemon/control-answers.ts (ping, status, flush, keys, metrics). A connection may send many
 *   requests; the daemon closes it when the client does, after the last reply (a last
 *   request without its newline is answered too).
 * LIMITS
 *   A request line holds at most CONTROL_LINE_LIMIT (4096) bytes: a longer one is answered
 *   {"ok":false,"error":"request line longer than 4096 bytes"} and the connection is closed.
 *   At most CONTROL_PENDING_LIMIT (16) requests of one connection wait for their replies;
 *   more is answered with an error and the connection closed. At most
 *   CONTROL_CONNECTION_LIMIT (8) control connections at once: one more is closed at once.
 *   A connection idle for CONTROL_IDLE_MS (10 s), with no request under way, is closed. The service socket's clients
 *   are not affected by any of this.
 * DIAGNOSTICS
 *   A request that is not JSON gets {"ok":false,"error":"request is not JSON"}; nothing a
 *   client sends makes the daemon throw. A control socket that cannot be made is not fatal:
 *   "warning: control socket: <listenStandalone()'s reason> -- tlsmgr-ctl cannot reach this
 *   daemon" ("another server is already listening on <path>", "bind <path>: ...", e.g. a
 *   private/ that $mail_owner cannot write), and the daemon serves Postfix without it.
 * SEE ALSO
 *   daemon/control-answers.ts, ctl/control.ts (the client), server/server.ts
 */

import { readFileSync, unlinkSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { msgVerbose, msgWarn } from '../log/msg.js';
import { listenStandalone } from '../server/server.js';
import { systemClock } from '../util/clock.js';
import { answerControl, type ControlReply, type DaemonAbout } from './control-answers.js';
import type { DaemonControl, DaemonPart } from './part.js';

export const CONTROL_SOCKET_NAME = 'tlsmgr-control';
export const CONTROL_LINE_LIMIT = 4096;
export const CONTROL_PENDING_LIMIT = 16;
export const CONTROL_CONNECTION_LIMIT = 8;
export const CONTROL_IDLE_MS = 10_000;

/** $queue_directory/private/tlsmgr-control */
export function controlSocketPath(queueDirectory: string): string {
  return join(queueDirectory, 'private', CONTROL_SOCKET_NAME);
}

/* packageVersion - package.json's version (read before the chroot hides it) */
function packageVersion(): string {
  try {
    // dist/src/daemon/control.js -> the package root.
    const pkg: unknown = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8'));
    const v = typeof pkg === 'object' && pkg !== null ? (pkg as { version?: unknown }).version : undefined;
    return typeof v === 'string' ? v : 'unknown';
  } catch {
    return 'unknown';
  }
}

const line = (reply: ControlReply): string => `${JSON.stringify(reply)}\n`;

/* serveControl - one control connection: lines in, replies out, in order, bounded */
function serveControl(sock: Socket, answer: (request: unknown) => Promise<ControlReply>): void {
  let pending: Buffer = Buffer.alloc(0);
  let chain: Promise<void> = Promise.resolve();
  let waiting = 0;
  let closing = false;
  // Idle: no request under way and nothing received for CONTROL_IDLE_MS (a long flush is not idle).
  sock.setTimeout(CONTROL_IDLE_MS, () => {
    if (waiting === 0) sock.destroy();
  });
  sock.on('error', () => sock.destroy());
  const refuse = (error: string): void => {
    closing = true;
    pending = Buffer.alloc(0);
    chain = chain.then(() => {
      if (!sock.destroyed) sock.end(line({ ok: false, error }));
    });
  };
  const submit = (text: string): void => {
    waiting++;
    chain = chain
      .then(async () => {
        let request: unknown;
        try {
          request = JSON.parse(text);
        } catch {
          return line({ ok: false, error: 'request is not JSON' });
        }
        return line(await answer(request));
      })
      .then(
        (out) => {
          waiting--;
          if (!sock.destroyed) sock.write(out);
        },
        () => {
          waiting--;
          sock.destroy();
        },
      );
  };
  sock.on('data', (chunk: Buffer) => {
    if (closing) return;
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    let nl: number;
    while ((nl = pending.indexOf(10)) >= 0) {
      if (nl > CONTROL_LINE_LIMIT) {
        refuse(`request line longer than ${CONTROL_LINE_LIMIT} bytes`);
        return;
      }
      if (waiting >= CONTROL_PENDING_LIMIT) {
        refuse(`more than ${CONTROL_PENDING_LIMIT} requests waiting for their replies`);
        return;
      }
      const text = pending.subarray(0, nl).toString('utf8');
      pending = pending.subarray(nl + 1);
      submit(text);
    }
    if (pending.length > CONTROL_LINE_LIMIT) refuse(`request line longer than ${CONTROL_LINE_LIMIT} bytes`);
  });
  sock.on('end', () => {
    // A last request without its newline is still a request.
    if (!closing && pending.length > 0) submit(pending.toString('utf8'));
    closing = true;
    chain = chain.then(() => {
      if (!sock.destroyed) sock.end();
    });
  });
}

export interface ControlPart extends DaemonPart {
  /** The socket's path once listening (empty before). */
  readonly path: string;
}

export function controlPart(): ControlPart {
  let server: Server | undefined;
  let path = '';
  let daemon: DaemonControl | undefined;
  return {
    get path() {
      return path;
    },
    async preInit(d: DaemonControl) {
      if (d.mode === 'stdio') return;
      daemon = d;
      const about: DaemonAbout = { version: packageVersion(), started: systemClock.now() };
      path = controlSocketPath(d.config.queueDirectory);
      const s = createServer({ allowHalfOpen: true }, (sock) => serveControl(sock, (request) => answerControl(request, d, about)));
      s.maxConnections = CONTROL_CONNECTION_LIMIT;
      // As the service socket: bound as $mail_owner, mode 0600, stale replaced, live refused.
      // The control socket serves the operator, not mail: a daemon that cannot have one
      // still serves Postfix (under master(8) a fatal error here would be a respawn loop).
      try {
        await listenStandalone(s, path, d.owner);
      } catch (err) {
        msgWarn(`control socket: ${(err as Error).message} -- tlsmgr-ctl cannot reach this daemon`);
        path = '';
        return;
      }
      server = s;
      msgVerbose(1, `control socket ${path}`);
    },
    beforeExit() {
      if (server === undefined || daemon === undefined) return;
      server.close();
      server = undefined;
      try {
        // Inside the chroot the queue directory is the working directory.
        unlinkSync(daemon.chrooted ? join('private', CONTROL_SOCKET_NAME) : path);
      } catch {
        /* already gone */
      }
    },
  };
}
