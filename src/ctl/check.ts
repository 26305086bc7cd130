/*
 * NAME
 *   ctl/check - tlsmgr-ctl check: is this tlsmgr ready to run, and does master(8) run it?
 * SYNOPSIS
 *   tlsmgr-ctl [-c config_dir] check
 * DESCRIPTION
 *   Prints one line per check on standard output, "ok: ...", "warning: ..." or
 *   "error: ...", in this order:
 *   - node: this node's version is 20 or later;
 *   - native modules: better-sqlite3 (an in-memory database is opened), posix, fs-ext and
 *     unix-dgram load, from this package;
 *   - configuration: main.cf (and tlsmgr.cf when present) parse with the daemon's own loader
 *     (config/load.ts); each loader warning is a warning line. When it fails, the checks
 *     below that need it are skipped;
 *   - mail_owner: exists, not privileged, not sharing its uid (master/passwd.ts);
 *   - data_directory: a directory owned by mail_owner and not writable by group or others;
 *   - secrets at rest: each session cache's database file (<name>.sqlite, -wal, -shm) and
 *     the PRNG exchange file, when they exist: owned by mail_owner, no access for group or
 *     others;
 *   - the service socket: $queue_directory/private is mail_owner's with no access for
 *     group or others (what keeps everyone else off the socket), and
 *     private/$tlsmgr_service_name, when present, is a socket of root or mail_owner;
 *   - master.cf: the command field of the tlsmgr unix service (postconf -F) is
 *     tlsmgr-node, and $daemon_directory/tlsmgr-node is ours, runs an existing node and
 *     this package's daemon, and is on a path only root can change; Postfix's own tlsmgr
 *     there is a warning ("tlsmgr-ctl install" switches it);
 *   - the running process: when master(8) runs, the tlsmgr process it runs now (if any)
 *     is node when master.cf names ours, Postfix's tlsmgr when it does not (otherwise a
 *     reload is pending).
 *   Exit status 0 when every line is "ok:", 1 otherwise.
 * LIMITS
 *   Not being root, some files cannot be looked at; that is a warning. A redis: cache has
 *   no local file here (the daemon checks its configuration file when it reads it).
 * SEE ALSO
 *   postfix(1) check, ctl/install.ts, ctl/trusted.ts, ctl/procs.ts
 */

import { existsSync, lstatSync, type Stats } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, join, resolve } from 'node:path';
import { loadConfig } from '../config/load.js';
import { CACHE_TYPES, type TlsmgrConfig } from '../config/types.js';
import { checkMailOwner } from '../master/passwd.js';
import type { ParsedArgs } from './args.js';
import type { CtlCommand, CtlContext } from './command.js';
import { ENTRY_NAME, POSTFIX_TLSMGR, packageDaemon, readEntry } from './entry.js';
import { masterPid, serviceProcesses } from './procs.js';
import { Postfix, findPostfixTools } from './postfix.js';
import { pathProblems } from './trusted.js';

export type Level = 'ok' | 'warning' | 'error';

export interface Finding {
  readonly level: Level;
  readonly text: string;
}

const NATIVE_MODULES = ['better-sqlite3', 'posix', 'fs-ext', 'unix-dgram'] as const;
const MIN_NODE_MAJOR = 20;

function mode(st: Stats): string {
  return (st.mode & 0o7777).toString(8).padStart(4, '0');
}

function firstLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n', 1)[0];
}

/** checkNode - this node is recent enough. */
export function checkNode(version = process.version): Finding {
  const major = Number(/^v?(\d+)\./.exec(version)?.[1] ?? 0);
  return major >= MIN_NODE_MAJOR
    ? { level: 'ok', text: `node ${version} (${process.execPath})` }
    : { level: 'error', text: `node ${version} is too old: tlsmgr needs node ${MIN_NODE_MAJOR} or later` };
}

/** checkNativeModules - each native module this package depends on loads. */
export function checkNativeModules(): Finding[] {
  const req = createRequire(import.meta.url);
  return NATIVE_MODULES.map((name): Finding => {
    try {
      const m = req(name) as unknown;
      if (name === 'better-sqlite3') {
        // The binding is loaded when the first database opens.
        const Database = m as new (file: string) => { close(): void };
        new Database(':memory:').close();
      }
      return { level: 'ok', text: `native module ${name} loads` };
    } catch (err) {
      return { level: 'error', text: `native module ${name} does not load: ${firstLine(err)}` };
    }
  });
}

