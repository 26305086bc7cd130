/*
 * NAME
 *   ctl/args - the tlsmgr-ctl command line: global options, the command, its options
 * SYNOPSIS
 *   splitCommandLine(argv): { configDir?, help, command?, rest }
 *   parseCommandArgs(command, words, spec): ParsedArgs
 *   class UsageError
 * DESCRIPTION
 *   tlsmgr-ctl [-c config_dir] [-h] command [command options and operands]
 *
 *   splitCommandLine() reads the global options up to the first word that is not an
 *   option: that word is the command, everything after it is the command's. -c takes
 *   config_dir as the next word or attached ("-c /etc/postfix-out", "-c/etc/postfix-out"),
 *   as postconf(1) and postfix(1) do; the last -c wins. -h and --help ask for the usage
 *   text. "--" ends the global options.
 *
 *   parseCommandArgs() reads a command's words against its ArgSpec: the long flags it
 *   knows (--dry-run, --json, ...), -c config_dir again (so that "tlsmgr-ctl install -c
 *   DIR" works too), -h/--help, and operands, whose count and values are checked. "--"
 *   ends the options; a word "-" is an operand.
 * DIAGNOSTICS
 *   UsageError (the dispatcher prints it and exits 2): "invalid option: <word>",
 *   "option -c needs a config_dir argument", "<command>: unknown option <word>",
 *   "<command>: too many arguments: <word>", "<command>: missing argument: <names>",
 *   "<command>: invalid argument <word> (expected <values>)". The `command` field says
 *   whose usage line goes with it (undefined: the global one).
 * SEE ALSO
 *   postconf(1), postfix(1): -c config_dir
 */

export class UsageError extends Error {
  /** The command whose usage line the message goes with; undefined for the global one. */
  readonly command: string | undefined;
  constructor(message: string, command?: string) {
    super(message);
    this.name = 'UsageError';
    this.command = command;
  }
}

/** What a command accepts besides -c and -h. */
export interface ArgSpec {
  /** Long flags without a value, e.g. "--dry-run". */
  readonly flags?: readonly string[];
  /** How many operands, at least and at most (default 0 and 0). */
  readonly minOperands?: number;
  readonly maxOperands?: number;
  /** Allowed values of each operand (when set). */
  readonly operandValues?: readonly string[];
  /** How the operands read in messages and usage lines, e.g. "[smtpd|smtp|lmtp|all]". */
  readonly operandNames?: string;
}

export interface ParsedArgs {
  /** The flags given, as spelled in the spec. */
  readonly flags: ReadonlySet<string>;
  readonly operands: readonly string[];
  /** A -c given after the command; it wins over one given before. */
  readonly configDir: string | undefined;
  /** -h or --help after the command. */
  readonly help: boolean;
}

export interface CommandLine {
  readonly configDir: string | undefined;
  readonly help: boolean;
  readonly command: string | undefined;
  readonly rest: readonly string[];
}

/* takeConfigDir - the argument of -c at words[i] (attached or next); returns the index consumed */
function takeConfigDir(words: readonly string[], i: number, command?: string): { dir: string; next: number } {
  const w = words[i];
  if (w.length > 2) return { dir: w.slice(2), next: i };
  if (i + 1 >= words.length || words[i + 1] === '') throw new UsageError('option -c needs a config_dir argument', command);
  return { dir: words[i + 1], next: i + 1 };
}

/** splitCommandLine - global options, then the command and its words. */
export function splitCommandLine(argv: readonly string[]): CommandLine {
  let configDir: string | undefined;
  let help = false;
  let i = 0;
  for (; i < argv.length; i++) {
    const w = argv[i];
    if (w === '--') {
      i++;
      break;
    }
    if (w === '-h' || w === '--help') {
      help = true;
      continue;
    }
    if (w.startsWith('-c')) {
      const r = takeConfigDir(argv, i);
      configDir = r.dir;
      i = r.next;
      continue;
    }
    if (w.length > 1 && w.startsWith('-')) throw new UsageError(`invalid option: ${w}`);
    break;
  }
  return { configDir, help, command: argv[i], rest: argv.slice(i + 1) };
}

/** parseCommandArgs - a command's options and operands, checked against its spec. */
export function parseCommandArgs(command: string, words: readonly string[], spec: ArgSpec): ParsedArgs {
  const flags = new Set<string>();
  const operands: string[] = [];
  let configDir: string | undefined;
  let help = false;
  let options = true;
  for (let i = 0; i < words.length; i++) {
    const w = words[i];
    if (options && w === '--') {
      options = false;
      continue;
    }
    if (options && w.length > 1 && w.startsWith('-')) {
      if (w === '-h' || w === '--help') help = true;
      else if (w.startsWith('-c') && !w.startsWith('--')) {
        const r = takeConfigDir(words, i, command);
        configDir = r.dir;
        i = r.next;
      } else if (spec.flags?.includes(w)) flags.add(w);
      else throw new UsageError(`${command}: unknown option ${w}`, command);
      continue;
    }
    operands.push(w);
  }
  const min = spec.minOperands ?? 0;
  const max = spec.maxOperands ?? 0;
  if (!help) {
    if (operands.length > max) throw new UsageError(`${command}: too many arguments: ${operands[max]}`, command);
    if (operands.length < min) throw new UsageError(`${command}: missing argument: ${spec.operandNames ?? 'operand'}`, command);
    for (const o of operands) {
      if (spec.operandValues && !spec.operandValues.includes(o)) {
        throw new UsageError(`${command}: invalid argument ${o} (expected ${spec.operandValues.join(', ')})`, command);
      }
    }
  }
  return { flags, operands, configDir, help };
}
