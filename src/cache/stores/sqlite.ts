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
 *   Table scache_v3 (the schema version is in its name): id INTEGER PRIMARY KEY (write
 *   order: every put() takes the next id, so the table only grows at its end), k BLOB (the
 *   cache_id bytes), stamp INTEGER (update time), v BLOB (the sealed record), and no other
 *   index. The keys are found through an index in memory: a keyed 32-bit hash of the key ->
 *   the id (or the few ids of keys with the same hash); every statement that uses it checks
 *   the key too (WHERE id = ? AND k = ?), so a hash collision costs a probe, never a wrong
 *   answer. A lookup or delete of an absent key runs no statement; a lookup is one rowid
 *   probe; put() appends one row; delete() removes one. That index costs about 30-60 bytes
 *   per entry. sweep() reads the oldest rows in write order and removes the leading ones
 *   whose stamp is below the cutoff (one DELETE of an id range): its cost is the rows it
 *   removes. As in the memory store, a record written under a clock that stepped back sits
 *   later than its stamp says; later sweeps find it once the records in front of it go, and
 *   lookups check expiry themselves (cache/scache.ts).
 *   The writes of one event-loop turn share one transaction: the first write opens it, a
 *   setImmediate() commits it after the turn's I/O callbacks, close() commits it first.
 *   Reads on the connection see the uncommitted writes; sqlite3(1) sees them at the end of
 *   the turn; a crash loses at most one turn (the cache starts empty anyway).
 *   Every statement is prepared once. Entry count, bytes and the key index are kept in memory
 *   (the table starts empty and only this process writes it); after SQLite rolled back
 *   writes already counted, they are read again from the table.
 *   Operators may read the file with sqlite3(1) while the daemon runs (WAL readers do not
 *   block it); records are sealed (util/seal.ts) with a key that exists only in the
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
import { randomBytes } from 'node:crypto';
import { closeSync, constants as C, fchmodSync, fchownSync, fstatSync, openSync, statSync, unlinkSync } from 'node:fs';
import { createRequire } from 'node:module';
import { FatalError } from '../../util/errors.js';
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

const SCHEMA = `
CREATE TABLE scache_v3 (
  id INTEGER PRIMARY KEY,
  k BLOB NOT NULL,
  stamp INTEGER NOT NULL,
  v BLOB NOT NULL
);
`;

/*
 * KeyIndex - key hash -> row id(s), in memory. The hash is FNV-1a with a random basis and a
 * murmur3 finaliser: keyed per store, so nobody outside picks keys that collide on purpose,
 * and a collision only ever costs an extra probe (the statements check the key).
 */
class KeyIndex {
  private readonly map = new Map<number, number | number[]>();
  private readonly basis = randomBytes(4).readInt32LE(0);

  hash(k: Buffer): number {
    let h = this.basis;
    for (let i = 0; i < k.length; i++) h = Math.imul(h ^ k[i], 0x01000193);
    h ^= h >>> 16;
    h = Math.imul(h, 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    return h ^ (h >>> 16);
  }

  /** The ids of the rows whose key has hash h (usually none or one). */
  ids(h: number): number | number[] | undefined {
    return this.map.get(h);
  }

  add(h: number, id: number): void {
    const old = this.map.get(h);
    if (old === undefined) this.map.set(h, id);
    else if (typeof old === 'number') this.map.set(h, [old, id]);
    else old.push(id);
  }

  remove(h: number, id: number): void {
    const old = this.map.get(h);
    if (old === id) {
      this.map.delete(h);
    } else if (typeof old === 'object') {
      const rest = old.filter((x) => x !== id);
      this.map.set(h, rest.length === 1 ? rest[0] : rest);
    }
  }

  clear(): void {
    this.map.clear();
  }
}

type Stmt = Database.Statement<unknown[], unknown>;

export class SqliteStore implements SessionStore {
  private readonly getStmt: Stmt;
  private readonly putStmt: Stmt;
  private readonly delStmt: Stmt;
  private readonly headStmt: Stmt;
  private readonly sweepStmt: Stmt;
  private readonly rowsStmt: Stmt;
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
  /** The id of the next put(): write order (the table starts empty). */
  private nextId = 1;
  private readonly index = new KeyIndex();
  /** The key bytes of a lookup, reused (see scratchKey). */
  private scratch = Buffer.allocUnsafeSlow(512);
  private closed = false;