/* secretFile - one secret file, when it exists: a regular file of mail_owner, no access for group or others */
function secretFile(path: string, what: string, owner: { uid: number }): Finding | undefined {
  let st: Stats;
  try {
    st = lstatSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'ENOENT' ? undefined : { level: 'warning', text: `${what} ${path}: cannot check: ${firstLine(err)}` };
  }
  if (!st.isFile()) return { level: 'error', text: `${what} ${path} is not a regular file` };
  if ((st.mode & 0o077) !== 0) return { level: 'error', text: `${what} ${path} is open to group or others (mode ${mode(st)}; want 0600)` };
  if (st.uid !== owner.uid) return { level: 'warning', text: `${what} ${path} is owned by uid ${st.uid}, not by mail_owner` };
  return { level: 'ok', text: `${what} ${path}: mail_owner's, mode ${mode(st)}` };
}

/** checkFiles - data_directory, the secrets at rest and the service socket. */
export async function checkFiles(config: TlsmgrConfig, owner: { uid: number }): Promise<Finding[]> {
  const out: Finding[] = [];
  const dd = config.dataDirectory;
  try {
    const st = lstatSync(dd);
    if (!st.isDirectory()) out.push({ level: 'error', text: `data_directory ${dd} is not a directory` });
    else if (st.uid !== owner.uid) out.push({ level: 'error', text: `data_directory ${dd} is owned by uid ${st.uid}, not by mail_owner ${config.mailOwner}` });
    else if ((st.mode & 0o022) !== 0) out.push({ level: 'error', text: `data_directory ${dd} is writable by group or others (mode ${mode(st)})` });
    else out.push({ level: 'ok', text: `data_directory ${dd}: ${config.mailOwner}'s, mode ${mode(st)}` });
  } catch (err) {
    out.push({ level: 'error', text: `data_directory ${dd}: ${firstLine(err)}` });
  }

  let storeKind: ((dict: string, param: string) => { kind: string; file?: string }) | undefined;
  try {
    // Loaded here, not at the top: it loads the SQLite binding, which may be what is broken.
    storeKind = (await import('../cache/open.js')).storeKind;
  } catch (err) {
    out.push({ level: 'error', text: `cannot load the session cache code: ${firstLine(err)}` });
  }
  for (const ct of CACHE_TYPES) {
    const db = config.cache[ct].database;
    if (db === '' || storeKind === undefined) continue;
    const dict = /^[A-Za-z0-9_-]+:/.test(db) ? db : `${config.defaultDatabaseType}:${db}`;
    let file: string | undefined;
    try {
      file = storeKind(dict, `${ct}_tls_session_cache_database`).file;
    } catch {
      continue; // redis: and the like: no local file (the daemon reports a bad type at start)
    }
    if (file === undefined) continue;
    const found = ['', '-wal', '-shm'].map((s) => secretFile(resolve(file + s), `${ct} session cache`, owner)).filter((f) => f !== undefined);
    out.push(...found);
  }
  const exch = config.tlsRandomExchangeName;
  if (exch !== '') {
    const f = secretFile(resolve(exch), 'PRNG exchange file', owner);
    if (f) out.push(f);
  }

  const priv = join(config.queueDirectory, 'private');
  try {
    const st = lstatSync(priv);
    if (!st.isDirectory()) out.push({ level: 'error', text: `${priv} is not a directory` });
    else if (st.uid !== owner.uid) out.push({ level: 'error', text: `${priv} is owned by uid ${st.uid}, not by mail_owner ${config.mailOwner}` });
    else if ((st.mode & 0o077) !== 0) out.push({ level: 'error', text: `${priv} is open to group or others (mode ${mode(st)}; want 0700): anyone could use the tlsmgr socket` });
    else out.push({ level: 'ok', text: `${priv}: ${config.mailOwner}'s, mode ${mode(st)}` });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    out.push(code === 'ENOENT'
      ? { level: 'warning', text: `${priv} does not exist (postfix check creates it)` }
      : { level: 'error', text: `${priv}: ${firstLine(err)}` });
  }
  const sock = join(priv, config.tlsmgrServiceName);
  try {
    const st = lstatSync(sock);
    if (!st.isSocket()) out.push({ level: 'error', text: `${sock} is not a socket` });
    else if (st.uid !== 0 && st.uid !== owner.uid) out.push({ level: 'error', text: `${sock} is owned by uid ${st.uid}, neither root nor mail_owner` });
    else out.push({ level: 'ok', text: `${sock}: a socket of ${st.uid === 0 ? 'root' : config.mailOwner}` });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT') out.push({ level: 'warning', text: `${sock}: cannot check: ${firstLine(err)}` });
  }
  return out;
}

