/*
 * NAME
 *   ctl/entry - the $daemon_directory/tlsmgr-node script that master(8) runs
 * SYNOPSIS
 *   ENTRY_NAME      packageDaemon(): DaemonTarget
 *   renderEntry(target): string          entryTarget(text): DaemonTarget | undefined
 *   readEntry(path): EntryState
 *   shellQuote(word): string             shebangNodeArgs(text): string[]
 * DESCRIPTION
 *   master(8) runs $daemon_directory/<command> with an environment of its own, without
 *   PATH, so the entry names everything by absolute path. It is a two-command sh(1)
 *   script that execs node with the V8 options of bin/tlsmgr's #! line and the daemon
 *   entry bin/tlsmgr of this package, passing master's arguments on:
 *
 *     #!/bin/sh
 *     # tlsmgr-node: written by `tlsmgr-ctl install`; `tlsmgr-ctl uninstall` removes it.
 *     exec '/usr/bin/node' '--max-semi-space-size=1' ... '/usr/lib/node_modules/tlsmgr/bin/tlsmgr' "$@"
 *
 *   The process master(8) then watches is node itself (exec), with argv[1..] the options
 *   and the script; the daemon's process name stays "tlsmgr" (basename of bin/tlsmgr) and
 *   master passes "-n tlsmgr", the service name. The second line marks the file as ours:
 *   a file of that name without it is never overwritten or removed.
 *
 *   packageDaemon() says what to run: this very node (process.execPath), this package's
 *   bin/tlsmgr (found from this module's own location, dist/src/ctl/ in the package), and
 *   the node options of that file's first line (`#!/usr/bin/env -S node <options>`).
 *   entryTarget() reads the three back from an entry's text (undefined when it is not ours
 *   or not in this form), so that `install` can tell an up-to-date entry from an old one.
 *   readEntry() reads what is at the entry's path without following a link. Writing and
 *   removing it is ctl/files.ts's.
 * DIAGNOSTICS
 *   CtlError: "cannot read the daemon entry <path>: <reason>", "cannot read <path>:
 *   <reason>".
 * SEE ALSO
 *   master(5) command field, ctl/files.ts, ctl/trusted.ts, bin/tlsmgr
 */

import { closeSync, constants as C, lstatSync, openSync, readFileSync, readSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CtlError } from './command.js';

/** The name of our entry in $daemon_directory (master.cf's command field). */
export const ENTRY_NAME = 'tlsmgr-node';
/** Postfix's own daemon, in $daemon_directory and in master.cf's command field. */
export const POSTFIX_TLSMGR = 'tlsmgr';
export const ENTRY_MARKER = `# ${ENTRY_NAME}: written by \`tlsmgr-ctl install\`; \`tlsmgr-ctl uninstall\` removes it.`;
/** Largest entry file read back (ours is a few hundred bytes). */
const ENTRY_MAX = 64 * 1024;

export interface DaemonTarget {
  /** Absolute path of the node binary. */
  readonly node: string;
  /** Node options before the script. */
  readonly nodeArgs: readonly string[];
  /** Absolute path of the daemon's entry script (bin/tlsmgr). */
  readonly daemon: string;
}

/** The package root: this file is dist/src/ctl/entry.js in it. */
export function packageRoot(): string {
  return fileURLToPath(new URL('../../../', import.meta.url)).replace(/\/$/, '');
}

/** shebangNodeArgs - the node options on a `#!/usr/bin/env -S node <options>` first line. */
export function shebangNodeArgs(text: string): string[] {
  const first = text.split('\n', 1)[0];
  const m = /^#!\S*\benv\s+-S\s+node(?:\s+(.*))?$/.exec(first);
  return m?.[1] ? m[1].trim().split(/\s+/) : [];
}

/** packageDaemon - this node, this package's bin/tlsmgr and its node options. */
export function packageDaemon(root = packageRoot()): DaemonTarget {
  const daemon = join(root, 'bin', 'tlsmgr');
  let text: string;
  try {
    text = readFileSync(daemon, 'utf8');
  } catch (err) {
    throw new CtlError(`cannot read the daemon entry ${daemon}: ${(err as Error).message}`, { cause: err });
  }
  return { node: resolve(process.execPath), nodeArgs: shebangNodeArgs(text), daemon };
}

/** shellQuote - one word for sh(1): single quotes, with ' as '\''. */
export function shellQuote(word: string): string {
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

/** renderEntry - the entry script's text. */
export function renderEntry(t: DaemonTarget): string {
  const words = [t.node, ...t.nodeArgs, t.daemon].map(shellQuote).join(' ');
  return `#!/bin/sh\n${ENTRY_MARKER}\nexec ${words} "$@"\n`;
}

/* unquoteWords - the words of a line made of shellQuote() words only, else undefined */
function unquoteWords(line: string): string[] | undefined {
  const words: string[] = [];
  const re = /\s*((?:'[^']*'|\\')+)(?=\s|$)/y;
  let m: RegExpExecArray | null;
  while ((m = re.exec(line)) !== null) {
    words.push(m[1].replace(/\\'|'([^']*)'/g, (_q, inner: string | undefined) => (inner === undefined ? `'` : inner)));
    if (re.lastIndex >= line.length) return words;
  }
  return undefined;
}

/** entryTarget - what an entry written by renderEntry() runs; undefined for any other text. */
export function entryTarget(text: string): DaemonTarget | undefined {
  const lines = text.split('\n');
  if (lines[0] !== '#!/bin/sh' || lines[1] !== ENTRY_MARKER) return undefined;
  const m = /^exec (.*) "\$@"$/.exec(lines[2] ?? '');
  if (!m) return undefined;
  const words = unquoteWords(m[1]);
  if (!words || words.length < 2) return undefined;
  const t = { node: words[0], nodeArgs: words.slice(1, -1), daemon: words[words.length - 1] };
  return renderEntry(t) === text ? t : undefined;
}

export type EntryState =
  | { readonly kind: 'absent' }
  /** A regular file with our marker (target undefined when its exec line is not ours). */
  | { readonly kind: 'ours'; readonly text: string; readonly target: DaemonTarget | undefined }
  /** Something else: not a regular file, or not written by us. */
  | { readonly kind: 'foreign'; readonly why: string };

/** readEntry - what is at `path` now, read without following a link. */
export function readEntry(path: string): EntryState {
  let fd: number;
  try {
    const st = lstatSync(path);
    if (!st.isFile()) return { kind: 'foreign', why: 'not a regular file' };
    fd = openSync(path, C.O_RDONLY | C.O_NOFOLLOW | C.O_NONBLOCK);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'absent' };
    throw new CtlError(`cannot read ${path}: ${(err as Error).message}`, { cause: err });
  }
  try {
    const buf = Buffer.alloc(ENTRY_MAX);
    const n = readSync(fd, buf, 0, ENTRY_MAX, 0);
    const text = buf.subarray(0, n).toString('utf8');
    if (text.split('\n')[1] !== ENTRY_MARKER) return { kind: 'foreign', why: 'not written by tlsmgr-ctl' };
    return { kind: 'ours', text, target: entryTarget(text) };
  } finally {
    closeSync(fd);
  }
}