  private constructor(
    readonly file: string,
    private readonly db: Database.Database,
    private readonly lockFd: number,
  ) {
    this.getStmt = db.prepare('SELECT v FROM scache_v3 WHERE id = ? AND k = ?').pluck();
    this.putStmt = db.prepare('INSERT INTO scache_v3 (id, k, stamp, v) VALUES (?, ?, ?, ?)');
    this.delStmt = db.prepare('DELETE FROM scache_v3 WHERE id = ? AND k = ? RETURNING length(k) + length(v)').pluck();
    this.headStmt = db.prepare('SELECT id, stamp FROM scache_v3 ORDER BY id LIMIT ?').raw();
    this.sweepStmt = db.prepare('DELETE FROM scache_v3 WHERE id <= ? RETURNING id, k, length(k) + length(v)').raw();
    this.rowsStmt = db.prepare('SELECT id, k, length(k) + length(v) FROM scache_v3').raw();
    this.beginStmt = db.prepare('BEGIN');
    this.commitStmt = db.prepare('COMMIT');
    this.rollbackStmt = db.prepare('ROLLBACK');
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
    const k = this.scratchKey(key);
    const ids = this.index.ids(this.index.hash(k));
    if (ids === undefined) return undefined;
    return this.run(() => {
      if (typeof ids === 'number') return this.getStmt.get(ids, k) as Buffer | undefined;
      for (const id of ids) {
        const v = this.getStmt.get(id, k) as Buffer | undefined;
        if (v !== undefined) return v;
      }
      return undefined;
    });
  }

  put(key: string, record: Buffer, stamp: number): void {
    const k = Buffer.from(key, 'latin1');
    const h = this.index.hash(k);
    // Replacing: the old row goes (the cache has normally deleted the key already).
    if (this.index.ids(h) !== undefined) this.remove(k, h);
    const id = this.nextId++;
    this.write(
      () => this.putStmt.run(id, k, stamp, record),
      () => this.putStmt.run(id, k, stamp, record),
    );
    this.index.add(h, id);
    this.count++;
    this.total += k.length + record.length;
  }

  delete(key: string): boolean {
    const k = Buffer.from(key, 'latin1');
    return this.remove(k, this.index.hash(k));
  }

  sweep(cutoff: number, max: number): number {
    this.raiseDeferred();
    if (max <= 0) return 0;
    // The oldest rows in write order; the leading ones below the cutoff go, in one id range.
    const head = this.run(() => this.headStmt.all(max) as [number, number][]);
    let n = 0;
    while (n < head.length && head[n][1] < cutoff) n++;
    if (n === 0) return 0;
    const last = head[n - 1][0];
    const gone = this.write(
      () => this.sweepStmt.all(last) as [number, Buffer, number][],
      () => this.sweepStmt.all(last),
    );
    for (const [id, k, bytes] of gone) {
      this.index.remove(this.index.hash(k), id);
      this.total -= bytes;
    }
    this.count -= gone.length;
    return gone.length;
  }

  /* remove - delete the row of key k (hash h), if there is one */
  private remove(k: Buffer, h: number): boolean {
    this.raiseDeferred();
    const ids = this.index.ids(h);
    if (ids === undefined) return false;
    for (const id of typeof ids === 'number' ? [ids] : [...ids]) {
      const old = this.write(
        () => this.delStmt.get(id, k) as number | undefined,
        () => this.delStmt.get(id, k),
      );
      if (old !== undefined) {
        this.index.remove(h, id);
        this.count--;
        this.total -= old;
        return true;
      }
    }
    return false;
  }

  /*
   * scratchKey - the bytes of `key` in a buffer reused by every lookup. A lookup only reads
   * them (SQLite copies bound blobs it keeps), so no per-lookup buffer is made: under a
   * lookup-heavy load, per-request buffers from Node's shared 8 KB pool kept whole pool
   * slabs alive and grew the malloc heap (measured: 36 MB; 24 MB with the replies off the
   * pool, protocol/responses.ts; 11 MB with these keys too). put() and delete() keep their own copies: the transaction
   * replay closures hold them until the commit.
   */
  private scratchKey(key: string): Buffer {
    if (key.length > this.scratch.length) this.scratch = Buffer.allocUnsafeSlow(key.length * 2);
    const n = this.scratch.write(key, 0, 'latin1');
    return this.scratch.subarray(0, n);
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
      this.index.clear();
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
      this.deferred = e instanceof StoreError ? e : new StoreError(this.file, err);
    }
  };

  /* recount - counters and key index from the table, after SQLite rolled back writes already counted */
  private recount(): void {
    try {
      const rows = this.rowsStmt.all() as [number, Buffer, number][];
      this.index.clear();
      this.count = 0;
      this.total = 0;
      for (const [id, k, bytes] of rows) {
        this.index.add(this.index.hash(k), id);
        this.count++;
        this.total += bytes;
      }
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
    if (err instanceof Database.SqliteError) return new StoreError(this.file, err);
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
