/*
 * NAME
 *   daemon/part - the shape of a piece that plugs into the Daemon's phases
 * SYNOPSIS
 *   interface DaemonPart { preInit?(d); postInit?(d); reload?(fresh, current); beforeExit?() }
 *   interface DaemonControl { config, mode, owner, chrooted, service, ctx, reload(), beforeExit(), exit(status) }
 *   type DaemonMode = 'master' | 'standalone' | 'stdio'
 * DESCRIPTION
 *   A part is Postfix's service callbacks (multi_server.c: pre_init, post_init, before_exit)
 *   for one concern. The Daemon (daemon/daemon.ts) runs the hooks of its parts in list
 *   order; the service (daemon/service.ts) is always the first part, so its PRNG, caches and
 *   ticket keys exist when the other parts' hooks run, and its exchange file is saved first.
 *   Every hook is optional:
 *   - preInit(d): with root privileges, in the queue directory, before the listeners are
 *     opened and before chroot and privilege drop: open files and sockets here (as
 *     $mail_owner, with master/eugid asEffectiveUser(d.owner, ...), when they are in a
 *     directory $mail_owner can write). A throw is a fatal start-up error.
 *   - postInit(d): after chroot and privilege drop, before serving: start timers.
 *   - reload(fresh, current): a standalone daemon re-read main.cf (SIGHUP); apply in place
 *     what this part can, before the daemon logs the reload. A field applied in place must
 *     be in daemon/reload.ts LIVE_FIELDS, or the daemon warns that it needs a restart.
 *   - beforeExit(): a normal exit (master(8) went away, SIGTERM or SIGINT of a standalone
 *     daemon, the end of -S): save state, release, synchronously. It runs at most once, and
 *     not at all when the process is killed (SIGTERM under master(8), as Postfix) or exits
 *     on a fatal error.
 *   DaemonControl is what a part (and a listener strategy, daemon/listeners.ts) sees of the
 *   running daemon; reload() and exit() let a part act on it (a control socket's commands).
 *   A new part is one file exporting a DaemonPart and one entry in the `parts` list that
 *   cli/main.ts gives the Daemon. A control socket, say: preInit binds it (as $mail_owner,
 *   before the chroot) and answers its commands from d.service and d.config, calling
 *   d.reload() or d.exit(0) for those that ask; beforeExit closes and removes it.
 * SEE ALSO
 *   master/multi_server.c, master/mail_server.h (MAIL_SERVER_PRE_INIT and friends)
 */

import type { TlsmgrConfig } from '../config/types.js';
import type { UserIds } from '../master/passwd.js';
import type { ConnectionContext } from '../server/connection.js';
import type { Service } from './service.js';

/** Spawned by master(8); listening on its own socket; one request from stdin (-S). */
export type DaemonMode = 'master' | 'standalone' | 'stdio';

export interface DaemonControl {
  /** The running configuration: the latest one after a reload. */
  readonly config: TlsmgrConfig;
  readonly mode: DaemonMode;
  /** $mail_owner, resolved once at start. */
  readonly owner: UserIds;
  /** True once the daemon runs inside its chroot (the queue directory is then /). */
  readonly chrooted: boolean;
  /** The request path (set in pre-init, before any other part's hook runs). */
  readonly service: Service;
  /** The context every listener serves connections with (service.ctx). */
  readonly ctx: ConnectionContext;
  /** Re-read main.cf and apply it (a warning, and nothing changed, when it cannot be read). */
  reload(): void;
  /** Run every part's beforeExit() once. */
  beforeExit(): void;
  /** beforeExit(), then exit the process with status. */
  exit(status: number): never;
}

export interface DaemonPart {
  preInit?(d: DaemonControl): void | Promise<void>;
  postInit?(d: DaemonControl): void | Promise<void>;
  reload?(fresh: TlsmgrConfig, current: TlsmgrConfig): void;
  beforeExit?(): void;
}
