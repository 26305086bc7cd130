/*
 * NAME
 *   cache/stores/sqlite - session store in an embedded SQLite file (better-sqlite3)
 * SYNOPSIS
 *   SqliteStore.create(file, { owner? }): SqliteStore
 *   SIDE_FILES, SqliteStoreOptions
 * DESCRIPTION
 *   The default store behind btree:, hash:, lmdb:, sdbm:, dbm: (cache/open.ts). It composes
 *   four parts, each in its own file under sqlite/:
 *   - file.ts: the file, created fresh at every start (old file, -wal, -shm and -journal
 *     removed; a symbolic link removed, not followed), mode 0600, given to `owner`, under an
 *     exclusive flock(2) for the life of the store (a second store on it is refused), opened
 *     with WAL and synchronous=OFF; closed last;
 *   - key-index.ts: where each key's row is, in memory (a keyed hash -> row id(s));
 *   - hot.ts: the key and sealed record of the latest writes (HOT_BYTES), in memory;
 *   - turn.ts: the writes of one event-loop turn in one transaction, committed at the end of
 *     the turn (close() commits first), replayed when SQLite rolls it back.
 *   Table scache_v3 (the schema version is in its name): id INTEGER PRIMARY KEY (write
 *   order: every put() takes the next id, so the table only grows at its end), k BLOB (the
 *   cache_id bytes), stamp INTEGER (update time), v BLOB (the sealed record), and no other
 *   index. Every statement that finds a row through the key index checks the key too (WHERE
 *   id = ? AND k = ?), so a hash collision costs a probe, never a wrong answer. A lookup or
 *   delete of an absent key runs no statement; a lookup of a row among the latest writes
 *   runs none either (hot.ts checks the key too), of an older one it is one rowid probe
 *   (inside the turn's transaction, sqlite/turn.ts); put() appends
 *   one row; delete() removes one. sweep() reads the oldest rows in write order and removes
 *   the leading ones whose stamp is below the cutoff (one DELETE of an id range): its cost
 *   is the rows it removes. As in the memory store, a record written under a clock that
 *   stepped back sits later than its stamp says; later sweeps find it once the records in
 *   front of it go, and lookups check expiry themselves (cache/scache.ts).
 *   Every statement is prepared once. Entry count, bytes, the key index and the latest
 *   records are kept in memory (the table starts empty and only this process writes it);
 *   when SQLite rolled back writes already counted (turn.ts), they are read again from the
 *   table and the latest records are forgotten.
 *   Operators may read the file with sqlite3(1) while the daemon runs (WAL readers do not
 *   block it); records are sealed (util/seal.ts) with a key that exists only in the
 *   daemon's memory. Freed pages therefore hold only ciphertext, which is why SQLite's
 *   secure_delete (which would double the writes) is not used.
 * LIMITS
 *   One process per file; the file stays at its high-water mark and is left at exit (see
 *   sqlite/file.ts). The key index costs about 30-60 bytes per entry; the latest records
 *   up to HOT_BYTES (8 MiB) more, touched as writes reach them. A crash loses at most the
 *   writes of one turn (the cache starts empty anyway). Rows changed in the file by another
 *   program (sqlite3(1) writing instead of reading) are not seen by lookups of rows held
 *   in memory, as they are already not seen by the key index and counters.
 * DIAGNOSTICS
 *   create() throws FatalError: "open database <file>: <reason>", "<file>: unable to get
 *   exclusive lock: ...", "cannot remove <file>: <reason>" (sqlite/file.ts). Later engine
 *   failures (disk full, I/O errors) are thrown as StoreError "<file>: <SQLite code>:
 *   <message>"; one at the end-of-turn commit is thrown by the next call (sqlite/turn.ts).
 * SEE ALSO
 *   cache/stores/sqlite/{file,hot,key-index,turn}.ts, cache/store.ts, util/dict_db.c,
 *   tls/tls_scache.c tls_scache_open()
 */

import type Database from 'better-sqlite3';
import type { SessionStore } from '../store.js';
import { DatabaseFile, openError, type FileOwner } from './sqlite/file.js';
import { HotRecords } from './sqlite/hot.js';
import { KeyIndex } from './sqlite/key-index.js';
import { TurnTransaction } from './sqlite/turn.js';

export { SIDE_FILES } from './sqlite/file.js';

export interface SqliteStoreOptions {
  /** Give the file to this owner (running as root, for $mail_owner). */
  readonly owner?: FileOwner | null;
}

const SCHEMA = `
CREATE TABLE scache_v3 (
  id INTEGER PRIMARY KEY,
  k BLOB NOT NULL,
  stamp INTEGER NOT NULL,
  v BLOB NOT NULL
);
`;

type Stmt = Database.Statement<unknown[], unknown>;

/**
 * Bytes of the latest rows (key and sealed record) kept in memory for lookups. 20,000
 * sessions of 200 bytes take 7 MB; the pages are touched only as writes reach them.
 */
const HOT_BYTES = 8 * 1024 * 1024;

