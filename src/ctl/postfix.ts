/*
 * NAME
 *   ctl/postfix - run postconf(1) and postfix(1) for one configuration directory
 * SYNOPSIS
 *   findPostfixTools(dirs?): PostfixTools
 *   class Postfix(configDir, tools)
 *     masterCommand(service): string | undefined     the command field of <service>/unix
 *     setMasterCommand(service, value): void
 *     check(): ToolResult       running(): boolean       reload(): void
 * DESCRIPTION
 *   The commands run from absolute paths (the first of /usr/sbin, /usr/local/sbin, /sbin,
 *   /usr/bin that has an executable postconf, and postfix beside it: Postfix's
 *   command_directory), never through $PATH, with an environment of their own: PATH (for
 *   postfix-script), MAIL_CONFIG and nothing from the caller's, so that what root runs does
 *   not depend on the caller's environment. Every run is bounded (60 s, then SIGKILL).
 *
 *   masterCommand() is `postconf -c DIR -Fh SERVICE/unix/command`: the command field of
 *   master.cf with its arguments, as postconf prints it (one line, arguments joined by
 *   spaces), or undefined when master.cf has no such service (postconf then prints only a
 *   warning). setMasterCommand() is `postconf -c DIR -F SERVICE/unix/command=VALUE`, which
 *   rewrites only that entry, and reads the field back to make sure it took.
 *   check() is `postfix -c DIR check`; running() is `postfix -c DIR status`: exit 0 when
 *   master runs, 1 when not and also when postfix(1) fails (its messages then go to syslog
 *   only, not to a pipe), which callers tell apart by master.pid (ctl/procs.ts); reload()
 *   is `postfix -c DIR reload`.
 * DIAGNOSTICS
 *   CtlError: "cannot find postconf in <dirs> (is Postfix installed?)", "<command line>:
 *   exit status <n>: <its stderr>", "<command line> timed out", "postconf did not change
 *   <field>: it reads <value>".
 * SEE ALSO
 *   postconf(1) -F, postfix(1) check, status, reload
 */

import { spawnSync } from 'node:child_process';
import { accessSync, constants as fsConstants } from 'node:fs';
import { join } from 'node:path';
import { CtlError } from './command.js';

export const TOOL_DIRS: readonly string[] = ['/usr/sbin', '/usr/local/sbin', '/sbin', '/usr/bin'];

/** The environment's PATH for postfix-script, which runs find, sed, ... by name. */
const TOOL_PATH = '/usr/sbin:/usr/bin:/sbin:/bin';
const TOOL_TIMEOUT_MS = 60_000;

export interface PostfixTools {
  readonly postconf: string;
  readonly postfix: string;
}

export interface ToolResult {
  readonly status: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Whether `path` is executable by this process. */
export function executable(path: string): boolean {
  try {
    accessSync(path, fsConstants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** findPostfixTools - postconf and postfix by absolute path. */
export function findPostfixTools(dirs: readonly string[] = TOOL_DIRS): PostfixTools {
  for (const d of dirs) {
    const postconf = join(d, 'postconf');
    const postfix = join(d, 'postfix');
    if (executable(postconf) && executable(postfix)) return { postconf, postfix };
  }
  throw new CtlError(`cannot find postconf and postfix in ${dirs.join(', ')} (is Postfix installed?)`);
}

export class Postfix {
  constructor(readonly configDir: string, readonly tools: PostfixTools) {}

  /* run - one bounded run; stdout and stderr as text */
  private run(cmd: string, args: readonly string[]): ToolResult & { line: string } {
    const line = [cmd, ...args].join(' ');
    const r = spawnSync(cmd, args, {
      env: { PATH: TOOL_PATH, MAIL_CONFIG: this.configDir },
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: TOOL_TIMEOUT_MS,
      killSignal: 'SIGKILL',
    });
    if (r.error) {
      const code = (r.error as NodeJS.ErrnoException).code;
      if (code === 'ETIMEDOUT') throw new CtlError(`${line} timed out after ${TOOL_TIMEOUT_MS / 1000} s`);
      throw new CtlError(`${line}: ${r.error.message}`, { cause: r.error });
    }
    return { status: r.status ?? 128, stdout: r.stdout, stderr: r.stderr, line };
  }

  /* runOk - run, and fail unless the exit status is 0 */
  private runOk(cmd: string, args: readonly string[]): ToolResult {
    const r = this.run(cmd, args);
    if (r.status !== 0) throw new CtlError(`${r.line}: exit status ${r.status}: ${(r.stderr || r.stdout).trim()}`);
    return r;
  }

  /** The command field (with arguments) of master.cf's <service>/unix entry, or undefined. */
  masterCommand(service: string): string | undefined {
    const r = this.runOk(this.tools.postconf, ['-c', this.configDir, '-Fh', `${service}/unix/command`]);
    const v = r.stdout.trim();
    return v === '' ? undefined : v;
  }

  /** Change the command field of <service>/unix, and make sure it reads back so. */
  setMasterCommand(service: string, value: string): void {
    const field = `${service}/unix/command`;
    this.runOk(this.tools.postconf, ['-c', this.configDir, '-F', `${field}=${value}`]);
    const now = this.masterCommand(service);
    if (now !== value) throw new CtlError(`postconf did not change ${field}: it reads ${JSON.stringify(now ?? '')}`);
  }

  /** `postfix check`: its exit status and output (its warnings are on stderr). */
  check(): ToolResult {
    return this.run(this.tools.postfix, ['-c', this.configDir, 'check']);
  }

  /** Whether master(8) runs for this configuration directory (`postfix status` exits 0). */
  running(): boolean {
    return this.run(this.tools.postfix, ['-c', this.configDir, 'status']).status === 0;
  }

  /** `postfix reload`. */
  reload(): void {
    this.runOk(this.tools.postfix, ['-c', this.configDir, 'reload']);
  }
}
