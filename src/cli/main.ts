/*
 * NAME
 *   cli/main - the tlsmgr daemon entry point (bin/tlsmgr)
 * SYNOPSIS
 *   tlsmgr [generic Postfix daemon options]
 * DESCRIPTION
 *   Reads $MAIL_CONFIG/main.cf (default /etc/postfix) with `-o name=value` overrides, builds
 *   the session caches, the ticket-key ring and the request dispatcher, and serves:
 *   - standalone (not spawned by master(8)): listens itself on
 *     $queue_directory/private/$service_name, logs to stderr, exits 0 on SIGTERM or SIGINT;
 *   - `-S`: one request from stdin, the reply on stdout, no greeting (spec 5.5).
 *   Every generic daemon option of spec 5.5 is parsed; those this version cannot honour yet
 *   are a fatal error, never silently ignored.
 * DIAGNOSTICS
 *   Configuration and startup errors: "fatal: ..." on the log, exit status 1.
 * SEE ALSO
 *   tlsmgr/tlsmgr.c main(), master/multi_server.c multi_server_main()
 */

import { randomBytes } from 'node:crypto';
import { unlinkSync } from 'node:fs';
import { basename, join } from 'node:path';
import { CacheTable } from '../cache/caches.js';
import { systemClock } from '../clock.js';
import { loadConfig } from '../config/load.js';
import type { TlsmgrConfig } from '../config/types.js';
import { FatalError } from '../errors.js';
import { msgFatal, msgInfo, msgWarn, setLogTag, setVerbose } from '../log/msg.js';
import { lookupUser } from '../master/passwd.js';
import { dropPrivileges } from '../master/privs.js';
import { serveBytes, type ConnectionContext } from '../server/connection.js';
import { Dispatcher } from '../server/dispatch.js';
import { createTlsmgrServer, listenStandalone } from '../server/server.js';
import { TicketKeyRing } from '../tickets/keys.js';
import { parseDaemonArgs, type DaemonOptions } from './options.js';

export interface MainEnv {
  readonly [name: string]: string | undefined;
}

/* checkOptions - refuse what this version cannot do, in Postfix's words where Postfix has them */
function checkOptions(opts: DaemonOptions, env: MainEnv): void {
  if (opts.args.length > 0) throw new FatalError(`unexpected command-line argument: ${opts.args[0]}`);
  if (env.GENERATION !== undefined) {
    throw new FatalError('running under master(8) is not supported by this version: run tlsmgr standalone (see README)');
  }
  if (opts.chroot) throw new FatalError('option -c (chroot) is not supported by this version: set the chroot column to "n"');
  if (opts.unprivileged) {
    throw new FatalError('option -u (drop privileges) is not supported by this version: set the unpriv column to "n"');
  }
  if (opts.debugger) throw new FatalError('option -D (debugger) is not supported by this version');
  if (opts.zeroLimit && !opts.standalone) throw new FatalError('service tlsmgr requires a process limit of 1');
  if (opts.transport !== undefined && !['unix', 'inet', 'pass'].includes(opts.transport)) {
    throw new FatalError(`unsupported transport type: ${opts.transport}`);
  }
  if (opts.transport !== undefined && opts.transport !== 'unix' && !opts.standalone) {
    throw new FatalError(`transport type ${opts.transport} is not supported by this version`);
  }
  if (opts.socketCount !== 1 && !opts.standalone) {
    throw new FatalError(`-s ${opts.socketCount}: a standalone tlsmgr listens on exactly one socket`);
  }
  // -d, -l, -v, -V are honoured; -i and -m have no effect on tlsmgr (Postfix forces both to 0).
}

function buildContext(config: TlsmgrConfig, path: string): { ctx: ConnectionContext; caches: CacheTable; tickets: TicketKeyRing } {
  const caches = new CacheTable(config, { clock: systemClock, warn: msgWarn });
  const tickets = new TicketKeyRing(randomBytes);
  const dispatcher = new Dispatcher({ caches, tickets, seed: randomBytes, clock: systemClock, warn: msgWarn });
  const ctx: ConnectionContext = {
    dispatcher,
    limits: { nameLimit: config.attrNameLimit, valueLimit: config.attrValueLimit, countLimit: config.attrCountLimit },
    scan: { path, cacheIdLimit: config.cacheIdLimit, sessionLimit: config.sessionLimit, warn: msgWarn },
  };
  return { ctx, caches, tickets };
}

function readStdin(): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    process.stdin.on('data', (c: Buffer) => parts.push(c));
    process.stdin.on('end', () => resolve(Buffer.concat(parts)));
    process.stdin.on('error', reject);
  });
}

export async function main(argv: readonly string[], env: MainEnv, progName = 'tlsmgr'): Promise<void> {
  setLogTag(`postfix/${progName}`);
  const opts = parseDaemonArgs(argv);
  const serviceName = opts.serviceName ?? progName;
  const configDir = env.MAIL_CONFIG || '/etc/postfix';
  const { config } = loadConfig({ configDir, overrides: opts.overrides, warn: msgWarn });
  setLogTag(`${env.MAIL_LOGTAG || config.syslogName}/${serviceName}`);
  setVerbose(opts.verbose + (env.MAIL_VERBOSE ? 1 : 0));
  checkOptions(opts, env);

  if (opts.standalone) {
    const { ctx, caches } = buildContext(config, 'unknown_stream');
    const reply = serveBytes(await readStdin(), ctx);
    caches.close();
    process.stdout.write(reply);
    return;
  }

  const path = join(config.queueDirectory, 'private', serviceName);
  const { ctx, caches, tickets } = buildContext(config, `${serviceName} socket`);
  let owner = null;
  if (process.getuid?.() === 0) {
    owner = lookupUser(config.mailOwner);
    if (owner === null) throw new FatalError(`unknown mail_owner user: ${config.mailOwner}`);
  }
  const server = createTlsmgrServer(ctx);
  await listenStandalone(server, path, owner);
  // Everything privileged is open: continue as $mail_owner, like every Postfix daemon.
  if (owner !== null && owner.uid !== 0) dropPrivileges(config.mailOwner, owner.uid, owner.gid);
  caches.startCleanup();
  msgInfo(`listening on ${path}`);

  const stop = (signal: string): void => {
    msgInfo(`${signal} received -- exiting`);
    server.close();
    try {
      unlinkSync(path);
    } catch {
      /* already gone */
    }
    caches.close();
    tickets.clear();
    process.exit(0);
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGHUP', () => msgWarn('SIGHUP (reload) is not supported by this version -- ignored; restart to reload main.cf'));
}

/** bin/tlsmgr: run main() and turn thrown FatalErrors into "fatal:" exits. */
export function run(): void {
  const prog = basename(process.argv[1] ?? 'tlsmgr');
  main(process.argv.slice(2), process.env, prog).catch((err: unknown) => {
    if (err instanceof FatalError) msgFatal(err.message);
    msgFatal(`unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  });
}
