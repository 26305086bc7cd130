/*
 * NAME
 *   config/maincf - read main.cf into an ordered name -> raw value table
 * DESCRIPTION
 *   readLogicalLines() is readllines(): lines whose first non-blank character is '#' and
 *   all-blank lines are dropped, also in the middle of a continued entry; a line that starts
 *   with white space is appended to the previous one as is (no separator is inserted, its
 *   leading blanks are kept). A logical line that itself starts with white space (nothing
 *   before it) is skipped with a warning. Each logical line carries the number of its first
 *   physical line.
 *
 *   splitNameVal() is split_nameval(): "name = value", the name ends at white space or '=',
 *   blanks around '=' and trailing blanks are removed. It returns Postfix's error text
 *   instead of throwing, because its callers (main.cf and -o) word the fatal differently.
 *
 *   parseMainCf() is dict_load_fp(): values are stored raw (unexpanded); a later definition
 *   replaces an earlier one in place, with a warning when the value differs. readMainCf()
 *   opens and reads the file as dict_load_file_xt()/mail_conf_suck() do, through
 *   readCfFile(), which also serves the optional tlsmgr.cf (config/tlsmgrcf.ts).
 *
 *   Secrets: Postfix echoes values and line text in these messages; here no message shows
 *   the value of a parameter whose name contains "password" or "secret" (isSecretName()),
 *   nor a malformed or whitespace-led line that contains either word. A file that holds
 *   secrets (opts.hideValues: the redis: configuration file) shows no value and no line
 *   text at all: a malformed line there may be the password itself.
 * LIMITS
 *   The file is decoded as UTF-8. As in C, a NUL character ends the logical line's text.
 *   Postfix re-reads a file modified within the last second ("hot" file); this reads once.
 * DIAGNOSTICS
 *   FatalError "<path>, line <n>: missing attribute name: \"<text>\"",
 *   "<path>, line <n>: missing '=' after attribute name: \"<text>\"",
 *   "open <path>: <strerror>", "fstat <path>: <strerror>", "read <path>: <strerror>".
 *   Warnings "<path>, line <n>: overriding earlier entry: <name>=<old value>" and
 *   "<path>: logical line must not start with whitespace: \"<first 30 chars>...\"".
 *   Without the value or text where it may be secret (above): "... <name> (value not
 *   shown)", "... attribute name (text not shown)", "<path>, line <n>: logical line must
 *   not start with whitespace (text not shown)".
 * SEE ALSO
 *   util/readlline.c, util/split_nameval.c, util/dict.c (dict_load_fp,
 *   dict_load_file_xt), global/mail_conf.c (mail_conf_suck)
 */

import { closeSync, fstatSync, lstatSync, openSync, readFileSync, type Stats } from 'node:fs';
import { FatalError, strerror } from '../util/errors.js';
import { isCSpace } from './units.js';

export interface LogicalLine {
  /** The joined text of the logical line (comments and blank lines removed). */
  readonly text: string;
  /** 1-based number of its first non-comment physical line. */
  readonly line: number;
}

type Warn = (msg: string) => void;
const noWarn: Warn = () => undefined;

/** A parameter whose value must never be logged: its name contains "password" or "secret". */
export function isSecretName(name: string): boolean {
  return /password|secret/i.test(name);
}

/* mayShow - whether line text may appear in a message (no secret-looking word in it) */
function mayShow(text: string, hideValues: boolean): boolean {
  return !hideValues && !isSecretName(text);
}

function isBlankOrComment(line: string): boolean {
  let i = 0;
  while (i < line.length && isCSpace(line[i])) i++;
  return i === line.length || line[i] === '#';
}

/** readllines() over a whole file's text; hideValues: never echo line text (a file with secrets). */
export function readLogicalLines(text: string, path: string, warn: Warn = noWarn, hideValues = false): LogicalLine[] {
  const lines = text.split('\n');
  const out: LogicalLine[] = [];
  let buf = '';
  let first = 0;
  let lineno = 0;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    const hasNewline = i < lines.length - 1;
    // An unterminated last line counts only when it is not empty (readllines).
    if (hasNewline || line.length > 0) lineno++;
    if (!isBlankOrComment(line)) {
      if (buf.length === 0) first = lineno;
      buf += line;
    }
    if (buf.length === 0) continue;
    // The logical line goes on while the next physical line starts with '#' or white space
    // (an empty line starts with its newline); it ends at EOF or any other character.
    let next: string | undefined;
    if (i + 1 < lines.length) next = lines[i + 1].length > 0 ? lines[i + 1][0] : (i + 1 < lines.length - 1 ? '\n' : undefined);
    if (next !== undefined && (next === '#' || isCSpace(next))) continue;
    if (isCSpace(buf[0]) && !mayShow(buf, hideValues)) {
      warn(`${path}, line ${first}: logical line must not start with whitespace (text not shown)`);
    } else if (isCSpace(buf[0])) {
      warn(`${path}: logical line must not start with whitespace: "${buf.slice(0, 30)}${buf.length > 30 ? '...' : ''}"`);
    } else {
      out.push({ text: buf, line: first });
    }
    buf = '';
  }
  return out;
}

