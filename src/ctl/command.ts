/*
 * NAME
 *   ctl/command - what a tlsmgr-ctl subcommand module provides, and what it is given
 * SYNOPSIS
 *   interface CtlCommand { name, synopsis, summary, args, run(args, ctx) }
 *   interface CtlContext { configDir, io, env }
 *   class CtlError
 * DESCRIPTION
 *   Each subcommand is one small module exporting a CtlCommand; ctl/main.ts lists them and
 *   dispatches. A command parses nothing itself: its ArgSpec (ctl/args.ts) says which
 *   flags and operands it takes, and run() gets them checked. run() writes its report
 *   through ctx.io (out: standard output, err: standard error) and resolves to the exit
 *   status: 0 done (or nothing to do), 1 failed or found a problem. Usage errors (exit 2)
 *   are the dispatcher's.
 *
 *   A command that cannot go on throws CtlError (or the FatalError of a module it uses);
 *   the dispatcher prints "tlsmgr-ctl: fatal: <message>" and exits 1.
 * SEE ALSO
 *   ctl/main.ts (dispatcher), ctl/args.ts
 */

import type { ArgSpec, ParsedArgs } from './args.js';

export interface CtlIo {
  /** One line of the command's report, to standard output (no newline). */
  out(line: string): void;
  /** One line to standard error (no newline). */
  err(line: string): void;
}

export interface CtlContext {
  /** The Postfix configuration directory: -c, else $MAIL_CONFIG, else /etc/postfix; absolute. */
  readonly configDir: string;
  readonly io: CtlIo;
  readonly env: Readonly<Record<string, string | undefined>>;
}

export interface CtlCommand {
  readonly name: string;
  /** The command's usage after "tlsmgr-ctl [-c config_dir] ", e.g. "install [--dry-run]". */
  readonly synopsis: string;
  /** One line: what it does. */
  readonly summary: string;
  readonly args: ArgSpec;
  run(args: ParsedArgs, ctx: CtlContext): Promise<number>;
}

/** A condition that stops a command: printed as "tlsmgr-ctl: fatal: <message>", exit 1. */
export class CtlError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CtlError';
  }
}
