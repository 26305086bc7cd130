/*
 * NAME
 *   cache/stores/sqlite/file - the SQLite store's file: made fresh, locked, owned, closed
 * SYNOPSIS
 *   DatabaseFile.create(path, { owner?, schema }): DatabaseFile
 *   file.path, file.db              file.close()
 *   openError(path, err): FatalError
 *   SIDE_FILES                      the -wal, -shm and -journal suffixes
 * DESCRIPTION
 *   create():
 *   1. refuses when another process holds the lock on an existing `path` (a second tlsmgr on
 *      the same cache would otherwise delete the first one's database under it);
 *   2. removes `path` and its -wal, -shm and -journal files: every start begins empty, like
 *      Postfix's O_TRUNC, and a file some other program wrote is never opened (a symbolic
 *      link is removed, not followed; a FIFO at the path does not hang the start);
 *   3. creates `path` itself (O_EXCL|O_NOFOLLOW, mode 0600 whatever the umask), chowns it to
 *      `owner` (the daemon runs as $mail_owner after start and must still write it; SQLite,
 *      running as root, gives the -wal and -shm files it creates the owner of the database
 *      file), and holds an exclusive flock(2) on it until close(), as Postfix locks its
 *      btree/hash files;
 *   4. opens it with SQLite (and checks it opened the same inode): WAL journal,
 *      synchronous=OFF (no fsync per write: the cache is emptied at every start anyway, so a
 *      crash loses nothing that would be kept), temporary data in memory (nothing is created
 *      by path after a chroot), no mmap (RSS stays the heap plus a bounded page cache),
 *      small WAL checkpoints (short stalls); then runs `schema` (the caller's tables).
 *   On any failure, what was opened is closed again before create() throws.
 *   close() closes the database, then the locked descriptor (closing any descriptor of the
 *   file drops SQLite's POSIX locks, so the database goes first), once.
 * LIMITS
 *   One process per file (the flock). The file is not removed at close (Postfix leaves its
 *   file too); the next start removes it. A database that shrinks does not give pages back
 *   to the file system: the file stays at its high-water mark.
 *   create() works on `path` as written, with its caller's privileges: cache/open.ts calls
 *   it with $mail_owner's effective ids when running as root (as Postfix opens its cache
 *   after set_eugid), so the files SQLite opens or creates by name (-wal, -shm) are opened
 *   as $mail_owner, and a link planted in the directory gains nothing root could do.
 *   O_NOFOLLOW guards the last component of the file; SQLite opens the -wal and -shm files
 *   with O_NOFOLLOW too.
 *   XXX Two daemons started in the same instant on the same file can both pass step 1;
 *   the loser's database is then unlinked under it: it keeps working on a file nobody can
 *   see any more.
 * DIAGNOSTICS
 *   create() throws FatalError: "open database <path>: <reason>" (also "...: replaced while
 *   opening" when the inode on the path is not the one created), "<path>: unable to get
 *   exclusive lock: the TLS session cache is in use by another process" (step 1),
 *   "<path>: unable to get exclusive lock: <reason>" (step 3), "cannot remove <path>:
 *   <reason>" (step 2). openError() makes the "open database" error for a failure of the
 *   caller's own setup after create() (a FatalError is returned as it is). close() throws
 *   what the engine's close throws, after the descriptor is closed.
 * SEE ALSO
 *   util/dict_db.c (O_TRUNC, exclusive lock), tls/tls_scache.c tls_scache_open(),
 *   cache/stores/sqlite.ts
 */

import Database from 'better-sqlite3';
import { closeSync, constants as C, fchmodSync, fchownSync, fstatSync, openSync, statSync, unlinkSync } from 'node:fs';
import { createRequire } from 'node:module';
import { FatalError } from '../../../util/errors.js';

/** The flock(2) of the fs-ext binding (Node has none). */
interface FsExt {
  flockSync(fd: number, flags: 'exnb' | 'un'): void;
}
const require = createRequire(import.meta.url);
const fsExt = require('fs-ext') as FsExt;

/** Files SQLite keeps beside the database. */
export const SIDE_FILES = ['-wal', '-shm', '-journal'] as const;

export interface FileOwner {
  readonly uid: number;
  readonly gid: number;
}

export interface DatabaseFileOptions {
  /** Give the file to this owner (running as root, for $mail_owner). */
  readonly owner?: FileOwner | null;
  /** SQL run once on the new, empty database. */
  readonly schema: string;
}