export class SqliteStore implements SessionStore {
  readonly file: string;
  private readonly db: Database.Database;
  private readonly getStmt: Stmt;
  private readonly putStmt: Stmt;
  private readonly delStmt: Stmt;
  private readonly headStmt: Stmt;
  private readonly sweepStmt: Stmt;
  private readonly rowsStmt: Stmt;
  private readonly turn: TurnTransaction;
  private count = 0;
  private total = 0;
  /** The id of the next put(): write order (the table starts empty). */
  private nextId = 1;
  private readonly index = new KeyIndex();
  /** The latest writes, served without a statement (sqlite/hot.ts). */
  private readonly hot = new HotRecords(HOT_BYTES);
  /** The key bytes of a lookup, reused (see scratchKey). */
  private scratch = Buffer.allocUnsafeSlow(512);
  private closed = false;

  private constructor(private readonly dbFile: DatabaseFile) {
    this.file = dbFile.path;
    this.db = dbFile.db;
    this.getStmt = this.db.prepare('SELECT v FROM scache_v3 WHERE id = ? AND k = ?').pluck();
    this.putStmt = this.db.prepare('INSERT INTO scache_v3 (id, k, stamp, v) VALUES (?, ?, ?, ?)');
    this.delStmt = this.db.prepare('DELETE FROM scache_v3 WHERE id = ? AND k = ? RETURNING length(k) + length(v)').pluck();
    this.headStmt = this.db.prepare('SELECT id, stamp FROM scache_v3 ORDER BY id LIMIT ?').raw();
    this.sweepStmt = this.db.prepare('DELETE FROM scache_v3 WHERE id <= ? RETURNING id, k, length(k) + length(v)').raw();
    this.rowsStmt = this.db.prepare('SELECT id, k, length(k) + length(v) FROM scache_v3').raw();
    this.turn = new TurnTransaction(this.file, this.db, this.recount);
  }

  static create(file: string, opts: SqliteStoreOptions = {}): SqliteStore {
    const f = DatabaseFile.create(file, { owner: opts.owner, schema: SCHEMA });
    try {
      return new SqliteStore(f);
    } catch (err) {
      f.close();
      throw openError(file, err);
    }
  }

  get(key: string): Buffer | undefined {
    this.turn.raiseDeferred();
    const k = this.scratchKey(key);
    const ids = this.index.ids(this.index.hash(k));
    if (ids === undefined) return undefined;
    if (typeof ids === 'number') {
      const held = this.hot.get(ids, k);
      if (held !== undefined) return held ?? undefined;
      return this.turn.read(() => this.getStmt.get(ids, k) as Buffer | undefined);
    }
    for (const id of ids) {
      const held = this.hot.get(id, k);
      if (held === null) continue;
      const v = held ?? this.turn.read(() => this.getStmt.get(id, k) as Buffer | undefined);
      if (v !== undefined) return v;
    }
    return undefined;
  }

  put(key: string, record: Buffer, stamp: number): void {
    const k = Buffer.from(key, 'latin1');
    const h = this.index.hash(k);
    // Replacing: the old row goes (the cache has normally deleted the key already).
    if (this.index.ids(h) !== undefined) this.remove(k, h);
    const id = this.nextId++;
    this.turn.write(
      () => this.putStmt.run(id, k, stamp, record),
      () => this.putStmt.run(id, k, stamp, record),
    );
    this.index.add(h, id);
    this.hot.add(id, k, record);
    this.count++;
    this.total += k.length + record.length;
  }

  delete(key: string): boolean {
    const k = Buffer.from(key, 'latin1');
    return this.remove(k, this.index.hash(k));
  }

  sweep(cutoff: number, max: number): number {
    this.turn.raiseDeferred();
    if (max <= 0) return 0;
    // The oldest rows in write order; the leading ones below the cutoff go, in one id range.
    const head = this.turn.read(() => this.headStmt.all(max) as [number, number][]);
    let n = 0;
    while (n < head.length && head[n][1] < cutoff) n++;
    if (n === 0) return 0;
    const last = head[n - 1][0];
    const gone = this.turn.write(
      () => this.sweepStmt.all(last) as [number, Buffer, number][],
      () => this.sweepStmt.all(last),
    );
    for (const [id, k, bytes] of gone) {
      this.index.remove(this.index.hash(k), id);
      this.hot.remove(id);
      this.total -= bytes;
    }
    this.count -= gone.length;
    return gone.length;
  }

  /* remove - delete the row of key k (hash h), if there is one */
  private remove(k: Buffer, h: number): boolean {
    this.turn.raiseDeferred();
    const ids = this.index.ids(h);
    if (ids === undefined) return false;
    for (const id of typeof ids === 'number' ? [ids] : [...ids]) {
      const old = this.turn.write(
        () => this.delStmt.get(id, k) as number | undefined,
        () => this.delStmt.get(id, k),
      );
      if (old !== undefined) {
        this.index.remove(h, id);
        this.hot.remove(id);
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
   * pool, protocol/responses.ts; 11 MB with these keys too). put() and delete() keep their
   * own copies: the transaction replay closures (sqlite/turn.ts) hold them until the commit.
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
      this.turn.close();
      this.dbFile.close();
    } finally {
      this.count = 0;
      this.total = 0;
      this.index.clear();
      this.hot.clear();
    }
  }

  /* recount - counters and key index from the table, after SQLite rolled back writes already counted */
  private readonly recount = (): void => {
    this.hot.clear();
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
  };
}
