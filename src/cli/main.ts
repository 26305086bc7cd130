/*
 * NAME
 *   cli/main - the tlsmgr daemon entry point (bin/tlsmgr)
 * SYNOPSIS
 *   tlsmgr [generic Postfix daemon options]
 * DESCRIPTION
 *   Reads $MAIL_CONFIG/main.cf (default /etc/postfix) with `-o name=value` overrides, builds
 *   the session caches, the ticket-key ring and the request dispatcher, and serves in one of
 *   three modes:
 *   - spawned by master(8) (GENERATION in the environment): listeners on fd 6.., status
 *     channel on fd 5, logging to syslog (or postlogd with maillog_file), `-c` chroot and
 *     `-u` privilege drop, watchdog; exits 0 after saving state when master goes away
 *     (exit or `postfix reload`); SIGTERM (`postfix stop`) kills it without saving, as Postfix;
 *   - standalone (no GENERATION): listens itself on $queue_directory/private/$service_name,
 *     logs to stderr, exits 0 on SIGTERM or SIGINT;
 *   - `-S`: one request from stdin, the reply on stdout, no greeting (spec 5.5).
 *   The lifecycle follows multi_server_main() (spec 5.6): read config, chdir to the queue
 *   directory, pre-init (everything that needs privileges: caches, PRNG source and exchange
 *   file, log sockets), chroot and privilege drop, post-init (timers), serve.
 * DIAGNOSTICS
 *   Configuration and startup errors: "fatal: ..." on the log, exit status 1.
 * SEE ALSO
 *   tlsmgr/tlsmgr.c main(), master/multi_server.c multi_server_main()
 */

import { randomBytes } from 'node:crypto';
import { unlinkSync } from 'node:fs';
import type { Server } from 'node:net';
import { hostname } from 'node:os';
import { basename, join } from 'node:path';
import { CacheTable } from '../cache/caches.js';
import { Sealer } from '../util/seal.js';
import { sharedByTypes, storeOpener } from '../cache/open.js';
import { systemClock } from '../util/clock.js';
import { loadConfig } from '../config/load.js';
import type { TlsmgrConfig } from '../config/types.js';
import { FatalError } from '../util/errors.js';
import { getLogTag, msgFatal, msgInfo, msgVerbose, msgWarn, setLogSink, setLogTag, setVerbose, stderrSink, type LogSink } from '../log/msg.js';
import { openPostlogSink, openSyslogSink, teeSink, type RawTarget } from '../log/syslog.js';
import { chrootTo } from '../master/chroot.js';
import { checkMailOwner, lookupUser } from '../master/passwd.js';
import { setGroups, setUser } from '../master/privs.js';
import { MasterStatus, parseGeneration } from '../master/status.js';
import { startWatchdog } from '../master/watchdog.js';
import { PrngManager } from '../prng/manager.js';
import { serveBytes, type ConnectionContext } from '../server/connection.js';
import { Dispatcher } from '../server/dispatch.js';
import { createTlsmgrServer, listenStandalone } from '../server/server.js';
import { ConnectionGuard, type GuardLimits } from '../server/guard.js';
import { TicketKeyRing } from '../tickets/keys.js';
import type { TicketKeySource } from '../tickets/shared.js';
import { openTicketKeys } from '../tickets/open.js';
import { ClusterMembers } from '../cluster/members.js';
import { parseDaemonArgs, type DaemonOptions } from './options.js';
import { applyReload, type LiveSettings } from './reload.js';
import { pooledRandom } from './random-pool.js';

export interface MainEnv {
  readonly [name: string]: string | undefined;
}

/** The first listen descriptor and the status descriptor of master(8) (master_proto.h). */
const MASTER_LISTEN_FD = 6;
const MASTER_STATUS_FD = 5;

