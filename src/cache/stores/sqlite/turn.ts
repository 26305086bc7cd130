/*
 * NAME
 *   cache/stores/sqlite/turn - one SQLite transaction per event-loop turn, replayed on rollback
 * SYNOPSIS
 *   new TurnTransaction(file, db, lost)
 *   turn.write(fn, redo): T      turn.read(fn): T      turn.raiseDeferred()      turn.close()
 * DESCRIPTION
 *   The writes of one event-loop turn share one transaction on `db`: the first write()
 *   opens it (BEGIN), a setImmediate() commits it once the turn's I/O callbacks have run,
 *   close() commits it at once. Reads on the same connection see the uncommitted writes;
 *   other readers (sqlite3(1)) see them at the end of the turn; a crash loses at most one
 *   turn. One commit per turn instead of one per write is what makes a burst of updates
 *   cheap.
 *   write(fn, redo) runs fn, the write itself, and keeps redo, the same write to apply
 *   again: when a failed statement makes SQLite roll back the whole transaction (it does
 *   for SQLITE_FULL or I/O errors in a statement without a statement journal), the turn's
 *   earlier writes are applied again in a new transaction, so only the failed write is
 *   lost, as with one transaction per write. Should that replay fail too, the transaction
 *   is rolled back and lost() is called: the caller's counts no longer match the table and
 *   must be taken from it again.
 *   A commit that fails at the end of the turn is rolled back, lost() is called, and its
 *   StoreError is thrown by the next raiseDeferred() (once): the caller calls it first in
 *   every operation, so the failure reaches the request that comes next.
 *   read(fn) runs one engine call with the same translation of errors, in the same
 *   transaction: the reads of one turn share one snapshot (without it SQLite begins and
 *   ends a read transaction, with its shared-memory lock calls, for every statement: 1.6
 *   fcntl(2) per lookup). A transaction a read began is ended before the turn's first
 *   write begins its own, as a stale snapshot cannot be written from (SQLITE_BUSY_SNAPSHOT,
 *   when sqlite3(1) wrote meanwhile). Holding a snapshot for one turn keeps a checkpoint
 *   run by another connection from passing it for that long; ours runs at the commit.
 * LIMITS
 *   One TurnTransaction per connection, and nothing else may BEGIN or COMMIT on it. Reads
 *   of one turn do not see what another connection commits during that turn. redo
 *   closures keep what they bind (keys, records) until the end of the turn. A turn whose
 *   writes all failed still commits its empty transaction at the end of the turn.
 *   After close(), write() and read() fail as the closed database makes them fail.
 * DIAGNOSTICS
 *   SQLite failures (better-sqlite3 SqliteError) are thrown as StoreError "<file>: <SQLite
 *   code>: <message>"; other errors of fn pass through unchanged. A failed commit inside
 *   close() is ignored (the cache is emptied at the next start anyway).
 * SEE ALSO
 *   cache/stores/sqlite.ts, cache/store.ts (StoreError), test/unit/sqlite-parts.test.ts
 */

import Database from 'better-sqlite3';
import { StoreError } from '../../store.js';

type Stmt = Database.Statement<unknown[], unknown>;

export class TurnTransaction {
  private readonly beginStmt: Stmt;
  private readonly commitStmt: Stmt;
  private readonly rollbackStmt: Stmt;
  /** A setImmediate() is pending to commit the writes of this turn. */
  private commitPending = false;
  /** The open transaction was begun by a read and has seen no write yet. */
  private readOnly = false;
  /** The writes of the open transaction, to apply again if SQLite rolls it all back. */
  private writes: (() => unknown)[] = [];
  /** A deferred commit that failed, thrown by the next raiseDeferred(). */
  private deferred: StoreError | undefined;
  private closed = false;

  /**
   * @param file names the database in StoreError messages
   * @param lost called after SQLite rolled back writes that could not be applied again
   */
  constructor(
    private readonly file: string,
    private readonly db: Database.Database,
    private readonly lost: () => void,
  ) {
    this.beginStmt = db.prepare('BEGIN');
    this.commitStmt = db.prepare('COMMIT');
    this.rollbackStmt = db.prepare('ROLLBACK');
  }

  /* read - one engine call, in the transaction of this turn; SQLite failures become StoreError naming the file */
  read<T>(fn: () => T): T {
    try {
      if (!this.db.inTransaction) {
        this.begin();
        this.readOnly = true;
      }
      return fn();
    } catch (err) {
      throw this.storeError(err);
    }
  }

  /* write - one write, in the transaction of this turn; `redo` applies it again after a rollback */
  write<T>(fn: () => T, redo: () => unknown): T {
    this.raiseDeferred();
    try {
      if (this.readOnly) {
        // A read snapshot cannot become a write transaction once another connection
        // (sqlite3(1)) has written after it began (SQLITE_BUSY_SNAPSHOT): end it first.
        this.readOnly = false;
        if (this.db.inTransaction) this.commitStmt.run();
      }
      if (!this.db.inTransaction) this.begin();
      const result = fn();
      this.writes.push(redo);
      return result;
    } catch (err) {
      if (err instanceof Database.SqliteError && !this.closed && !this.db.inTransaction) this.replay();
      throw this.storeError(err);
    }
  }

  /* begin - open the transaction of this turn; its commit runs at the end of the turn */
  private begin(): void {
    this.beginStmt.run();
    if (!this.commitPending) {
      this.commitPending = true;
      setImmediate(this.commitTurn);
    }
  }

  /* raiseDeferred - throw the failure of the last end-of-turn commit, once */
  raiseDeferred(): void {
    const e = this.deferred;
    if (e === undefined) return;
    this.deferred = undefined;
    throw e;
  }

  /* close - commit the open transaction now (a failure is ignored); no later commit runs */
  close(): void {
    this.closed = true;
    try {
      if (this.db.inTransaction) this.commitStmt.run();
    } catch {
      // The records are dropped at the next start anyway; close regardless.
    }
  }

  /* replay - the transaction was rolled back: apply the turn's earlier writes again */
  private replay(): void {
    const writes = this.writes;
    this.writes = [];
    if (writes.length === 0) return;
    try {
      this.beginStmt.run();
      for (const w of writes) w();
      this.writes = writes;
    } catch {
      try {
        if (this.db.inTransaction) this.rollbackStmt.run();
      } catch {
        // nothing more to undo
      }
      this.lost();
    }
  }

  /* commitTurn - end of the turn: commit its writes; a failure is reported by the next call */
  private readonly commitTurn = (): void => {
    this.commitPending = false;
    this.readOnly = false;
    const writes = this.writes;
    this.writes = [];
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
      this.lost();
      const e = this.storeError(err);
      this.deferred = e instanceof StoreError ? e : new StoreError(this.file, err);
    }
  };

  private storeError(err: unknown): unknown {
    if (err instanceof Database.SqliteError) return new StoreError(this.file, err);
    return err;
  }
}
