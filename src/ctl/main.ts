/*
 * NAME
 *   ctl/main - tlsmgr-ctl: the operator's command (bin/tlsmgr-ctl)
 * SYNOPSIS
 *   tlsmgr-ctl [-c config_dir] command [options]
 *   tlsmgr-ctl help [command]
 *   main(argv, io, env, commands?): Promise<number>        run(): void
 * DESCRIPTION
 *   One dispatcher for every subcommand: COMMANDS lists the modules (each a CtlCommand,
 *   ctl/command.ts); a new subcommand is one more module and one more entry here.
 *   The configuration directory is -c config_dir (before or after the command, as in
 *   postconf(1)), else $MAIL_CONFIG, else /etc/postfix; it is made absolute.
 *
 *   `tlsmgr-ctl help`, -h and --help print the usage text on standard output and exit 0;
 *   `tlsmgr-ctl help command` and `tlsmgr-ctl command -h` print that command's.
 * DIAGNOSTICS
 *   Exit status 2, with the message and a usage line on standard error: no command, an
 *   unknown command, an unknown option, a missing option argument, too many or too few
 *   operands, an operand that is not one of the allowed values (ctl/args.ts).
 *   Exit status 1: "tlsmgr-ctl: fatal: <message>" on standard error for a command that
 *   cannot go on (CtlError, a configuration FatalError), or what the command reports.
 *   Exit status 0: done.
 * SEE ALSO
 *   ctl/args.ts, ctl/command.ts, ctl/install.ts, ctl/check.ts, ctl/status.ts, ctl/metrics.ts,
 *   ctl/ping.ts, ctl/flush.ts, ctl/keys.ts (these five talk to the daemon: ctl/control.ts)
 */

import { resolve } from 'node:path';
import { FatalError } from '../util/errors.js';
import { UsageError, parseCommandArgs, splitCommandLine } from './args.js';
import { checkCommand } from './check.js';
import { CtlError, type CtlCommand, type CtlIo } from './command.js';
import { flushCommand } from './flush.js';
import { installCommand, uninstallCommand } from './install.js';
import { keysCommand } from './keys.js';
import { metricsCommand } from './metrics.js';
import { pingCommand } from './ping.js';
import { statusCommand } from './status.js';

export const PROG = 'tlsmgr-ctl';
export const DEFAULT_CONFIG_DIR = '/etc/postfix';

/** Every subcommand, in the order the usage text lists them. */
export const COMMANDS: readonly CtlCommand[] = [
  installCommand, uninstallCommand, checkCommand, statusCommand, metricsCommand, pingCommand, flushCommand, keysCommand,
];

const GLOBAL_USAGE = `usage: ${PROG} [-c config_dir] command [options]`;

function commandUsage(c: CtlCommand): string {
  return `usage: ${PROG} [-c config_dir] ${c.synopsis}`;
}

/** usageText - the full help: usage line and one line per command. */
export function usageText(commands: readonly CtlCommand[] = COMMANDS): string[] {
  const width = Math.max(...commands.map((c) => c.synopsis.length), 'help [command]'.length);
  return [
    GLOBAL_USAGE,
    '',
    'commands:',
    ...commands.map((c) => `  ${c.synopsis.padEnd(width)}  ${c.summary}`),
    `  ${'help [command]'.padEnd(width)}  show this text, or one command's`,
    '',
    `-c config_dir: the Postfix configuration directory (default: $MAIL_CONFIG, else ${DEFAULT_CONFIG_DIR})`,
  ];
}

/** main - run one tlsmgr-ctl command line; resolves to the exit status. `commands`: for tests. */
export async function main(
  argv: readonly string[], io: CtlIo, env: Readonly<Record<string, string | undefined>>, commands: readonly CtlCommand[] = COMMANDS,
): Promise<number> {
  const findCommand = (name: string): CtlCommand | undefined => commands.find((c) => c.name === name);
  try {
    const line = splitCommandLine(argv);
    if (line.command === 'help' || (line.help && line.command === undefined)) {
      const topic = line.command === 'help' ? line.rest : [];
      if (topic.length > 1) throw new UsageError(`help: too many arguments: ${topic[1]}`);
      if (topic.length === 1) {
        const c = findCommand(topic[0]);
        if (!c) throw new UsageError(`help: unknown command ${topic[0]}`);
        io.out(commandUsage(c));
        io.out(`  ${c.summary}`);
      } else {
        for (const l of usageText(commands)) io.out(l);
      }
      return 0;
    }
    if (line.command === undefined) throw new UsageError('no command given');
    const cmd = findCommand(line.command);
    if (!cmd) throw new UsageError(`unknown command ${line.command}`);
    const args = parseCommandArgs(cmd.name, line.rest, cmd.args);
    if (args.help || line.help) {
      io.out(commandUsage(cmd));
      io.out(`  ${cmd.summary}`);
      return 0;
    }
    const configDir = resolve(args.configDir ?? line.configDir ?? (env.MAIL_CONFIG || DEFAULT_CONFIG_DIR));
    return await cmd.run(args, { configDir, io, env });
  } catch (err) {
    if (err instanceof UsageError) {
      const c = err.command === undefined ? undefined : findCommand(err.command);
      io.err(`${PROG}: ${err.message}`);
      io.err(c ? commandUsage(c) : `${GLOBAL_USAGE} ("${PROG} help" lists the commands)`);
      return 2;
    }
    if (err instanceof CtlError || err instanceof FatalError) {
      io.err(`${PROG}: fatal: ${err.message}`);
      return 1;
    }
    io.err(`${PROG}: fatal: unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    return 1;
  }
}

/** bin/tlsmgr-ctl: run main() on the process's arguments and set the exit status. */
export function run(): void {
  const io: CtlIo = {
    out: (l) => process.stdout.write(`${l}\n`),
    err: (l) => process.stderr.write(`${l}\n`),
  };
  main(process.argv.slice(2), io, process.env).then(
    (code) => { process.exitCode = code; },
    () => { process.exitCode = 1; },
  );
}
