/*
 * NAME
 *   cli/options - the generic Postfix daemon command-line options
 * DESCRIPTION
 *   parseDaemonArgs() parses argv (without node and script) like multi_server_main():
 *   getopt(3) with "cdDi:lm:n:o:s:St:uvVz" and opterr = 0. Flags combine ("-lu"), an
 *   option argument may be attached ("-ofoo=bar") or be the next word (even when that
 *   word starts with '-'), "--" ends the options. On Linux Postfix passes "+" in front of
 *   the option string (sys_defs.h PREPEND_PLUS_TO_OPTSTRING), so glibc does NOT permute:
 *   option processing stops at the first non-option word ("-" counts as one), and it and
 *   everything after it are returned in `args`, for the service to reject.
 *
 *   -o values are checked with split_nameval() at once and kept as given (config/load.ts
 *   applies them); -s is converted with atoi() like Postfix; -i and -m are checked after
 *   the whole command line, as mail_params_init() checks max_use and then max_idle.
 *   -n alone names the service: "-o service_name=..." and "-o process_name=..." are kept
 *   like any -o, and config/load.ts puts the real names back over them (read-only).
 * DIAGNOSTICS
 *   FatalError, with multi_server.c's texts: "invalid option: <c>" (also for a missing
 *   option argument: getopt() then returns '?' with optopt = <c>),
 *   "invalid \"-o <arg>\" option value: <error>", "invalid socket_count: <arg>";
 *   and for -m/-i the parameter texts "bad numerical configuration: max_use = <v>",
 *   "invalid max_use parameter value <v> < 1", "parameter max_idle: bad time value or
 *   unit: <v>", "invalid max_idle: <v> (min 1)".
 * SEE ALSO
 *   master/multi_server.c (multi_server_main), util/sys_defs.h (GETOPT)
 */

import { FatalError } from '../util/errors.js';
import { splitNameVal } from '../config/maincf.js';
import { atoi, checkInt, checkTime, parseConfInt, parseTime } from '../config/units.js';

export interface DaemonOptions {
  /** -c: chroot to $queue_directory after pre-init. */
  chroot: boolean;
  /** -d: do not refuse to run with stdin on a tty. */
  noDetachCheck: boolean;
  /** -D: run $debugger_command. */
  debugger: boolean;
  /** -i: max_idle in seconds (Postfix time syntax). */
  maxIdle?: number;
  /** -l: process limit is 1. */
  alone: boolean;
  /** -m: max_use. */
  maxUse?: number;
  /** -n: service name. */
  serviceName?: string;
  /** -o name=value arguments, as given, in order. */
  overrides: string[];
  /** -s: number of listen sockets from fd 6 (default 1). */
  socketCount: number;
  /** -S: stand-alone mode (one request on stdin/stdout). */
  standalone: boolean;
  /** -t: transport type, as given (checked elsewhere). */
  transport?: string;
  /** -u: drop privileges to $mail_owner. */
  unprivileged: boolean;
  /** -v count. */
  verbose: number;
  /** -V: also log to stderr. */
  stderrLog: boolean;
  /** -z: process limit is 0. */
  zeroLimit: boolean;
  /** Words after the options. */
  args: string[];
}

/** Option letters; true when the option takes an argument. */
const OPTSTRING: ReadonlyMap<string, boolean> = new Map([
  ['c', false], ['d', false], ['D', false], ['i', true], ['l', false], ['m', true],
  ['n', true], ['o', true], ['s', true], ['S', false], ['t', true], ['u', false],
  ['v', false], ['V', false], ['z', false],
]);

export function parseDaemonArgs(argv: readonly string[]): DaemonOptions {
  const o: DaemonOptions = {
    chroot: false, noDetachCheck: false, debugger: false, alone: false, overrides: [],
    socketCount: 1, standalone: false, unprivileged: false, verbose: 0, stderrLog: false,
    zeroLimit: false, args: [],
  };
  let maxIdle: string | undefined;
  let maxUse: string | undefined;
  let i = 0;
  for (; i < argv.length; i++) {
    const word = argv[i];
    if (word === '--') {
      i++;
      break;
    }
    if (word.length < 2 || word[0] !== '-') break;
    // Iterate by code point so that a non-ASCII letter is reported whole.
    const letters = Array.from(word.slice(1));
    for (let j = 0; j < letters.length; j++) {
      const c = letters[j];
      const takesArg = OPTSTRING.get(c);
      if (takesArg === undefined) throw new FatalError(`invalid option: ${c}`);
      let arg = '';
      if (takesArg) {
        if (j + 1 < letters.length) arg = letters.slice(j + 1).join('');
        else if (i + 1 < argv.length) arg = argv[++i];
        else throw new FatalError(`invalid option: ${c}`);
        j = letters.length;
      }
      switch (c) {
        case 'c': o.chroot = true; break;
        case 'd': o.noDetachCheck = true; break;
        case 'D': o.debugger = true; break;
        case 'i': maxIdle = arg; break;
        case 'l': o.alone = true; break;
        case 'm': maxUse = arg; break;
        case 'n': o.serviceName = arg; break;
        case 'o': {
          const nv = splitNameVal(arg);
          if ('error' in nv) throw new FatalError(`invalid "-o ${arg}" option value: ${nv.error}`);
          o.overrides.push(arg);
          break;
        }
        case 's':
          if ((o.socketCount = atoi(arg)) <= 0) throw new FatalError(`invalid socket_count: ${arg}`);
          break;
        case 'S': o.standalone = true; break;
        case 't': o.transport = arg; break;
        case 'u': o.unprivileged = true; break;
        case 'v': o.verbose++; break;
        case 'V': o.stderrLog = true; break;
        case 'z': o.zeroLimit = true; break;
      }
    }
  }
  o.args = argv.slice(i);
  // mail_params_init() order: the int table (max_use) before the time table (max_idle).
  if (maxUse !== undefined) o.maxUse = checkInt('max_use', parseConfInt('max_use', maxUse), 1, 0);
  if (maxIdle !== undefined) o.maxIdle = checkTime('max_idle', parseTime('max_idle', maxIdle, 's'), 1, 0);
  return o;
}
