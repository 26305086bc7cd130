/*
 * NAME
 *   ctl/trusted - can anyone but root change what a path names?
 * SYNOPSIS
 *   pathProblems(path, opts?): string[]
 *   treeProblems(root, opts?): string[]
 * DESCRIPTION
 *   What root installs or runs must not be changeable by anyone else: not the file, and
 *   not any directory on the way to it (whoever may write a directory may rename what is
 *   in it and put something else there).
 *
 *   pathProblems() walks an absolute path from / one component at a time with lstat(2),
 *   and follows symbolic links the way the kernel does (a relative target from the link's
 *   directory, an absolute one from /; at most 40 links). Every directory passed, every
 *   link followed and the last object itself must be owned by root (uid 0, or opts.uid),
 *   and none may be writable by group or others. The one exception is a directory with the
 *   sticky bit (/tmp): others may create entries in it but not rename or remove root's,
 *   and the next component, root's, is checked in turn. A link's own mode means nothing.
 *   A path that does not exist is a problem too ("does not exist").
 *
 *   treeProblems() applies the owner and mode rule to everything under a directory (the
 *   package tree: its code runs as root under master(8)), without following links,
 *   stopping after opts.limit entries (default 50000) and after opts.max problems
 *   (default 10), which it reports.
 * LIMITS
 *   ACLs and capabilities are not looked at; group write by gid 0 counts as a problem too.
 *   A check is not a lock: the caller acts on the paths right after, and relies on the
 *   very rule checked (only root could change them meanwhile).
 * DIAGNOSTICS
 *   Problems as text, one per path: "<path>: owned by uid <n>, not by root",
 *   "<path>: writable by group or others (mode <octal>)", "<path>: does not exist",
 *   "<path>: cannot check: <reason>", "<path>: too many levels of symbolic links",
 *   "<path>: not an absolute path".
 * SEE ALSO
 *   Postfix postfix-script (check-warn), OpenSSH secure_filename()
 */

import { lstatSync, readdirSync, readlinkSync, type Stats } from 'node:fs';
import { isAbsolute, join, resolve, sep } from 'node:path';

export interface TrustOptions {
  /** The one owner trusted: default 0 (root); tests pass their own uid. */
  readonly uid?: number;
}

const MAX_LINKS = 40;

function modeText(st: Stats): string {
  return (st.mode & 0o7777).toString(8).padStart(4, '0');
}

/* objectProblem - the owner and mode rule for one lstat() result */
function objectProblem(path: string, st: Stats, uid: number): string | undefined {
  if (st.uid !== uid) return `${path}: owned by uid ${st.uid}, not by ${uid === 0 ? 'root' : `uid ${uid}`}`;
  if (st.isSymbolicLink()) return undefined;
  if ((st.mode & 0o022) !== 0 && !(st.isDirectory() && (st.mode & 0o1000) !== 0)) {
    return `${path}: writable by group or others (mode ${modeText(st)})`;
  }
  return undefined;
}

function lstatOr(path: string): Stats | string {
  try {
    return lstatSync(path);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    return e.code === 'ENOENT' ? `${path}: does not exist` : `${path}: cannot check: ${e.message}`;
  }
}

/** pathProblems - why someone other than root could change what `path` names ([] = nobody). */
export function pathProblems(path: string, opts: TrustOptions = {}): string[] {
  const uid = opts.uid ?? 0;
  if (!isAbsolute(path)) return [`${path}: not an absolute path`];
  const problems: string[] = [];
  const root = lstatOr('/');
  if (typeof root === 'string') return [root];
  const p = objectProblem('/', root, uid);
  if (p) problems.push(p);
  // `todo` holds the components still to walk; `cur` is the real directory reached so far.
  let todo = resolve(path).split(sep).filter((c) => c !== '');
  let cur = '/';
  let links = 0;
  while (todo.length > 0) {
    const next = join(cur, todo[0]);
    const st = lstatOr(next);
    if (typeof st === 'string') {
      problems.push(st);
      return problems;
    }
    const q = objectProblem(next, st, uid);
    if (q) problems.push(q);
    if (st.isSymbolicLink()) {
      if (++links > MAX_LINKS) {
        problems.push(`${path}: too many levels of symbolic links`);
        return problems;
      }
      let target: string;
      try {
        target = readlinkSync(next);
      } catch (err) {
        problems.push(`${next}: cannot check: ${(err as Error).message}`);
        return problems;
      }
      const resolved = resolve(isAbsolute(target) ? '/' : cur, target);
      todo = [...resolved.split(sep).filter((c) => c !== ''), ...todo.slice(1)];
      cur = '/';
      continue;
    }
    cur = next;
    todo = todo.slice(1);
    if (todo.length > 0 && !st.isDirectory()) {
      problems.push(`${next}: not a directory`);
      return problems;
    }
  }
  return problems;
}

export interface TreeOptions extends TrustOptions {
  /** Stop after this many entries (default 50000). */
  readonly limit?: number;
  /** Stop after this many problems (default 10). */
  readonly max?: number;
}

/** treeProblems - entries under `top` (itself included) that someone other than root could change. */
export function treeProblems(top: string, opts: TreeOptions = {}): string[] {
  const uid = opts.uid ?? 0;
  const limit = opts.limit ?? 50_000;
  const max = opts.max ?? 10;
  const problems: string[] = [];
  const stack = [top];
  let seen = 0;
  while (stack.length > 0 && problems.length < max) {
    const p = stack.pop() as string;
    if (++seen > limit) {
      problems.push(`${top}: more than ${limit} entries; not all checked`);
      break;
    }
    const st = lstatOr(p);
    if (typeof st === 'string') {
      problems.push(st);
      continue;
    }
    const q = objectProblem(p, st, uid);
    if (q) problems.push(q);
    if (st.isDirectory()) {
      try {
        for (const name of readdirSync(p)) stack.push(join(p, name));
      } catch (err) {
        problems.push(`${p}: cannot check: ${(err as Error).message}`);
      }
    }
  }
  return problems;
}
