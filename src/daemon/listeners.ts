/*
 * NAME
 *   daemon/listeners - the three ways a Daemon gets its clients: master(8), standalone, -S
 * SYNOPSIS
 *   interface Listeners { mode, streamName, oneShot, open(d), serve(d) }
 *   new MasterListeners({ serviceName, generation, socketCount })
 *   new StandaloneListeners({ serviceName })
 *   new StdioListeners()
 * DESCRIPTION
 *   The Daemon calls open(d) with root privileges once pre-init is done, and serve(d) once
 *   post-init is done (daemon/daemon.ts).
 *   MasterListeners, spawned by master(8) (spec 5.1-5.4): open() watches the status channel
 *   on descriptor 5 and accepts on descriptors 6 .. 6+socketCount-1, announcing TAKEN before
 *   and AVAIL after each readable event; when master goes away (end of file or data on
 *   descriptor 5: master exited, or `postfix reload`) the daemon exits 0 after its parts'
 *   before-exit (multi_server_abort). SIGTERM (`postfix stop`) keeps its default action and
 *   kills the daemon without saving anything, as Postfix. serve() logs "daemon started"
 *   (verbose).
 *   StandaloneListeners (no GENERATION): open() listens on
 *   $queue_directory/private/$service_name, as $mail_owner (server/server.ts
 *   listenStandalone()); serve() logs "listening on <path>" and installs the signals: SIGTERM
 *   or SIGINT logs "<signal> received -- exiting", closes the listener, removes the socket
 *   and exits 0 after before-exit; SIGHUP reloads main.cf (Daemon.reload()).
 *   StdioListeners (-S, spec 5.5): one request read from standard input to its end, served
 *   without a greeting; before-exit runs, then the reply goes to standard output. Input past
 *   tlsmgr_input_buffer_limit bytes is not read on: a warning, before-exit, and no reply. A one-shot
 *   run stays in the caller's directory and identity, with no watchdog.
 * DIAGNOSTICS
 *   open() fails with the errors of listenFd() and listenStandalone() (server/server.ts).
 * SEE ALSO
 *   master/multi_server.c, master/master_proto.h, master/master_listen.c
 */

import { unlinkSync } from 'node:fs';
import type { Server } from 'node:net';
import { join } from 'node:path';
import { msgInfo, msgVerbose, msgWarn } from '../log/msg.js';
import { MasterStatus } from '../master/status.js';
import { serveBytes, type ConnectionContext } from '../server/connection.js';
import { createTlsmgrServer, listenFd, listenStandalone } from '../server/server.js';
import type { DaemonControl, DaemonMode } from './part.js';

/** The first listen descriptor and the status descriptor of master(8) (master_proto.h). */
export const MASTER_LISTEN_FD = 6;
export const MASTER_STATUS_FD = 5;

export interface Listeners {
  readonly mode: DaemonMode;
  /** The stream name in warnings (protocol/requests ScanContext.path). */
  readonly streamName: string;
  /** A one-shot run: no chdir, no watchdog, no chroot or privilege drop. */
  readonly oneShot: boolean;
  /** With root privileges, after pre-init: open what clients connect to. */
  open(d: DaemonControl): Promise<void>;
  /** After post-init: announce, and arrange for the end. */
  serve(d: DaemonControl): Promise<void>;
}

export class MasterListeners implements Listeners {
  readonly mode = 'master';
  readonly oneShot = false;
  readonly streamName: string;

  constructor(private readonly o: { readonly serviceName: string; readonly generation: number; readonly socketCount: number }) {
    this.streamName = `${o.serviceName} socket`;
  }

  async open(d: DaemonControl): Promise<void> {
    // master exited or `postfix reload`: save state, exit 0 (multi_server_abort).
    const status = new MasterStatus(MASTER_STATUS_FD, this.o.generation, () => d.exit(0));
    const ctx: ConnectionContext = { ...d.ctx, onRequest: (busy) => (busy ? status.taken() : status.avail()) };
    for (let i = 0; i < this.o.socketCount; i++) await listenFd(createTlsmgrServer(ctx), MASTER_LISTEN_FD + i);
  }

  serve(): Promise<void> {
    msgVerbose(1, `daemon started -- ${this.o.socketCount} listener(s), generation ${this.o.generation}`);
    return Promise.resolve();
  }
}

export class StandaloneListeners implements Listeners {
  readonly mode = 'standalone';
  readonly oneShot = false;
  readonly streamName: string;
  private server: Server | undefined;
  private path = '';

  constructor(private readonly o: { readonly serviceName: string }) {
    this.streamName = `${o.serviceName} socket`;
  }

  async open(d: DaemonControl): Promise<void> {
    this.path = join(d.config.queueDirectory, 'private', this.o.serviceName);
    this.server = createTlsmgrServer(d.ctx);
    // Every step on the path runs with $mail_owner's ids (master/eugid: only a root process switches).
    await listenStandalone(this.server, this.path, d.owner);
  }

  serve(d: DaemonControl): Promise<void> {
    msgInfo(`listening on ${this.path}`);
    const stop = (signal: string): void => {
      msgInfo(`${signal} received -- exiting`);
      this.server?.close();
      try {
        // Inside the chroot the queue directory is the working directory.
        unlinkSync(d.chrooted ? join('private', this.o.serviceName) : this.path);
      } catch {
        /* already gone */
      }
      d.exit(0);
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
    // SIGHUP: re-read main.cf and apply what can change without dropping the caches.
    process.on('SIGHUP', () => d.reload());
    return Promise.resolve();
  }
}

export class StdioListeners implements Listeners {
  readonly mode = 'stdio';
  readonly oneShot = true;
  readonly streamName = 'unknown_stream';

  open(): Promise<void> {
    return Promise.resolve();
  }

  async serve(d: DaemonControl): Promise<void> {
    const input = await readStdin(d.config.inputBufferLimit);
    if (input === null) {
      msgWarn(`standard input exceeds tlsmgr_input_buffer_limit ${d.config.inputBufferLimit} -- no reply`);
      d.beforeExit();
      return;
    }
    const reply = await serveBytes(input, d.ctx);
    d.beforeExit();
    process.stdout.write(reply);
  }
}

/** All of standard input, or null (and stdin no longer read) once it holds more than `limit` bytes. */
function readStdin(limit: number): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let held = 0;
    const onData = (c: Buffer): void => {
      held += c.length;
      if (held <= limit) {
        parts.push(c);
        return;
      }
      process.stdin.off('data', onData);
      process.stdin.destroy();
      resolve(null);
    };
    process.stdin.on('data', onData);
    process.stdin.on('end', () => resolve(Buffer.concat(parts)));
    process.stdin.on('error', reject);
  });
}
