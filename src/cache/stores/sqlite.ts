/*
 * NAME
 *   cache/stores/sqlite - session store in an embedded SQLite file (better-sqlite3)
 * SYNOPSIS
 *   SqliteStore.create(file, { owner? }): SqliteStore
 * DESCRIPTION
 *   The default store behind btree:, hash:, lmdb:, sdbm:, dbm: (cache/open.ts). create():
 *   1. refuses when another process holds the lock on an existing `file` (a second tlsmgr on
 *      the same cache would otherwise delete the first one's database under it);
 *   2. removes `file` and its -wal, -shm and -journal files: every start begins empty, like
 *      Postfix's O_TRUNC, and a file some other program wrote is never opened (a symbolic
 *      link is removed, not followed);
 *   3. creates `file` itself (O_EXCL|O_NOFOLLOW, mode 0600), chowns it to `owner` (the
 *      daemon runs as $mail_owner after start and must still write it; SQLite, running as
 *      root, gives the -wal and -shm files it creates the owner of the database file), and
 *      holds an exclusive flock(2) on it for the life of the store, as Postfix locks its
 *      btree/hash files;
 *   4. opens it with SQLite (and checks it opened the same inode): WAL journal,
 *      synchronous=OFF (no fsync per write: the cache is emptied at every start anyway, so a
 *      crash loses nothing that would be kept), temporary data in memory (nothing is created
 *      by path after a chroot), no mmap (RSS stays the heap plus a bounded page cache),
 *      small WAL checkpoints (short stalls).
 *   Table scache_v2 (the schema version is in its name), WITHOUT ROWID: k BLOB PRIMARY KEY
 *   (the cache_id bytes; the rows live in the key's B-tree, so a lookup is one descent and
 *   a write changes two B-trees, not three), seq INTEGER (write order, counted in memory as
 *   the table starts empty; breaks ties between equal stamps), stamp INTEGER (update time),
 *   v BLOB (the sealed record), and an index on (stamp, seq). get/put/delete are single
 *   probes of the key; sweep() is one DELETE of the `max` oldest rows below the cutoff
 *   through the stamp index, so its cost is the rows it removes, not the table size.
 *   put() is one INSERT OR REPLACE, after a probe for the old length (for the byte count)
 *   unless the key is known to be absent: the cache deletes a key before storing it again,
 *   and a delete() that found nothing, with no write since, is remembered.
 *   The writes of one event-loop turn share one transaction: the first write opens it, a
 *   setImmediate() commits it after the turn's I/O callbacks, close() commits it first.
 *   Reads on the connection see the uncommitted writes; sqlite3(1) sees them at the end of
 *   the turn; a crash loses at most one turn (the cache starts empty anyway).
 *   Every statement is prepared once. Entry count and bytes are kept in memory (the table
 *   starts empty and only this process writes it), so no COUNT(*) is ever run.
 *   Operators may read the file with sqlite3(1) while the daemon runs (WAL readers do not
 *   block it); records are sealed (cache/seal.ts) with a key that exists only in the
 *   daemon's memory. Freed pages therefore hold only ciphertext, which is why SQLite's
 *   secure_delete (which would double the writes) is not used.
 * LIMITS
 *   One process per file (the flock). The file is not removed at exit (Postfix leaves its
 *   file too); the next start removes it. A database that shrinks does not give pages back
 *   to the file system: the file stays at its high-water mark, bounded by the cache limits.
 *   XXX Two daemons started in the same instant on the same file can both pass step 1;
 *   the loser's database is then unlinked under it: it keeps working on a file nobody can
 *   see any more.
 * DIAGNOSTICS
 *   create() throws FatalError: "open database <file>: <reason>", "<file>: unable to get
 *   exclusive lock: ...", "cannot remove <file>: <reason>". Later engine failures (disk
 *   full, I/O errors) are thrown as StoreError "<file>: <SQLite code>: <message>".
 * SEE ALSO
 *   util/dict_db.c (O_TRUNC, exclusive lock), tls/tls_scache.c tls_scache_open()
 */