/** checkMaster - master.cf's command field, our entry, and the running process. */
export function checkMaster(ctx: CtlContext, config: TlsmgrConfig): Finding[] {
  const out: Finding[] = [];
  const service = config.tlsmgrServiceName;
  let command: string | undefined;
  try {
    command = new Postfix(ctx.configDir, findPostfixTools()).masterCommand(service);
  } catch (err) {
    return [{ level: 'error', text: `cannot read master.cf: ${firstLine(err)}` }];
  }
  if (command === undefined) {
    return [{ level: 'warning', text: `master.cf has no "${service} unix" service (a standalone tlsmgr may serve the socket)` }];
  }
  const word0 = command.split(/\s/, 1)[0];
  const ours = word0 === ENTRY_NAME;
  const entryPath = join(config.daemonDirectory, ENTRY_NAME);
  if (word0 === POSTFIX_TLSMGR) {
    out.push({ level: 'warning', text: `master.cf runs Postfix's own tlsmgr for ${service}/unix ("tlsmgr-ctl install" makes it run this one)` });
  } else if (!ours) {
    out.push({ level: 'warning', text: `master.cf runs "${word0}" for ${service}/unix, neither Postfix's tlsmgr nor ${ENTRY_NAME}` });
  } else {
    const entry = readEntry(entryPath);
    if (entry.kind !== 'ours' || entry.target === undefined) {
      out.push({ level: 'error', text: `master.cf runs ${ENTRY_NAME} for ${service}/unix, but ${entryPath} ` +
        `${entry.kind === 'absent' ? 'does not exist' : 'is not one written by tlsmgr-ctl'} ("tlsmgr-ctl install" writes it)` });
    } else {
      const t = entry.target;
      const problems = [...pathProblems(entryPath), ...pathProblems(t.node), ...pathProblems(t.daemon)];
      for (const p of problems) out.push({ level: 'error', text: `${entryPath}: ${p}` });
      const here = packageDaemon();
      if (problems.length === 0) {
        if (t.daemon !== here.daemon || t.node !== here.node) {
          out.push({ level: 'warning', text: `${entryPath} runs ${t.node} ${t.daemon}, not this one (${here.node} ${here.daemon}); "tlsmgr-ctl install" switches it` });
        } else {
          out.push({ level: 'ok', text: `master.cf runs ${ENTRY_NAME} for ${service}/unix: ${t.node} ${t.daemon}` });
        }
      }
    }
  }

  const m = masterPid(config.queueDirectory);
  if (m.state === 'unknown') {
    out.push({ level: 'warning', text: `cannot tell whether master(8) runs: ${m.why}` });
  } else if (m.state === 'stopped') {
    out.push({ level: 'ok', text: 'Postfix is not running' });
  } else {
    const procs = serviceProcesses(m.pid, service);
    if (procs.length === 0) out.push({ level: 'ok', text: `master(8) pid ${m.pid} runs no ${service} process now (it starts one on demand)` });
    for (const p of procs) {
      const isNode = /^node/.test(basename(p.exe));
      if (isNode === ours) {
        out.push({ level: 'ok', text: `master(8) pid ${m.pid} runs ${service} as pid ${p.pid}: ${p.exe || p.argv[0]}` });
      } else {
        out.push({ level: 'warning', text: `master(8) pid ${m.pid} runs ${service} as pid ${p.pid}: ${p.exe || p.argv[0]}, ` +
          `not what master.cf names (postfix reload replaces it)` });
      }
    }
  }
  return out;
}

async function runCheck(_args: ParsedArgs, ctx: CtlContext): Promise<number> {
  const findings: Finding[] = [checkNode(), ...checkNativeModules()];
  const warnings: string[] = [];
  let config: TlsmgrConfig | undefined;
  const files = existsSync(join(ctx.configDir, 'tlsmgr.cf'))
    ? `${join(ctx.configDir, 'main.cf')} and tlsmgr.cf parse` : `${join(ctx.configDir, 'main.cf')} parses`;
  try {
    config = loadConfig({ configDir: ctx.configDir, overrides: [], warn: (m) => warnings.push(m) }).config;
    findings.push({ level: 'ok', text: files });
  } catch (err) {
    findings.push({ level: 'error', text: `configuration: ${firstLine(err)}` });
  }
  for (const w of warnings) findings.push({ level: 'warning', text: w });
  if (config !== undefined) {
    let owner: { uid: number } | undefined;
    try {
      owner = checkMailOwner(config);
      findings.push({ level: 'ok', text: `mail_owner ${config.mailOwner} (uid ${owner.uid})` });
    } catch (err) {
      findings.push({ level: 'error', text: firstLine(err) });
    }
    if (owner !== undefined) findings.push(...(await checkFiles(config, owner)));
    findings.push(...checkMaster(ctx, config));
  }
  for (const f of findings) ctx.io.out(`${f.level}: ${f.text}`);
  return findings.every((f) => f.level === 'ok') ? 0 : 1;
}

export const checkCommand: CtlCommand = {
  name: 'check',
  synopsis: 'check',
  summary: 'check node, the native modules, the configuration, file and socket modes, and what master(8) runs',
  args: {},
  run: runCheck,
};