/* checkOptions - refuse what cannot work, in Postfix's words where Postfix has them */
function checkOptions(opts: DaemonOptions, underMaster: boolean): void {
  if (opts.args.length > 0) throw new FatalError(`unexpected command-line argument: ${opts.args[0]}`);
  if (opts.debugger) throw new FatalError('option -D (debugger) is not supported by this version');
  if (opts.standalone) return;
  if (opts.transport !== undefined && !['unix', 'inet', 'pass'].includes(opts.transport)) {
    throw new FatalError(`unsupported transport type: ${opts.transport}`);
  }
  if (underMaster) {
    if (!opts.alone || opts.zeroLimit) throw new FatalError('service tlsmgr requires a process limit of 1');
    if (opts.transport === undefined) throw new FatalError('no transport type specified');
    if (!opts.noDetachCheck && process.stdin.isTTY) throw new FatalError('do not run this command by hand');
  } else {
    if (opts.zeroLimit) throw new FatalError('service tlsmgr requires a process limit of 1');
    if (opts.transport !== undefined && opts.transport !== 'unix') {
      throw new FatalError(`transport type ${opts.transport} is not supported by a standalone tlsmgr`);
    }
    if (opts.socketCount !== 1) throw new FatalError(`-s ${opts.socketCount}: a standalone tlsmgr listens on exactly one socket`);
  }
  // -d, -l, -v, -V are honoured; -i and -m have no effect on tlsmgr (Postfix forces both to 0).
}

interface Daemon {
  readonly ctx: ConnectionContext;
  readonly caches: CacheTable;
  readonly tickets: TicketKeySource;
  readonly prng: PrngManager;
  readonly cluster: ClusterMembers;
  /** The live process-wide client bounds (a standalone reload changes them in place). */
  readonly guardLimits: GuardLimits;
}

/* preInit - everything that needs privileges, before chroot and privilege drop */
async function preInit(config: TlsmgrConfig, path: string, cacheFiles = true): Promise<Daemon> {
  // tlsmgr_pre_init() order: entropy source and PRNG exchange file first, then the caches.
  const prng = await PrngManager.preInit(config, { owner: lookupUser(config.mailOwner) });
  // The seal nonces come from pooled CSPRNG output: one randomBytes() trip per 4 KiB, not per update.
  const random = pooledRandom();
  const sealer = Sealer.fresh(random);
  // redis: caches and shared ticket keys (cluster mode); -S stays local, like its caches.
  const cluster = new ClusterMembers({ clock: systemClock, warn: msgWarn, info: msgInfo, random, mailOwner: config.mailOwner });
  // -S serves one request and exits: its caches stay in memory, never touching (and
  // emptying) the files of a daemon that may be running.
  const openStore = cacheFiles ? storeOpener({ mailOwner: config.mailOwner, lookupUser, members: cluster }) : undefined;
  let caches: CacheTable;
  let tickets: TicketKeySource;
  try {
    caches = new CacheTable(config, {
      clock: systemClock,
      warn: msgWarn,
      info: msgInfo,
      openStore,
      sharedByTypes,
      sealer,
      statsLines: () => cluster.statsLines(),
    });
    const local = new TicketKeyRing(randomBytes);
    tickets = cacheFiles ? openTicketKeys(config, local, { members: cluster, random, clock: systemClock, warn: msgWarn }) : local;
  } catch (err) {
    cluster.close();
    throw err;
  }
  const dispatcher = new Dispatcher({ caches, tickets, seed: (n) => prng.seed(n), stir: () => prng.stir(), clock: systemClock, warn: msgWarn });
  const guardLimits: GuardLimits = {
    connectionLimit: config.connectionLimit,
    inputBufferLimit: config.inputBufferLimit,
    requestDeadline: config.ipcTimeout,
  };
  const ctx: ConnectionContext = {
    dispatcher,
    limits: { nameLimit: config.attrNameLimit, valueLimit: config.attrValueLimit, countLimit: config.attrCountLimit },
    scan: { path, cacheIdLimit: config.cacheIdLimit, sessionLimit: config.sessionLimit, warn: msgWarn },
    guard: new ConnectionGuard(guardLimits, { warn: msgWarn, where: path }),
  };
  return { ctx, caches, tickets, prng, cluster, guardLimits };
}

/* postInit - timers, after chroot and privilege drop (PRNG reseed and exchange file first) */
async function postInit(d: Daemon): Promise<void> {
  await d.prng.postInit();
  d.caches.startCleanup();
}