import Database from 'better-sqlite3';
import { closeSync, constants as C, fchmodSync, fchownSync, fstatSync, openSync, statSync, unlinkSync } from 'node:fs';
import { createRequire } from 'node:module';
import { FatalError } from '../../errors.js';
import { StoreError, type SessionStore } from '../store.js';

/** The flock(2) of the fs-ext binding (Node has none). */
interface FsExt {
  flockSync(fd: number, flags: 'exnb' | 'un'): void;
}
const require = createRequire(import.meta.url);
const fsExt = require('fs-ext') as FsExt;

export interface SqliteStoreOptions {
  /** Give the file to this owner (running as root, for $mail_owner). */
  readonly owner?: { readonly uid: number; readonly gid: number } | null;
}

/** Files SQLite keeps beside the database. */
export const SIDE_FILES = ['-wal', '-shm', '-journal'] as const;

/**
 * SQLite page cache, KiB (negative cache_size; SQLite's default size). Pages it does not hold
 * come from the kernel's page cache (no mmap): with 16 MiB the bench load ran no faster and
 * the daemon's RSS was 24 MB higher (issue 6).
 */
const PAGE_CACHE_KIB = 2048;
/** The WAL is truncated back to this after a checkpoint (a long read by sqlite3(1) may grow it). */
const WAL_SIZE_LIMIT = 64 * 1024 * 1024;
/**
 * WAL pages between automatic checkpoints (SQLite's default is 1000). A checkpoint runs inside
 * the write that crosses the mark and copies those pages into the database: 256 pages (1 MiB)
 * keep that stall near 2 ms instead of about 7 ms, at the same total cost.
 */
const WAL_CHECKPOINT_PAGES = 256;

const SCHEMA = `
CREATE TABLE scache_v2 (
  k BLOB NOT NULL PRIMARY KEY,
  seq INTEGER NOT NULL,
  stamp INTEGER NOT NULL,
  v BLOB NOT NULL
) WITHOUT ROWID;
CREATE INDEX scache_v2_stamp ON scache_v2 (stamp, seq);
`;

type Stmt = Database.Statement<unknown[], unknown>;

export class SqliteStore implements SessionStore {
  private readonly getStmt: Stmt;
  private readonly putStmt: Stmt;
  private readonly delStmt: Stmt;
  private readonly sweepStmt: Stmt;
  private readonly sizeStmt: Stmt;
  private readonly statsStmt: Stmt;
  private readonly beginStmt: Stmt;
  private readonly commitStmt: Stmt;
  private readonly rollbackStmt: Stmt;
  /** A setImmediate() is pending to commit the writes of this turn. */
  private commitPending = false;
  /** The writes of the open transaction, to apply again if SQLite rolls it all back. */
  private turn: (() => unknown)[] = [];
  /** A deferred commit that failed, thrown by the next call. */
  private deferred: StoreError | undefined;
  private count = 0;
  private total = 0;
  /** Write order of put(), the tie-break between equal stamps (the table starts empty). */
  private seq = 0;
  /** The key of the last delete() if it found nothing and no write came since: known absent. */
  private absent: string | undefined;
  private closed = false;

