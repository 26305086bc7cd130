/*
 * NAME
 *   server/server - the tlsmgr UNIX-socket server and its listeners
 * SYNOPSIS
 *   createTlsmgrServer(ctx): net.Server
 *   listenFd(server, fd): Promise<void>
 *   listenStandalone(server, path, owner): Promise<void>
 * DESCRIPTION
 *   createTlsmgrServer() serves every accepted connection with server/connection.ts; half-open
 *   sockets are allowed so that a client that shuts down its sending side still gets the FAIL
 *   reply Postfix gives it (spec 2.2).
 *   listenFd() accepts on a descriptor that is already listening: what master(8) hands its
 *   children from descriptor 6 on (master_proto.h MASTER_LISTEN_FD).
 *   listenStandalone() is for runs not spawned by master(8): it listens on
 *   $queue_directory/private/$service_name itself. A stale socket is removed; a path where a
 *   live server answers is refused; a path that is not a socket is refused. The socket is
 *   created with mode 0600 (umask 0177 around bind, so there is no window with wider access)
 *   and belongs to $mail_owner: Postfix's unprivileged smtpd and smtp processes run as that
 *   user, and nobody else may connect.
 * SECURITY
 *   private/ belongs to $mail_owner, so anything running as $mail_owner can replace names in
 *   it at any moment. As master_listen.c does around LOCAL_LISTEN, a root daemon does every
 *   step on that path (the liveness probe, the removal of a stale socket, the bind) with
 *   $mail_owner's effective ids (master/eugid.ts): the socket is created owned by
 *   $mail_owner, and there is no chown() by path that a symbolic link swapped in after
 *   bind() could send to another file. unlink() removes a link, never its target.
 * DIAGNOSTICS
 *   listenFd() rejects with the error of listen(2) on the descriptor, as node reports it.
 *   listenStandalone() throws FatalError with Postfix-style wording.
 */

import { lstatSync, unlinkSync } from 'node:fs';
import { createConnection, createServer, type Server } from 'node:net';
import { FatalError } from '../util/errors.js';
import { asEffectiveUser } from '../master/eugid.js';
import { serveConnection, type ConnectionContext } from './connection.js';

export function createTlsmgrServer(ctx: ConnectionContext): Server {
  return createServer({ allowHalfOpen: true }, (sock) => serveConnection(sock, ctx));
}

/** Accept on the inherited, listening descriptor fd. */
export function listenFd(server: Server, fd: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ fd }, () => resolve());
  });
}

/*
 * probeSocket - 'live' if something accepts connections on the UNIX socket at path, 'stale'
 * if the connection is refused (or the name is gone), else the error that made it
 * impossible to tell (EACCES: a socket $mail_owner may not use is someone else's)
 */
function probeSocket(path: string, owner: SocketOwner | null, timeoutMs = 2000): Promise<'live' | 'stale' | string> {
  return new Promise((resolve) => {
    // connect() is issued synchronously, so it runs with owner's ids as well.
    const s = asEffectiveUser(owner, () => createConnection(path));
    const done = (v: string): void => {
      clearTimeout(timer);
      s.destroy();
      resolve(v);
    };
    const timer = setTimeout(() => done('live'), timeoutMs); // accepted but silent: still someone's
    s.once('connect', () => done('live'));
    s.once('error', (err: NodeJS.ErrnoException) =>
      done(err.code === 'ECONNREFUSED' || err.code === 'ENOENT' ? 'stale' : `${err.code ?? 'error'}: ${err.message}`),
    );
  });
}

export interface SocketOwner {
  readonly uid: number;
  readonly gid: number;
}

export async function listenStandalone(server: Server, path: string, owner: SocketOwner | null): Promise<void> {
  let st;
  try {
    st = asEffectiveUser(owner, () => lstatSync(path));
  } catch {
    st = null;
  }
  if (st !== null) {
    if (!st.isSocket()) throw new FatalError(`${path} exists and is not a socket -- refusing to replace it`);
    const probe = await probeSocket(path, owner);
    if (probe === 'live') throw new FatalError(`another server is already listening on ${path}`);
    if (probe !== 'stale') throw new FatalError(`cannot tell whether ${path} is in use (${probe}) -- refusing to replace it`);
    try {
      asEffectiveUser(owner, () => unlinkSync(path));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new FatalError(`remove ${path}: ${(err as Error).message}`, { cause: err });
    }
  }
  const oldMask = process.umask(0o177);
  try {
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      server.once('error', onError);
      // net binds a UNIX socket synchronously inside listen() (errors are emitted later), so
      // the bind happens with $mail_owner's ids.
      asEffectiveUser(owner, () =>
        server.listen(path, () => {
          server.off('error', onError);
          resolve();
        }),
      );
    });
  } catch (err) {
    throw new FatalError(`bind ${path}: ${(err as Error).message}`, { cause: err });
  } finally {
    process.umask(oldMask);
  }
}