/* beforeExit - what a normal exit saves (tlsmgr_before_exit) */
function beforeExit(d: Daemon): void {
  d.prng.beforeExit();
  d.prng.close();
  d.caches.close();
  d.tickets.clear();
  d.cluster.close();
  d.ctx.guard?.stop();
}

function readStdin(): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    process.stdin.on('data', (c: Buffer) => parts.push(c));
    process.stdin.on('end', () => resolve(Buffer.concat(parts)));
    process.stdin.on('error', reject);
  });
}

/* openLogging - syslog or postlogd for daemons under master, stderr in the foreground */
function openLogging(config: TlsmgrConfig, opts: DaemonOptions, underMaster: boolean, myHostname: string): RawTarget[] {
  const stderrTarget = (): RawTarget => ({ fd: 2, template: `%STAMP% ${getLogTag()}[${process.pid}]: ` });
  if (!underMaster || opts.standalone) return [stderrTarget()];
  const sinks: LogSink[] = [];
  const targets: RawTarget[] = [];
  try {
    const s =
      config.maillogFile !== ''
        ? openPostlogSink({ path: join(config.queueDirectory, 'public', 'postlog'), progname: getLogTag, hostname: myHostname })
        : openSyslogSink({ path: config.syslogPath, facility: config.syslogFacility, ident: getLogTag });
    sinks.push(s);
    targets.push(s.target());
  } catch (err) {
    msgWarn(`${(err as Error).message} -- logging to stderr only`);
  }
  if (opts.stderrLog || opts.noDetachCheck || sinks.length === 0) {
    sinks.push(stderrSink);
    targets.push(stderrTarget());
  }
  setLogSink(sinks.length === 1 ? sinks[0] : teeSink(...sinks));
  return targets;
}

/*
 * mailOwnerFor - the user a root daemon becomes after pre-init (-u under master; a standalone
 * root daemon always drops once its socket is open), or null when there is no change.
 */
function mailOwnerFor(config: TlsmgrConfig, opts: DaemonOptions, underMaster: boolean): { uid: number; gid: number } | null {
  if (!(opts.unprivileged || !underMaster) || process.getuid?.() !== 0) return null;
  const owner = lookupUser(config.mailOwner);
  if (owner === null) throw new FatalError(`unknown mail_owner user: ${config.mailOwner}`);
  return owner.uid === 0 ? null : owner;
}

/* dropTo - -c and -u, after pre-init (multi_server_main, util/chroot_uid.c) */
function dropTo(owner: { uid: number; gid: number } | null, config: TlsmgrConfig, opts: DaemonOptions): void {
  // As chroot_uid(): set the groups before the chroot (/etc/passwd and /etc/group are not in
  // the jail), setuid() after it.
  if (owner !== null) setGroups(config.mailOwner, owner.gid);
  if (opts.chroot) chrootTo(config.queueDirectory);
  if (owner !== null) setUser(config.mailOwner, owner.uid);
}

function listenFd(fd: number, ctx: ConnectionContext): Promise<Server> {
  const server = createTlsmgrServer(ctx);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ fd }, () => resolve(server));
  });
}