  private constructor(
    readonly file: string,
    private readonly db: Database.Database,
    private readonly lockFd: number,
  ) {
    this.getStmt = db.prepare('SELECT v FROM scache_v2 WHERE k = ?').pluck();
    // REPLACE deletes the row with the same k and inserts a new one with a new (higher) id:
    // the key moves to the end of the write order, as a delete then an insert would.
    this.putStmt = db.prepare('INSERT OR REPLACE INTO scache_v2 (k, seq, stamp, v) VALUES (?, ?, ?, ?)');
    this.sizeStmt = db.prepare('SELECT length(v) FROM scache_v2 WHERE k = ?').pluck();
    this.statsStmt = db.prepare('SELECT count(*) AS n, coalesce(sum(length(k) + length(v)), 0) AS b FROM scache_v2');
    this.beginStmt = db.prepare('BEGIN');
    this.commitStmt = db.prepare('COMMIT');
    this.rollbackStmt = db.prepare('ROLLBACK');
    this.delStmt = db.prepare('DELETE FROM scache_v2 WHERE k = ? RETURNING length(k) + length(v)').pluck();
    this.sweepStmt = db
      .prepare(
        'DELETE FROM scache_v2 WHERE k IN (SELECT k FROM scache_v2 WHERE stamp < ? ORDER BY stamp, seq LIMIT ?) ' +
          'RETURNING length(k) + length(v)',
      )
      .pluck();
  }

  static create(file: string, opts: SqliteStoreOptions = {}): SqliteStore {
    refuseIfLocked(file);
    for (const f of [file, ...SIDE_FILES.map((s) => file + s)]) removeFile(f);
    let fd: number;
    try {
      fd = openSync(file, C.O_RDWR | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW, 0o600);
    } catch (err) {
      throw new FatalError(`open database ${file}: ${reason(err)}`, { cause: err });
    }
    let db: Database.Database | undefined;
    try {
      fchmodSync(fd, 0o600); // the umask may only have taken bits away; make it exact
      if (opts.owner) fchownSync(fd, opts.owner.uid, opts.owner.gid);
      try {
        fsExt.flockSync(fd, 'exnb');
      } catch (err) {
        throw new FatalError(`${file}: unable to get exclusive lock: ${reason(err)}`, { cause: err });
      }
      db = new Database(file, { fileMustExist: true });
      const [onPath, ours] = [statSync(file), fstatSync(fd)];
      if (onPath.ino !== ours.ino || onPath.dev !== ours.dev) throw new FatalError(`open database ${file}: replaced while opening`);
      db.pragma('page_size = 4096');
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = OFF');
      db.pragma('temp_store = MEMORY');
      db.pragma('mmap_size = 0');
      db.pragma(`cache_size = -${PAGE_CACHE_KIB}`);
      db.pragma(`journal_size_limit = ${WAL_SIZE_LIMIT}`);
      db.pragma(`wal_autocheckpoint = ${WAL_CHECKPOINT_PAGES}`);
      db.exec(SCHEMA);
      return new SqliteStore(file, db, fd);
    } catch (err) {
      db?.close();
      closeSync(fd);
      if (err instanceof FatalError) throw err;
      throw new FatalError(`open database ${file}: ${reason(err)}`, { cause: err });
    }
  }

  get(key: string): Buffer | undefined {
    this.raiseDeferred();
    return this.run(() => this.getStmt.get(Buffer.from(key, 'latin1')) as Buffer | undefined);
  }

  put(key: string, record: Buffer, stamp: number): void {
    const k = Buffer.from(key, 'latin1');
    const seq = ++this.seq;
    // The cache deletes a key before it stores it again: right after a delete that found
    // nothing, the key is known to be absent and the probe for its old length is skipped.
    const absent = key === this.absent;
    this.absent = undefined;
    const old = this.write(
      () => {
        const was = absent ? undefined : (this.sizeStmt.get(k) as number | undefined);
        this.putStmt.run(k, seq, stamp, record);
        return was;
      },
      () => this.putStmt.run(k, seq, stamp, record),
    );
    if (old !== undefined) {
      this.count--;
      this.total -= k.length + old;
    }
    this.count++;
    this.total += k.length + record.length;
  }

  delete(key: string): boolean {
    const k = Buffer.from(key, 'latin1');
    this.absent = undefined;
    const old = this.write(() => this.delStmt.get(k) as number | undefined, () => this.delStmt.get(k));
    if (old === undefined) {
      this.absent = key;
      return false;
    }
    this.count--;
    this.total -= old;
    return true;
  }

