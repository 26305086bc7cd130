/*
 * NAME
 *   ctl/files - write, copy and remove root's files without races
 * SYNOPSIS
 *   writeFileSafely(dir, name, text, mode): void
 *   backupFile(path, now?): string
 *   removeFile(path): boolean
 * DESCRIPTION
 *   writeFileSafely() replaces dir/name so that nobody ever sees it half written and no
 *   link can redirect the write: a new file ".<name>.<random>" in the same directory,
 *   created with O_CREAT|O_EXCL|O_NOFOLLOW (never an existing file or a link), given
 *   `mode` with fchmod(2) (the umask does not apply) and to root with fchown(2) when
 *   running as root, written, fsync()ed, closed, renamed over dir/name, and the directory
 *   fsync()ed. On any error the temporary file is removed.
 *
 *   backupFile() copies a file to "<path>.tlsmgr-ctl.<UTC time, YYYYMMDDThhmmssZ>" beside
 *   it (".1", ".2", ... appended when that name is taken), reading the original without
 *   following a link and creating the copy with O_EXCL, with the original's permission
 *   bits, fsync()ed; returns the copy's path.
 *
 *   removeFile() unlinks a file (false when there was none) and fsync()s its directory.
 *   The directories are the caller's to have checked (ctl/trusted.ts): then only root can
 *   change what these names refer to while this runs.
 * DIAGNOSTICS
 *   CtlError: "cannot write <path>: <reason>", "cannot back up <path>: <reason>",
 *   "cannot remove <path>: <reason>".
 * SEE ALSO
 *   open(2) O_EXCL, O_NOFOLLOW; rename(2); fsync(2)
 */

import { randomBytes } from 'node:crypto';
import {
  closeSync, constants as C, fchmodSync, fchownSync, fstatSync, fsyncSync, openSync, readSync, renameSync,
  unlinkSync, writeSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { CtlError } from './command.js';

/** Largest file backupFile() copies (master.cf is a few kB). */
const BACKUP_MAX = 16 * 1024 * 1024;

/* writeAll - write the whole buffer */
function writeAll(fd: number, buf: Buffer): void {
  for (let off = 0; off < buf.length; ) off += writeSync(fd, buf, off, buf.length - off);
}

/* syncDir - fsync a directory, so that a rename or unlink in it survives a crash */
function syncDir(dir: string): void {
  const fd = openSync(dir, C.O_RDONLY | C.O_DIRECTORY);
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** writeFileSafely - replace dir/name atomically with `text`, mode `mode`, owned by root when root. */
export function writeFileSafely(dir: string, name: string, text: string, mode: number): void {
  const final = join(dir, name);
  const tmp = join(dir, `.${name}.${randomBytes(6).toString('hex')}`);
  let fd: number | undefined;
  let created = false;
  try {
    fd = openSync(tmp, C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW, 0o600);
    created = true;
    fchmodSync(fd, mode);
    if (process.geteuid?.() === 0) fchownSync(fd, 0, 0);
    writeAll(fd, Buffer.from(text, 'utf8'));
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    renameSync(tmp, final);
    created = false;
    syncDir(dir);
  } catch (err) {
    if (fd !== undefined) closeSync(fd);
    if (created) {
      try { unlinkSync(tmp); } catch { /* gone already */ }
    }
    throw new CtlError(`cannot write ${final}: ${(err as Error).message}`, { cause: err });
  }
}

/* stamp - YYYYMMDDThhmmssZ */
function stamp(now: Date): string {
  return now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
}

/** backupFile - a copy of `path` beside it, named by the time; returns its path. */
export function backupFile(path: string, now = new Date()): string {
  let src: number | undefined;
  let dst: number | undefined;
  try {
    src = openSync(path, C.O_RDONLY | C.O_NOFOLLOW | C.O_NONBLOCK);
    const st = fstatSync(src);
    if (!st.isFile()) throw new Error('not a regular file');
    if (st.size > BACKUP_MAX) throw new Error(`larger than ${BACKUP_MAX} bytes`);
    const buf = Buffer.alloc(st.size);
    let n = 0;
    while (n < buf.length) {
      const got = readSync(src, buf, n, buf.length - n, n);
      if (got === 0) break;
      n += got;
    }
    const base = `${path}.tlsmgr-ctl.${stamp(now)}`;
    let copy = '';
    for (let i = 0; i < 100 && dst === undefined; i++) {
      copy = i === 0 ? base : `${base}.${i}`;
      try {
        dst = openSync(copy, C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW, 0o600);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
    }
    if (dst === undefined) throw new Error(`${base}.* all taken`);
    fchmodSync(dst, st.mode & 0o777);
    writeAll(dst, buf.subarray(0, n));
    fsyncSync(dst);
    syncDir(dirname(path));
    return copy;
  } catch (err) {
    throw new CtlError(`cannot back up ${path}: ${(err as Error).message}`, { cause: err });
  } finally {
    if (src !== undefined) closeSync(src);
    if (dst !== undefined) closeSync(dst);
  }
}

/** removeFile - unlink `path`; false when it was not there. */
export function removeFile(path: string): boolean {
  try {
    unlinkSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw new CtlError(`cannot remove ${path}: ${(err as Error).message}`, { cause: err });
  }
  syncDir(dirname(path));
  return true;
}