export async function main(argv: readonly string[], env: MainEnv, progName = 'tlsmgr'): Promise<void> {
  // Until main.cf is read, the tag comes from MAIL_LOGTAG (master exports its syslog_name).
  setLogTag(`${env.MAIL_LOGTAG || 'postfix'}/${progName}`);
  const opts = parseDaemonArgs(argv);
  const serviceName = opts.serviceName ?? progName;
  const configDir = env.MAIL_CONFIG || '/etc/postfix';
  const { config, lookup } = loadConfig({ configDir, overrides: opts.overrides, warn: msgWarn, processName: progName, serviceName });
  // Then it is $syslog_name/process name: mail_params_init() re-exports MAIL_LOGTAG from
  // syslog_name (with -o overrides) before mail_task(var_procname); -n changes only service_name.
  setLogTag(`${config.syslogName}/${progName}`);
  setVerbose(opts.verbose + (env.MAIL_VERBOSE ? 1 : 0));
  const underMaster = env.GENERATION !== undefined && !opts.standalone;
  // Logging first, so that the fatal errors below reach syslog/postlogd: under master, stderr
  // is master's (/dev/null).
  // postlog records carry $myhostname (maillog_client_init()); its default is the system's name.
  const targets = openLogging(config, opts, underMaster, lookup('myhostname') || hostname());
  // mail_params_init(): every mode (-S too), as root or not, before anything is opened.
  checkMailOwner(config);
  checkOptions(opts, underMaster);
  const generation = underMaster ? parseGeneration(env.GENERATION as string) : 0;

  if (opts.standalone) {
    const d = await preInit(config, 'unknown_stream', false);
    await d.prng.postInit(); // -S runs post-init too: reseed and exchange-file update
    const reply = await serveBytes(await readStdin(), d.ctx);
    beforeExit(d);
    process.stdout.write(reply);
    return;
  }

  try {
    process.chdir(config.queueDirectory);
  } catch (err) {
    throw new FatalError(`chdir("${config.queueDirectory}"): ${(err as NodeJS.ErrnoException).message}`);
  }
  const d = await preInit(config, `${serviceName} socket`);

  if (underMaster) {
    const status = new MasterStatus(MASTER_STATUS_FD, generation, () => {
      // master exited or `postfix reload`: save state, exit 0 (multi_server_abort).
      beforeExit(d);
      process.exit(0);
    });
    const ctx: ConnectionContext = { ...d.ctx, onRequest: (busy) => (busy ? status.taken() : status.avail()) };
    for (let i = 0; i < opts.socketCount; i++) await listenFd(MASTER_LISTEN_FD + i, ctx);
    const drop = mailOwnerFor(config, opts, underMaster);
    startWatchdog(config.daemonTimeout, targets, drop); // it starts before the chroot
    dropTo(drop, config, opts);
    await postInit(d);
    msgVerbose(1, `daemon started -- ${opts.socketCount} listener(s), generation ${generation}`);
    return;
  }

  const path = join(config.queueDirectory, 'private', serviceName);
  let owner = null;
  if (process.getuid?.() === 0) {
    owner = lookupUser(config.mailOwner);
    if (owner === null) throw new FatalError(`unknown mail_owner user: ${config.mailOwner}`);
  }
  const server = createTlsmgrServer(d.ctx);
  await listenStandalone(server, path, owner);
  const drop = mailOwnerFor(config, opts, underMaster);
  startWatchdog(config.daemonTimeout, targets, drop);
  dropTo(drop, config, opts);
  await postInit(d);
  msgInfo(`listening on ${path}`);

  const stop = (signal: string): void => {
    msgInfo(`${signal} received -- exiting`);
    server.close();
    try {
      unlinkSync(opts.chroot ? join('private', serviceName) : path);
    } catch {
      /* already gone */
    }
    beforeExit(d);
    process.exit(0);
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  // SIGHUP: re-read main.cf and apply what can change without dropping the caches.
  let current = config;
  process.on('SIGHUP', () => {
    let fresh: TlsmgrConfig;
    try {
      fresh = loadConfig({ configDir, overrides: opts.overrides, warn: msgWarn, processName: progName, serviceName }).config;
    } catch (err) {
      msgWarn(`reload: ${(err as Error).message} -- keeping the running configuration`);
      return;
    }
    const restart = applyReload(current, fresh, {
      limits: d.ctx.limits as LiveSettings['limits'],
      scan: d.ctx.scan as LiveSettings['scan'],
      guard: d.guardLimits,
      setSyslogName: (name) => setLogTag(`${name}/${progName}`),
    });
    current = fresh;
    msgInfo(`reload: ${configDir}/main.cf re-read; caches and ticket keys kept`);
    for (const key of restart) msgWarn(`reload: a changed setting (${key}) takes effect only after a restart`);
  });
}


/** bin/tlsmgr: run main() and turn thrown FatalErrors into "fatal:" exits. */
export function run(): void {
  const prog = basename(process.argv[1] ?? 'tlsmgr');
  main(process.argv.slice(2), process.env, prog).catch((err: unknown) => {
    if (err instanceof FatalError) msgFatal(err.message);
    msgFatal(`unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  });
}
