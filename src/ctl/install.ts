/*
 * NAME
 *   ctl/install - tlsmgr-ctl install and uninstall: switch master(8) to this tlsmgr and back
 * SYNOPSIS
 *   tlsmgr-ctl [-c config_dir] install [--dry-run]
 *   tlsmgr-ctl [-c config_dir] uninstall [--dry-run]
 * DESCRIPTION
 *   install makes master(8) run this package's daemon for the "$tlsmgr_service_name unix"
 *   service (tlsmgr, as Postfix's clients find it):
 *   1. writes $daemon_directory/tlsmgr-node (ctl/entry.ts), a root-owned 0755 script that
 *      execs this node with bin/tlsmgr, unless an identical one is there; Postfix's own
 *      $daemon_directory/tlsmgr is never touched;
 *   2. copies master.cf to master.cf.tlsmgr-ctl.<time> beside it (ctl/files.ts), then
 *      changes only that service's command field with `postconf -F`: its first word
 *      "tlsmgr" becomes "tlsmgr-node", its arguments stay;
 *   3. runs `postfix check`; when it fails, the command field is put back and a new
 *      entry removed, and install fails;
 *   4. runs `postfix reload` when `postfix status` says Postfix runs (a failing status with
 *      a live master.pid is an error): master(8) then replaces the running tlsmgr.
 *   When the command field already reads tlsmgr-node and the entry runs this very node
 *   and package, install says so and changes nothing. After an upgrade that moved node
 *   or the package, it rewrites only the entry.
 *
 *   uninstall does the opposite: the command field's first word goes back to "tlsmgr"
 *   (after a backup of master.cf; `postfix check`; reload when running), then the entry is
 *   removed. With the field already "tlsmgr" and no entry, there is nothing to do.
 *
 *   Both refuse, before changing anything, when root would write into or run from a path
 *   that someone else could change (ctl/trusted.ts): $daemon_directory, master.cf, and for
 *   install the node binary, the package directory and everything in its package.json,
 *   bin/, dist/ and node_modules/ (that code runs as root until the daemon drops
 *   privileges). They refuse a command field other than tlsmgr or
 *   tlsmgr-node (someone else's arrangement), a $daemon_directory/tlsmgr-node not written
 *   by tlsmgr-ctl, and (uninstall) a $daemon_directory without Postfix's tlsmgr.
 *   --dry-run makes the same checks and prints what would be done ("would ..."), changing
 *   nothing and running neither `postfix check` nor `postfix reload`. Without --dry-run
 *   both must run as root. When `postfix reload` fails, the change stays (it
 *   passed `postfix check`) and the command fails: reload by hand.
 * DIAGNOSTICS
 *   Progress on standard output, one "tlsmgr-ctl: ..." line per step. Exit 0 done or
 *   nothing to do, 1 refused or failed (CtlError "...", and the trust problems each on a
 *   "tlsmgr-ctl: error: ..." line first).
 * SEE ALSO
 *   postconf(1) -F, postfix(1), master(5), ctl/entry.ts, ctl/files.ts, ctl/trusted.ts
 */

import { existsSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { loadConfig } from '../config/load.js';
import type { ParsedArgs } from './args.js';
import { CtlError, type CtlCommand, type CtlContext } from './command.js';
import { ENTRY_NAME, POSTFIX_TLSMGR, packageDaemon, packageRoot, readEntry, renderEntry, type DaemonTarget } from './entry.js';
import { backupFile, removeFile, writeFileSafely } from './files.js';
import { Postfix, executable, findPostfixTools } from './postfix.js';
import { masterPid } from './procs.js';
import { pathProblems, treeProblems } from './trusted.js';

/** What of the package tree runs as root under master(8) (a checkout's run/, test/... do not). */
const PACKAGE_CODE: readonly string[] = ['package.json', 'bin', 'dist', 'node_modules'];

/** What both commands start from. */
interface Setup {
  readonly service: string;
  readonly daemonDir: string;
  readonly queueDir: string;
  readonly entryPath: string;
  readonly masterCf: string;
  readonly pf: Postfix;
  /** The command field now, its first word, and the rest (arguments, with their leading space). */
  readonly command: string;
  readonly word0: string;
  readonly rest: string;
}

function say(ctx: CtlContext, line: string): void {
  ctx.io.out(`tlsmgr-ctl: ${line}`);
}

function requireRoot(name: string, dry: boolean): void {
  if (dry || process.geteuid?.() === 0) return;
  throw new CtlError(`${name} must run as root: master.cf and $daemon_directory are root's (--dry-run shows what it would do)`);
}

/* setup - read the configuration and master.cf's entry for the tlsmgr service */
function setup(ctx: CtlContext): Setup {
  const { config } = loadConfig({ configDir: ctx.configDir, overrides: [], warn: (m) => ctx.io.err(`tlsmgr-ctl: warning: ${m}`) });
  const daemonDir = config.daemonDirectory;
  if (!isAbsolute(daemonDir)) throw new CtlError(`daemon_directory = ${daemonDir}: not an absolute path`);
  const service = config.tlsmgrServiceName;
  const masterCf = join(ctx.configDir, 'master.cf');
  const pf = new Postfix(ctx.configDir, findPostfixTools());
  const command = pf.masterCommand(service);
  if (command === undefined) throw new CtlError(`${masterCf} has no "${service} unix" service`);
  const word0 = command.split(/\s/, 1)[0];
  return {
    service, daemonDir, queueDir: config.queueDirectory, entryPath: join(daemonDir, ENTRY_NAME), masterCf, pf,
    command, word0, rest: command.slice(word0.length),
  };
}

/* refuseUntrusted - stop when any of the problems exists */
function refuseUntrusted(ctx: CtlContext, problems: readonly string[], what: string): void {
  if (problems.length === 0) return;
  for (const p of problems) ctx.io.err(`tlsmgr-ctl: error: ${p}`);
  throw new CtlError(`not ${what}: root would write into or run from paths that others can change (see above)`);
}

/* refuseForeignCommand - a command field that is neither ours nor Postfix's */
function refuseForeignCommand(s: Setup): void {
  if (s.word0 === ENTRY_NAME || s.word0 === POSTFIX_TLSMGR) return;
  throw new CtlError(`${s.masterCf}: the ${s.service}/unix service runs "${s.word0}", neither Postfix's ` +
    `${POSTFIX_TLSMGR} nor ${ENTRY_NAME}; not changing it`);
}

/** One change: a dry run prints "would <would>"; otherwise apply() makes it and returns the line to print. */
interface Step {
  readonly would: string;
  readonly apply: () => string;
}

function perform(ctx: CtlContext, dry: boolean, steps: readonly Step[]): void {
  for (const step of steps) say(ctx, dry ? `dry run: would ${step.would}` : step.apply());
}

/* checkOrUndo - `postfix check`; on failure undo() and fail */
function checkOrUndo(ctx: CtlContext, s: Setup, undo: () => void): string {
  const r = s.pf.check();
  if (r.status === 0) {
    for (const line of (r.stderr + r.stdout).split('\n')) if (line.trim() !== '') ctx.io.err(line);
    return `postfix -c ${s.pf.configDir} check: ok`;
  }
  let undone = 'the change is undone';
  try {
    undo();
  } catch (err) {
    undone = `undoing the change failed too: ${(err as Error).message}`;
  }
  const output = (r.stderr + r.stdout).trim();
  throw new CtlError(`postfix -c ${s.pf.configDir} check failed (exit status ${r.status}); ${undone}` +
    (output === '' ? ' (postfix check logs why to the mail log)' : `:\n${output}`));
}

/*
 * isRunning - `postfix status`; its exit status 1 means "not running" but also "postfix failed",
 * so a live master.pid (readable by root) with a failing status is an error, not "not running".
 */
function isRunning(s: Setup): boolean {
  if (s.pf.running()) return true;
  const m = masterPid(s.queueDir);
  if (m.state === 'running') {
    throw new CtlError(`postfix -c ${s.pf.configDir} status fails (see the mail log) although master(8) runs as pid ${m.pid}`);
  }
  return false;
}

/* reloadStep - `postfix reload` when Postfix runs */
function reloadStep(ctx: CtlContext, s: Setup, running: boolean, what: string): Step[] {
  if (!running) return [];
  return [{
    would: `run postfix -c ${ctx.configDir} reload (Postfix is running)`,
    apply: () => {
      try {
        s.pf.reload();
      } catch (err) {
        throw new CtlError(`${(err as Error).message}; the change is in place: reload Postfix by hand`, { cause: err });
      }
      return `postfix -c ${ctx.configDir} reload: master(8) now starts ${what} for ${s.service}/unix`;
    },
  }];
}

function describeTarget(t: DaemonTarget): string {
  return `${t.node}${t.nodeArgs.length ? ` ${t.nodeArgs.join(' ')}` : ''} ${t.daemon}`;
}

/* switchCommandSteps - back up master.cf, then set the service's command field (onChanged after) */
function switchCommandSteps(s: Setup, newCommand: string, onChanged: () => void): Step[] {
  return [
    {
      would: `copy ${s.masterCf} to ${s.masterCf}.tlsmgr-ctl.<time>`,
      apply: () => `saved ${s.masterCf} as ${backupFile(s.masterCf)}`,
    },
    {
      would: `change ${s.service}/unix/command in ${s.masterCf}: "${s.command}" -> "${newCommand}"`,
      apply: () => {
        s.pf.setMasterCommand(s.service, newCommand);
        onChanged();
        return `${s.masterCf}: ${s.service}/unix/command: "${s.command}" -> "${newCommand}"`;
      },
    },
  ];
}

async function runInstall(args: ParsedArgs, ctx: CtlContext): Promise<number> {
  const dry = args.flags.has('--dry-run');
  requireRoot('install', dry);
  const s = setup(ctx);
  refuseForeignCommand(s);
  const root = packageRoot();
  const target = packageDaemon(root);
  refuseUntrusted(ctx, [
    ...pathProblems(s.daemonDir), ...pathProblems(s.masterCf), ...pathProblems(target.node), ...pathProblems(root),
    ...PACKAGE_CODE.flatMap((name) => (existsSync(join(root, name)) ? treeProblems(join(root, name)) : [])),
  ], 'installing');
  const entry = readEntry(s.entryPath);
  if (entry.kind === 'foreign') throw new CtlError(`${s.entryPath} exists and is ${entry.why}; not replacing it`);
  const text = renderEntry(target);
  const entryOk = entry.kind === 'ours' && entry.text === text;
  const commandOk = s.word0 === ENTRY_NAME;
  if (entryOk && commandOk) {
    say(ctx, `master(8) already runs this tlsmgr for ${s.service}/unix (${s.entryPath}: ${describeTarget(target)}); nothing to do`);
    return 0;
  }
  const running = isRunning(s);
  const newCommand = ENTRY_NAME + s.rest;
  let wroteNew = false;
  let changed = false;
  const undo = (): void => {
    if (changed) s.pf.setMasterCommand(s.service, s.command);
    if (wroteNew) removeFile(s.entryPath);
  };
  const steps: Step[] = [];
  if (!entryOk) {
    steps.push({
      would: `write ${s.entryPath} (root, mode 0755): exec ${describeTarget(target)}`,
      apply: () => {
        writeFileSafely(s.daemonDir, ENTRY_NAME, text, 0o755);
        wroteNew = entry.kind === 'absent';
        return `wrote ${s.entryPath} (root, mode 0755): exec ${describeTarget(target)}`;
      },
    });
  }
  if (!commandOk) {
    steps.push(...switchCommandSteps(s, newCommand, () => {
      changed = true;
    }));
  }
  steps.push({ would: `run postfix -c ${ctx.configDir} check`, apply: () => checkOrUndo(ctx, s, undo) });
  steps.push(...reloadStep(ctx, s, running, target.daemon));
  perform(ctx, dry, steps);
  if (!running) say(ctx, `Postfix is not running; master(8) will run this tlsmgr once it starts`);
  if (dry) say(ctx, 'dry run: nothing changed');
  return 0;
}

async function runUninstall(args: ParsedArgs, ctx: CtlContext): Promise<number> {
  const dry = args.flags.has('--dry-run');
  requireRoot('uninstall', dry);
  const s = setup(ctx);
  refuseForeignCommand(s);
  refuseUntrusted(ctx, [...pathProblems(s.daemonDir), ...pathProblems(s.masterCf)], 'uninstalling');
  const entry = readEntry(s.entryPath);
  const commandOk = s.word0 === POSTFIX_TLSMGR;
  if (entry.kind === 'foreign') ctx.io.err(`tlsmgr-ctl: warning: leaving ${s.entryPath} alone: it is ${entry.why}`);
  if (commandOk && entry.kind !== 'ours') {
    say(ctx, `master.cf runs Postfix's own ${POSTFIX_TLSMGR} for ${s.service}/unix and there is no ${s.entryPath} of ours; nothing to do`);
    return 0;
  }
  const postfixOwn = join(s.daemonDir, POSTFIX_TLSMGR);
  if (!commandOk && !executable(postfixOwn)) {
    throw new CtlError(`${postfixOwn} is missing: no Postfix tlsmgr to switch back to`);
  }
  const steps: Step[] = [];
  if (!commandOk) {
    const newCommand = POSTFIX_TLSMGR + s.rest;
    const running = isRunning(s);
    let changed = false;
    steps.push(...switchCommandSteps(s, newCommand, () => {
      changed = true;
    }));
    steps.push({
      would: `run postfix -c ${ctx.configDir} check`,
      apply: () => checkOrUndo(ctx, s, () => {
        if (changed) s.pf.setMasterCommand(s.service, s.command);
      }),
    });
    steps.push(...reloadStep(ctx, s, running, `Postfix's ${postfixOwn}`));
  }
  if (entry.kind === 'ours') {
    steps.push({
      would: `remove ${s.entryPath}`,
      apply: () => (removeFile(s.entryPath) ? `removed ${s.entryPath}` : `${s.entryPath} was gone already`),
    });
  }
  perform(ctx, dry, steps);
  if (dry) say(ctx, 'dry run: nothing changed');
  return 0;
}

export const installCommand: CtlCommand = {
  name: 'install',
  synopsis: 'install [--dry-run]',
  summary: 'make master(8) run this tlsmgr for the tlsmgr unix service (writes $daemon_directory/tlsmgr-node)',
  args: { flags: ['--dry-run'] },
  run: runInstall,
};

export const uninstallCommand: CtlCommand = {
  name: 'uninstall',
  synopsis: 'uninstall [--dry-run]',
  summary: "give the tlsmgr unix service back to Postfix's own tlsmgr and remove $daemon_directory/tlsmgr-node",
  args: { flags: ['--dry-run'] },
  run: runUninstall,
};
