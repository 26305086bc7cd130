/*
 * NAME
 *   server/server - the tlsmgr UNIX-socket server and its standalone listener
 * SYNOPSIS
 *   createTlsmgrServer(ctx): net.Server
 *   listenStandalone(server, path, owner): Promise<void>
 * DESCRIPTION
 *   createTlsmgrServer() serves every accepted connection with server/connection.ts; half-open
 *   sockets are allowed so that a client that shuts down its sending side still gets the FAIL
 *   reply Postfix gives it (spec 2.2).
 *   listenStandalone() is for runs not spawned by master(8): it listens on
 *   $queue_directory/private/$service_name itself. A stale socket is removed; a path where a
 *   live server answers is refused; a path that is not a socket is refused. The socket is
 *   created with mode 0600 (umask 0177 around bind, so there is no window with wider access)
 *   and, when running as root, handed to $mail_owner: Postfix's unprivileged smtpd and smtp
 *   processes run as that user, and nobody else may connect.
 * DIAGNOSTICS
 *   listenStandalone() throws FatalError with Postfix-style wording.
 */

import { chownSync, lstatSync, unlinkSync } from 'node:fs';
import { createConnection, createServer, type Server } from 'node:net';
import { FatalError } from '../errors.js';
import { serveConnection, type ConnectionContext } from './connection.js';

export function createTlsmgrServer(ctx: ConnectionContext): Server {
  return createServer({ allowHalfOpen: true }, (sock) => serveConnection(sock, ctx));
}

/** Resolve true if something accepts connections on the UNIX socket at path. */
function socketIsLive(path: string, timeoutMs = 2000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection(path);
    const done = (live: boolean): void => {
      clearTimeout(timer);
      s.destroy();
      resolve(live);
    };
    const timer = setTimeout(() => done(true), timeoutMs); // accepted but silent: still someone's
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

export interface SocketOwner {
  readonly uid: number;
  readonly gid: number;
}

export async function listenStandalone(server: Server, path: string, owner: SocketOwner | null): Promise<void> {
  let st;
  try {
    st = lstatSync(path);
  } catch {
    st = null;
  }
  if (st !== null) {
    if (!st.isSocket()) throw new FatalError(`${path} exists and is not a socket -- refusing to replace it`);
    if (await socketIsLive(path)) throw new FatalError(`another server is already listening on ${path}`);
    unlinkSync(path);
  }
  const oldMask = process.umask(0o177);
  try {
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      server.once('error', onError);
      server.listen(path, () => {
        server.off('error', onError);
        resolve();
      });
    });
  } catch (err) {
    throw new FatalError(`bind ${path}: ${(err as Error).message}`, { cause: err });
  } finally {
    process.umask(oldMask);
  }
  if (owner !== null) chownSync(path, owner.uid, owner.gid);
}