export type NameValue = { name: string; value: string } | { error: string };

/** split_nameval(): name and value, or the error text ("missing attribute name", ...). */
export function splitNameVal(text: string): NameValue {
  let np = 0;
  while (np < text.length && isCSpace(text[np])) np++;
  if (np === text.length || text[np] === '=') return { error: 'missing attribute name' };
  let ep = np;
  while (ep < text.length && !isCSpace(text[ep]) && text[ep] !== '=') ep++;
  let cp = ep;
  while (cp < text.length && isCSpace(text[cp])) cp++;
  if (text[cp] !== '=') return { error: "missing '=' after attribute name" };
  let vp = cp + 1;
  while (vp < text.length && isCSpace(text[vp])) vp++;
  let end = text.length;
  while (end > vp && isCSpace(text[end - 1])) end--;
  return { name: text.slice(np, ep), value: text.slice(vp, end) };
}

export interface ParseMainCfOptions {
  /** Existing table to update (Postfix enters config_directory before reading main.cf). */
  readonly into?: Map<string, string>;
  readonly warn?: Warn;
  /** The file holds secrets: no message shows a value or line text (only names and line numbers). */
  readonly hideValues?: boolean;
}

/** dict_load_fp(): parse main.cf text into (or onto) an ordered name -> raw value Map. */
export function parseMainCf(text: string, path: string, opts: ParseMainCfOptions = {}): Map<string, string> {
  const table = opts.into ?? new Map<string, string>();
  const warn = opts.warn ?? noWarn;
  const hide = opts.hideValues ?? false;
  for (const ll of readLogicalLines(text, path, warn, hide)) {
    const nul = ll.text.indexOf('\0');
    const cstr = nul < 0 ? ll.text : ll.text.slice(0, nul);
    const nv = splitNameVal(cstr);
    if ('error' in nv) {
      throw new FatalError(`${path}, line ${ll.line}: ${nv.error}${mayShow(cstr, hide) ? `: "${cstr}"` : ' (text not shown)'}`);
    }
    const old = table.get(nv.name);
    if (old !== undefined && old !== nv.value) {
      const shown = hide || isSecretName(nv.name) ? `${nv.name} (value not shown)` : `${nv.name}=${old}`;
      warn(`${path}, line ${ll.line}: overriding earlier entry: ${shown}`);
    }
    table.set(nv.name, nv.value);
  }
  return table;
}

/** A configuration file's text and the fstat() of the very file that was read. */
export interface CfFile {
  readonly text: string;
  readonly stat: Stats;
}

/**
 * readCfFile - open, fstat and read a configuration file as dict_load_file_xt() does.
 * optional: a path that does not exist (ENOENT, and not a dangling symbolic link) gives
 * undefined instead of the fatal error.
 */
export function readCfFile(path: string, optional?: false): CfFile;
export function readCfFile(path: string, optional: true): CfFile | undefined;
export function readCfFile(path: string, optional = false): CfFile | undefined {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    if (optional && (err as NodeJS.ErrnoException).code === 'ENOENT' && !isSymlink(path)) return undefined;
    throw new FatalError(`open ${path}: ${strerror(err)}`, { cause: err });
  }
  try {
    let stat: Stats;
    try {
      stat = fstatSync(fd);
    } catch (err) {
      throw new FatalError(`fstat ${path}: ${strerror(err)}`, { cause: err });
    }
    try {
      // open(2) of a directory succeeds and the read fails: Postfix then says "read".
      return { text: readFileSync(fd, 'utf8'), stat };
    } catch (err) {
      throw new FatalError(`read ${path}: ${strerror(err)}`, { cause: err });
    }
  } finally {
    closeSync(fd);
  }
}

/* isSymlink - a dangling symbolic link is a configuration mistake, not an absent file */
function isSymlink(path: string): boolean {
  try {
    return lstatSync(path).isSymbolicLink();
  } catch {
    return false;
  }
}

/** dict_load_file_xt() + the msg_fatal() of mail_conf_suck(): read and parse `path`. */
export function readMainCf(path: string, opts: ParseMainCfOptions = {}): Map<string, string> {
  return parseMainCf(readCfFile(path).text, path, opts);
}
