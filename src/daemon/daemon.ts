/*
 * NAME
 *   daemon/daemon - the tlsmgr daemon's life: pre-init, jail, post-init, serve, reload, exit
 * SYNOPSIS
 *   const d = new Daemon({ config, listeners, owner, dropPrivileges, chroot, logTargets, reread?, parts? })
 *   await d.start()
 *   d.reload()      d.beforeExit()      d.exit(status)
 * DESCRIPTION
 *   The phases of Postfix's server skeleton (multi_server_main(), spec 5.6), whatever feeds
 *   the daemon its clients (daemon/listeners.ts: master(8), standalone, -S):
 *   1. chdir to $queue_directory (not for -S);
 *   2. pre-init, with root privileges: the service (daemon/service.ts: entropy source and
 *      PRNG exchange file, caches, ticket keys), then each part's preInit (daemon/part.ts);
 *   3. the listeners open (master's descriptors, or the socket in private/);
 *   4. the watchdog starts (master/watchdog.ts; it holds the log descriptors and runs as the
 *      user the daemon becomes), then chroot_uid: -c chroots to $queue_directory, and a root
 *      daemon becomes $mail_owner when dropPrivileges says so (-u under master(8); always
 *      for a standalone daemon); -S does neither and runs no watchdog;
 *   5. post-init: each part's postInit in order (the service's starts the PRNG and cache
 *      timers);
 *   6. serve: the listeners announce and arrange for the end.
 *   reload() re-reads main.cf (settings.reread), lets each part apply what it can in place,
 *   logs "reload: <config_directory>/main.cf and tlsmgr.cf re-read; caches and ticket keys kept" and warns
 *   once for each changed setting that needs a restart (daemon/reload.ts). beforeExit() runs
 *   every part's beforeExit once, the service's first (it saves the PRNG exchange file);
 *   exit(status) is beforeExit() and then process.exit(status).
 *   $mail_owner comes resolved (settings.owner, from master/passwd checkMailOwner()): the
 *   daemon and its parts never look it up again.
 * DIAGNOSTICS
 *   start() rejects with the FatalError of the step that failed ("chdir("<dir>"): <reason>",
 *   the service's, a part's, the listeners', chroot and set_ugid errors); nothing is saved
 *   then. reload() warns "reload: <reason> -- keeping the running configuration" when main.cf
 *   cannot be re-read, and changes nothing.
 * SEE ALSO
 *   master/multi_server.c multi_server_main(), util/chroot_uid.c, tlsmgr/tlsmgr.c
 */

import type { TlsmgrConfig } from '../config/types.js';
import { msgInfo, msgWarn } from '../log/msg.js';
import type { UserIds } from '../master/passwd.js';
import { chrootUid } from '../master/privs.js';
import { startWatchdog, type WatchdogTarget } from '../master/watchdog.js';
import type { ConnectionContext } from '../server/connection.js';
import { FatalError } from '../util/errors.js';
import type { Listeners } from './listeners.js';
import type { DaemonControl, DaemonMode, DaemonPart } from './part.js';
import { needsRestart } from './reload.js';
import { openService, type Service } from './service.js';

export interface DaemonSettings {
  readonly config: TlsmgrConfig;
  readonly listeners: Listeners;
  /** $mail_owner, resolved once (master/passwd checkMailOwner()). */
  readonly owner: UserIds;
  /** A root daemon becomes $mail_owner after pre-init: -u under master(8), always standalone. */
  readonly dropPrivileges: boolean;
  /** -c: chroot to $queue_directory after pre-init. */
  readonly chroot: boolean;
  /** Where the watchdog writes "fatal: watchdog timeout" (the log's raw descriptors). */
  readonly logTargets: readonly WatchdogTarget[];
  /** Read main.cf again (with the same -o overrides) for reload(); it throws when it cannot. */
  readonly reread?: () => TlsmgrConfig;
  /** More parts, after the service, in the order their hooks run. */
  readonly parts?: readonly DaemonPart[];
}

export class Daemon implements DaemonControl {
  private current: TlsmgrConfig;
  private opened: Service | undefined;
  private parts: readonly DaemonPart[] = [];
  private jailed = false;
  private exited = false;

  constructor(private readonly settings: DaemonSettings) {
    this.current = settings.config;
  }

  get config(): TlsmgrConfig {
    return this.current;
  }

  get mode(): DaemonMode {
    return this.settings.listeners.mode;
  }

  get owner(): UserIds {
    return this.settings.owner;
  }

  get chrooted(): boolean {
    return this.jailed;
  }

  get service(): Service {
    if (this.opened === undefined) throw new Error('the daemon service is not open before pre-init');
    return this.opened;
  }

  get ctx(): ConnectionContext {
    return this.service.ctx;
  }

  async start(): Promise<void> {
    const { config, listeners, owner } = this.settings;
    const oneShot = listeners.oneShot;

    // Pre-jail: the queue directory is the working directory (relative paths, the chroot).
    if (!oneShot) {
      try {
        process.chdir(config.queueDirectory);
      } catch (err) {
        throw new FatalError(`chdir("${config.queueDirectory}"): ${(err as NodeJS.ErrnoException).message}`);
      }
    }

    // Pre-init, with root privileges: the service first, then the other parts.
    this.opened = await openService(config, { streamName: listeners.streamName, oneShot, owner });
    const extra = this.settings.parts ?? [];
    this.parts = [this.opened, ...extra];
    for (const p of extra) await p.preInit?.(this);
    await listeners.open(this);

    // Restrict the damage: the watchdog starts before the chroot, as the user the daemon becomes.
    if (!oneShot) {
      const user = this.settings.dropPrivileges && process.getuid?.() === 0 ? owner : null;
      startWatchdog(config.daemonTimeout, this.settings.logTargets, user);
      chrootUid(this.settings.chroot ? config.queueDirectory : null, user === null ? null : { name: config.mailOwner, ...user });
      this.jailed = this.settings.chroot;
    }

    // Post-init: timers (the service's PRNG reseed and exchange update first).
    for (const p of this.parts) await p.postInit?.(this);
    await listeners.serve(this);
  }

  reload(): void {
    const reread = this.settings.reread;
    if (reread === undefined) return;
    let fresh: TlsmgrConfig;
    try {
      fresh = reread();
    } catch (err) {
      msgWarn(`reload: ${(err as Error).message} -- keeping the running configuration`);
      return;
    }
    const current = this.current;
    for (const p of this.parts) p.reload?.(fresh, current);
    this.current = fresh;
    msgInfo(`reload: ${fresh.configDirectory}/main.cf and tlsmgr.cf re-read; caches and ticket keys kept`);
    for (const key of needsRestart(current, fresh)) msgWarn(`reload: a changed setting (${key}) takes effect only after a restart`);
  }

  beforeExit(): void {
    if (this.exited) return;
    this.exited = true;
    for (const p of this.parts) p.beforeExit?.();
  }

  exit(status: number): never {
    this.beforeExit();
    process.exit(status);
  }
}