/**
 * SQLite page cache, KiB (negative cache_size). The keys are found in memory and rows are
 * probed by rowid: the hot pages are the table's interior pages (about 30 for 100k rows) and
 * its last leaf; other leaves come from the kernel's page cache (no mmap). 16 MiB bought no
 * throughput on the bench and cost 24 MB of RSS; 256 KiB runs as fast as 2 MiB.
 */
const PAGE_CACHE_KIB = 256;
/** The WAL is truncated back to this after a checkpoint (a long read by sqlite3(1) may grow it). */
const WAL_SIZE_LIMIT = 64 * 1024 * 1024;
/**
 * WAL pages between automatic checkpoints (SQLite's default is 1000). A checkpoint runs inside
 * the write that crosses the mark and copies those pages into the database: 256 pages (1 MiB)
 * keep that stall near 2 ms instead of about 7 ms, at the same total cost.
 */
const WAL_CHECKPOINT_PAGES = 256;

export class DatabaseFile {
  /** The descriptor holding the flock; -1 once closed. */
  private lockFd: number;

  private constructor(
    readonly path: string,
    readonly db: Database.Database,
    lockFd: number,
  ) {
    this.lockFd = lockFd;
  }

  static create(path: string, opts: DatabaseFileOptions): DatabaseFile {
    refuseIfLocked(path);
    for (const f of [path, ...SIDE_FILES.map((s) => path + s)]) removeFile(f);
    let fd: number;
    try {
      fd = openSync(path, C.O_RDWR | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW, 0o600);
    } catch (err) {
      throw openError(path, err);
    }
    let db: Database.Database | undefined;
    try {
      fchmodSync(fd, 0o600); // the umask may only have taken bits away; make it exact
      if (opts.owner) fchownSync(fd, opts.owner.uid, opts.owner.gid);
      try {
        fsExt.flockSync(fd, 'exnb');
      } catch (err) {
        throw new FatalError(`${path}: unable to get exclusive lock: ${reason(err)}`, { cause: err });
      }
      db = new Database(path, { fileMustExist: true });
      const [onPath, ours] = [statSync(path), fstatSync(fd)];
      if (onPath.ino !== ours.ino || onPath.dev !== ours.dev) throw new FatalError(`open database ${path}: replaced while opening`);
      db.pragma('page_size = 4096');
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = OFF');
      db.pragma('temp_store = MEMORY');
      db.pragma('mmap_size = 0');
      db.pragma(`cache_size = -${PAGE_CACHE_KIB}`);
      db.pragma(`journal_size_limit = ${WAL_SIZE_LIMIT}`);
      db.pragma(`wal_autocheckpoint = ${WAL_CHECKPOINT_PAGES}`);
      db.exec(opts.schema);
      return new DatabaseFile(path, db, fd);
    } catch (err) {
      db?.close();
      closeSync(fd);
      throw openError(path, err);
    }
  }

  close(): void {
    const fd = this.lockFd;
    if (fd < 0) return;
    this.lockFd = -1;
    try {
      this.db.close();
    } finally {
      closeSync(fd);
    }
  }
}

/** The error of a failed open of `path`: "open database <path>: <reason>", or err if it is already fatal. */
export function openError(path: string, err: unknown): FatalError {
  if (err instanceof FatalError) return err;
  return new FatalError(`open database ${path}: ${reason(err)}`, { cause: err });
}

function reason(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/* refuseIfLocked - an existing file another live process holds locked is still in use */
function refuseIfLocked(file: string): void {
  let fd: number;
  try {
    // O_NONBLOCK: a FIFO planted at the path must not hang the start; O_NOFOLLOW: a link is just removed.
    fd = openSync(file, C.O_RDONLY | C.O_NOFOLLOW | C.O_NONBLOCK);
  } catch {
    return; // absent, a symbolic link, or unreadable: removeFile() decides
  }
  try {
    fsExt.flockSync(fd, 'exnb');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EAGAIN' || code === 'EWOULDBLOCK') {
      throw new FatalError(`${file}: unable to get exclusive lock: the TLS session cache is in use by another process`, { cause: err });
    }
  } finally {
    closeSync(fd);
  }
}

function removeFile(file: string): void {
  try {
    unlinkSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new FatalError(`cannot remove ${file}: ${reason(err)}`, { cause: err });
  }
}