  sweep(cutoff: number, max: number): number {
    if (max <= 0) return 0;
    const gone = this.write(() => this.sweepStmt.all(cutoff, max) as number[], () => this.sweepStmt.all(cutoff, max));
    for (const n of gone) this.total -= n;
    this.count -= gone.length;
    return gone.length;
  }

  get size(): number {
    return this.count;
  }

  get bytes(): number {
    return this.total;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      try {
        if (this.db.inTransaction) this.commitStmt.run();
      } catch {
        // The records are dropped at the next start anyway; close regardless.
      }
      this.db.close();
    } finally {
      // After the database: closing any descriptor of the file drops SQLite's POSIX locks.
      closeSync(this.lockFd);
      this.count = 0;
      this.total = 0;
    }
  }

  /* run - one engine call; SQLite failures become StoreError naming the file */
  private run<T>(fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      throw this.storeError(err);
    }
  }

  /*
   * write - one write, in the transaction of this event-loop turn: the first write of a turn
   * opens it, a setImmediate() commits it once the turn's I/O callbacks have run (close()
   * commits earlier). Reads on this connection see the uncommitted writes. When a failed
   * statement makes SQLite roll back the whole transaction (it does for SQLITE_FULL or I/O
   * errors in a statement without a statement journal), the earlier writes of the turn are
   * applied again (`redo`), so only the failed write is lost, as with one transaction per
   * write; should that fail too, the counters are taken again from the table.
   */
  private write<T>(fn: () => T, redo: () => unknown): T {
    this.raiseDeferred();
    try {
      if (!this.db.inTransaction) {
        this.beginStmt.run();
        if (!this.commitPending) {
          this.commitPending = true;
          setImmediate(this.commitTurn);
        }
      }
      const result = fn();
      this.turn.push(redo);
      return result;
    } catch (err) {
      if (err instanceof Database.SqliteError && !this.closed && !this.db.inTransaction) this.replay();
      throw this.storeError(err);
    }
  }

  /* replay - the transaction was rolled back: apply the turn's earlier writes again */
  private replay(): void {
    this.absent = undefined;
    const writes = this.turn;
    this.turn = [];
    if (writes.length === 0) return;
    try {
      this.beginStmt.run();
      for (const w of writes) w();
      this.turn = writes;
    } catch {
      try {
        if (this.db.inTransaction) this.rollbackStmt.run();
      } catch {
        // nothing more to undo
      }
      this.recount();
    }
  }

  /* commitTurn - end of the turn: commit its writes; a failure is reported by the next call */
  private readonly commitTurn = (): void => {
    this.commitPending = false;
    this.absent = undefined;
    const writes = this.turn;
    this.turn = [];
    if (this.closed || !this.db.inTransaction || writes.length === 0) {
      if (!this.closed && this.db.inTransaction) this.commitStmt.run(); // a turn whose only writes failed
      return;
    }
    try {
      this.commitStmt.run();
    } catch (err) {
      try {
        if (this.db.inTransaction) this.rollbackStmt.run();
      } catch {
        // nothing more to undo
      }
      this.recount();
      const e = this.storeError(err);
      this.deferred = e instanceof StoreError ? e : new StoreError(`${this.file}: ${String(err)}`, { cause: err });
    }
  };

  /* recount - the counters from the table, after SQLite rolled back writes already counted */
  private recount(): void {
    try {
      const { n, b } = this.statsStmt.get() as { n: number; b: number };
      this.count = n;
      this.total = b;
    } catch {
      // keep the counters: the next writes fail or succeed on their own
    }
  }

  private raiseDeferred(): void {
    const e = this.deferred;
    if (e === undefined) return;
    this.deferred = undefined;
    throw e;
  }

  private storeError(err: unknown): unknown {
    if (err instanceof Database.SqliteError) return new StoreError(`${this.file}: ${err.code}: ${err.message}`, { cause: err });
    return err;
  }
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
