/*
 * NAME
 *   cli/main - the tlsmgr daemon entry point (bin/tlsmgr)
 * SYNOPSIS
 *   tlsmgr [generic Postfix daemon options]
 *   main(argv, env, progName?): Promise<void>      run(): void
 * DESCRIPTION
 *   Parses the command line (cli/options), reads $MAIL_CONFIG/main.cf and tlsmgr.cf (default /etc/postfix)
 *   with `-o name=value` overrides, opens the log, checks $mail_owner and the options as
 *   mail_params_init() and multi_server_main() do, and starts a Daemon (daemon/daemon.ts)
 *   fed by one of three listener strategies (daemon/listeners.ts):
 *   - spawned by master(8) (GENERATION in the environment): listeners on fd 6.., status
 *     channel on fd 5, logging to syslog (or postlogd with maillog_file), `-c` chroot and
 *     `-u` privilege drop, watchdog; exits 0 after saving state when master goes away
 *     (exit or `postfix reload`); SIGTERM (`postfix stop`) kills it without saving, as Postfix;
 *   - standalone (no GENERATION): listens itself on $queue_directory/private/$service_name,
 *     logs to stderr, drops to $mail_owner when root, exits 0 on SIGTERM or SIGINT, re-reads
 *     main.cf on SIGHUP;
 *   - `-S`: one request from stdin, the reply on stdout, no greeting (spec 5.5).
 *   Its parts: the log tag (follows a reloaded syslog_name), the control socket
 *   (daemon/control.ts, $queue_directory/private/tlsmgr-control; not for -S) and, with
 *   tlsmgr_metrics_listen, the HTTP listener for GET /metrics (daemon/metrics-http.ts).
 *   $mail_owner is looked up once, here (master/passwd checkMailOwner()), and passed down.
 * DIAGNOSTICS
 *   Configuration and startup errors: "fatal: ..." on the log, exit status 1.
 * SEE ALSO
 *   tlsmgr/tlsmgr.c main(), master/multi_server.c multi_server_main()
 */

import { hostname } from 'node:os';
import { basename, join } from 'node:path';
import { loadConfig, type LoadConfigOptions } from '../config/load.js';
import type { TlsmgrConfig } from '../config/types.js';
import { controlPart } from '../daemon/control.js';
import { Daemon } from '../daemon/daemon.js';
import { MasterListeners, StandaloneListeners, StdioListeners } from '../daemon/listeners.js';
import { metricsPart } from '../daemon/metrics-http.js';
import type { DaemonPart } from '../daemon/part.js';
import { getLogTag, msgFatal, msgWarn, setLogSink, setLogTag, setVerbose, stderrSink, type LogSink } from '../log/msg.js';
import { openPostlogSink, openSyslogSink, teeSink, type RawTarget } from '../log/syslog.js';
import { checkMailOwner } from '../master/passwd.js';
import { parseGeneration } from '../master/status.js';
import { FatalError } from '../util/errors.js';
import { parseDaemonArgs, type DaemonOptions } from './options.js';

export interface MainEnv {
  readonly [name: string]: string | undefined;
}

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

export async function main(argv: readonly string[], env: MainEnv, progName = 'tlsmgr'): Promise<void> {
  // Until main.cf is read, the tag comes from MAIL_LOGTAG (master exports its syslog_name).
  setLogTag(`${env.MAIL_LOGTAG || 'postfix'}/${progName}`);
  const opts = parseDaemonArgs(argv);
  const serviceName = opts.serviceName ?? progName;
  const configDir = env.MAIL_CONFIG || '/etc/postfix';
  const loadOptions: LoadConfigOptions = { configDir, overrides: opts.overrides, warn: msgWarn, processName: progName, serviceName };
  const { config, lookup } = loadConfig(loadOptions);
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
  const owner = checkMailOwner(config);
  checkOptions(opts, underMaster);
  const listeners = opts.standalone
    ? new StdioListeners()
    : underMaster
      ? new MasterListeners({ serviceName, generation: parseGeneration(env.GENERATION as string), socketCount: opts.socketCount })
      : new StandaloneListeners({ serviceName });
  // The log tag follows a reloaded $syslog_name (daemon/part.ts: a part with one hook).
  const logTag: DaemonPart = {
    reload(fresh, current) {
      if (fresh.syslogName !== current.syslogName) setLogTag(`${fresh.syslogName}/${progName}`);
    },
  };
  await new Daemon({
    config,
    listeners,
    owner,
    dropPrivileges: opts.unprivileged || !underMaster,
    chroot: opts.chroot,
    logTargets: targets,
    reread: () => loadConfig(loadOptions).config,
    parts: [logTag, controlPart(), metricsPart()],
  }).start();
}

/** bin/tlsmgr: run main() and turn thrown FatalErrors into "fatal:" exits. */
export function run(): void {
  const prog = basename(process.argv[1] ?? 'tlsmgr');
  main(process.argv.slice(2), process.env, prog).catch((err: unknown) => {
    if (err instanceof FatalError) msgFatal(err.message);
    msgFatal(`unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  });
}
