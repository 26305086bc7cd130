/*
 * sqlite-parts - the three parts of the SQLite store, each on its own, over real database
 * files in a temporary directory (issue 14):
 * - KeyIndex (cache/stores/sqlite/key-index.ts): the ids of one hash in the order added, a
 *   single id as a number, remove() keeping the others; the hash fixed per index and keyed
 *   per index;
 * - TurnTransaction (cache/stores/sqlite/turn.ts): one transaction per event-loop turn,
 *   committed at the end of the turn or by close(); a write SQLite rolls back with the whole
 *   transaction (SQLITE_FULL) loses only itself (the earlier writes are replayed); a failed
 *   replay and a failed end-of-turn commit call lost(), the latter's StoreError thrown once
 *   by the next call; a write that fails alone leaves the turn open; other errors pass
 *   through;
 * - DatabaseFile (cache/stores/sqlite/file.ts): a FIFO or a directory at the path; a failed
 *   setup closes what it opened (the lock is free again); close() releases the lock, once.
 */

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, fstatSync, lstatSync, mkdirSync, mkdtempSync, openSync, closeSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import Database from 'better-sqlite3';
import { StoreError } from '../../src/cache/store.js';
import { DatabaseFile } from '../../src/cache/stores/sqlite/file.js';
import { HotRecords } from '../../src/cache/stores/sqlite/hot.js';
import { KeyIndex } from '../../src/cache/stores/sqlite/key-index.js';
import { TurnTransaction } from '../../src/cache/stores/sqlite/turn.js';
import { FatalError } from '../../src/util/errors.js';

const root = mkdtempSync(join(tmpdir(), 'tlsmgr-sqlite-parts-'));
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const freshFile = (): string => {
  const d = join(root, `d${n++}`);
  mkdirSync(d);
  return join(d, 'c.sqlite');
};
const endOfTurn = (): Promise<void> => new Promise((r) => setImmediate(r));

// ---- KeyIndex ----

test('key index: the ids of one hash in the order added, one id as a number; remove() keeps the others', () => {
  const x = new KeyIndex();
  assert.equal(x.ids(5), undefined);
  x.add(5, 1);
  assert.equal(x.ids(5), 1);
  x.add(5, 2);
  x.add(5, 3);
  x.add(6, 9);
  assert.deepEqual(x.ids(5), [1, 2, 3]);
  x.remove(5, 2);
  assert.deepEqual(x.ids(5), [1, 3]);
  x.remove(5, 7); // not there: nothing changes
  assert.deepEqual(x.ids(5), [1, 3]);
  x.remove(5, 1);
  assert.equal(x.ids(5), 3, 'back to a single number');
  x.remove(5, 4);
  assert.equal(x.ids(5), 3);
  x.remove(5, 3);
  assert.equal(x.ids(5), undefined);
  assert.equal(x.ids(6), 9, 'other hashes untouched');
  x.clear();
  assert.equal(x.ids(6), undefined);
});

test('key index: the hash is fixed for one index and keyed per index', () => {
  const keys = Array.from({ length: 16 }, (_, i) => Buffer.from(`cache-id-${i}`, 'latin1'));
  const a = new KeyIndex();
  const b = new KeyIndex();
  const ha = keys.map((k) => a.hash(k));
  assert.deepEqual(keys.map((k) => a.hash(Buffer.from(k))), ha, 'same key, same hash');
  for (const h of ha) assert.ok(Number.isInteger(h) && h >= -(2 ** 31) && h < 2 ** 31, `${h} is a 32-bit integer`);
  // Equal lists from two random bases: a chance of 2^-512.
  assert.notDeepEqual(keys.map((k) => b.hash(k)), ha, 'another index, other hashes');
  assert.notEqual(a.hash(Buffer.from('k\x00', 'latin1')), a.hash(Buffer.from('k\x01', 'latin1')));
  assert.notEqual(a.hash(Buffer.alloc(0)), a.hash(Buffer.alloc(1)));
});

// ---- HotRecords ----

const bytesOf = (s: string): Buffer => Buffer.from(s, 'latin1');
const show = (b: Buffer | null | undefined): string | null | undefined => (b === null || b === undefined ? b : b.toString('latin1'));

test('hot records: a held row by id and key; another key is null, an id not held undefined', () => {
  const h = new HotRecords(1024);
  h.add(3, bytesOf('k3'), bytesOf('record three'));
  h.add(5, bytesOf('k5'), bytesOf('record five'));
  assert.equal(show(h.get(3, bytesOf('k3'))), 'record three');
  assert.equal(show(h.get(5, bytesOf('k5'))), 'record five');
  assert.equal(h.get(3, bytesOf('k5')), null, 'a collision: the row is not this key\'s');
  assert.equal(h.get(3, bytesOf('k33')), null);
  assert.equal(h.get(4, bytesOf('k4')), undefined, 'an id skipped is not held');
  assert.equal(h.get(2, bytesOf('k2')), undefined);
  assert.equal(h.get(6, bytesOf('k6')), undefined);
  assert.throws(() => h.add(5, bytesOf('k'), bytesOf('v')), RangeError, 'ids in increasing order only');
  h.remove(3);
  assert.equal(h.get(3, bytesOf('k3')), undefined);
  assert.equal(show(h.get(5, bytesOf('k5'))), 'record five');
  h.clear();
  assert.equal(h.get(5, bytesOf('k5')), undefined);
  h.add(6, bytesOf('k6'), bytesOf('six'));
  assert.equal(show(h.get(6, bytesOf('k6'))), 'six', 'usable after clear()');
});

test('hot records: the newest rows take the room of the oldest, around the ring; big rows are not held', () => {
  const h = new HotRecords(256);
  const row = (i: number): Buffer => Buffer.alloc(40 + (i % 7), i); // 4 + 2 + 40..46 bytes a row
  const key = (i: number): Buffer => bytesOf(String(i % 100).padStart(2, '0'));
  for (let i = 1; i <= 400; i++) {
    h.add(i, key(i), row(i));
    // Every row still held is exact, and the ones held are the newest ones, without a gap.
    let oldest = i;
    while (oldest > 1 && h.get(oldest - 1, key(oldest - 1)) !== undefined) oldest--;
    for (let j = oldest; j <= i; j++) assert.ok(h.get(j, key(j))?.equals(row(j)), `row ${j} after ${i}`);
    for (let j = Math.max(1, oldest - 10); j < oldest; j++) assert.equal(h.get(j, key(j)), undefined, `row ${j} after ${i}`);
    assert.ok(i - oldest + 1 >= Math.min(i, 4), `at least 4 rows held after ${i}`);
    assert.ok((i - oldest + 1) * 50 <= 256, `at most what fits after ${i}`);
  }
  h.add(401, key(1), Buffer.alloc(61)); // 4 + 2 + 61 > 256 / 4
  assert.equal(h.get(401, key(1)), undefined, 'a row over a quarter of the ring is not held');
  assert.ok(h.get(400, key(400))?.equals(row(400)), 'nor does it push others out');
});

test('hot records: remove() and clear() zero the bytes they forget', () => {
  const h = new HotRecords(1024);
  h.add(1, bytesOf('a'), Buffer.alloc(50, 0xaa));
  h.add(2, bytesOf('b'), Buffer.alloc(50, 0xbb));
  const view = h.get(1, bytesOf('a'));
  assert.ok(view);
  h.remove(1);
  assert.ok(view.every((x) => x === 0), 'the removed record is zeroed');
  const other = h.get(2, bytesOf('b'));
  assert.ok(other);
  h.clear();
  assert.ok(other.every((x) => x === 0), 'cleared records are zeroed');
});

// ---- TurnTransaction ----

interface TurnUnderTest {
  file: string;
  db: Database.Database;
  turn: TurnTransaction;
  lost: { n: number };
  ins: Database.Statement<unknown[], unknown>;
  /** The ids in table t, read by another connection (what sqlite3(1) sees). */
  committed(): number[];
  /** The ids in table t on the turn's connection (uncommitted writes included). */
  visible(): number[];
  done(): void;
}

/** A WAL database with table t (and `extra` SQL) under a TurnTransaction. */
function turnOver(extra = ''): TurnUnderTest {
  const file = freshFile();
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = OFF');
  db.exec(`CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB NOT NULL); ${extra}`);
  const lost = { n: 0 };
  const turn = new TurnTransaction(file, db, () => lost.n++);
  const ids = (d: Database.Database): number[] => d.prepare('SELECT id FROM t ORDER BY id').pluck().all() as number[];
  return {
    file,
    db,
    turn,
    lost,
    ins: db.prepare('INSERT INTO t (id, v) VALUES (?, ?)'),
    committed() {
      const r = new Database(file, { readonly: true });
      try {
        return ids(r);
      } finally {
        r.close();
      }
    },
    visible: () => ids(db),
    done() {
      turn.close();
      db.close();
    },
  };
}

/** Cap the database at its current size: the next page it needs is SQLITE_FULL. */
function capAtCurrentSize(db: Database.Database): void {
  db.pragma(`max_page_count = ${Number(db.pragma('page_count', { simple: true }))}`);
}

test('turn: the writes of one turn share one transaction, committed at the end of the turn', async () => {
  const u = turnOver();
  try {
    const small = Buffer.from('v');
    u.turn.write(() => u.ins.run(1, small), () => u.ins.run(1, small));
    u.turn.write(() => u.ins.run(2, small), () => u.ins.run(2, small));
    assert.equal(u.db.inTransaction, true);
    assert.deepEqual(u.visible(), [1, 2], 'the connection sees its own writes');
    assert.deepEqual(u.committed(), [], 'others see them at the end of the turn');
    await endOfTurn();
    assert.equal(u.db.inTransaction, false);
    assert.deepEqual(u.committed(), [1, 2]);
    u.turn.write(() => u.ins.run(3, small), () => u.ins.run(3, small));
    assert.equal(u.db.inTransaction, true, 'the next turn opens its own');
    await endOfTurn();
    assert.deepEqual(u.committed(), [1, 2, 3]);
    assert.equal(u.lost.n, 0);
  } finally {
    u.done();
  }
});

test('turn: close() commits the open turn at once; the end-of-turn commit then does nothing', async () => {
  const u = turnOver();
  try {
    u.turn.write(() => u.ins.run(1, Buffer.from('v')), () => undefined);
    u.turn.close();
    assert.equal(u.db.inTransaction, false);
    assert.deepEqual(u.committed(), [1]);
    u.db.prepare('BEGIN').run(); // were the pending commit still live, it would commit this
    await endOfTurn();
    assert.equal(u.db.inTransaction, true);
    u.db.prepare('ROLLBACK').run();
    assert.equal(u.lost.n, 0);
  } finally {
    u.done();
  }
});

test('turn: a write SQLite rolls back with the whole transaction (SQLITE_FULL) loses only itself', async () => {
  const u = turnOver();
  try {
    const small = Buffer.from('v');
    u.turn.write(() => u.ins.run(1, small), () => u.ins.run(1, small));
    capAtCurrentSize(u.db);
    const big = Buffer.alloc(100_000);
    assert.throws(
      () => u.turn.write(() => u.ins.run(2, big), () => u.ins.run(2, big)),
      (e: unknown) => e instanceof StoreError && e.message === `${u.file}: SQLITE_FULL: database or disk is full`,
    );
    assert.equal(u.db.inTransaction, true, 'the earlier write was applied again, in a new transaction');
    assert.deepEqual(u.visible(), [1]);
    assert.equal(u.lost.n, 0, 'nothing lost that was counted');
    await endOfTurn();
    assert.deepEqual(u.committed(), [1]);
  } finally {
    u.done();
  }
});

test('turn: when the replay fails too, the transaction is rolled back and lost() is called', async () => {
  const u = turnOver();
  try {
    const small = Buffer.from('v');
    u.turn.write(() => u.ins.run(1, small), () => {
      throw new Error('the write cannot be applied again');
    });
    capAtCurrentSize(u.db);
    const big = Buffer.alloc(100_000);
    assert.throws(() => u.turn.write(() => u.ins.run(2, big), () => undefined), /SQLITE_FULL/);
    assert.equal(u.lost.n, 1);
    assert.equal(u.db.inTransaction, false);
    assert.deepEqual(u.visible(), []);
    await endOfTurn();
    assert.deepEqual(u.committed(), []);
    assert.equal(u.lost.n, 1);
  } finally {
    u.done();
  }
});

test('turn: a failed end-of-turn commit is rolled back, lost() is called, and the next call throws its StoreError once', async () => {
  // A deferred foreign key is checked at COMMIT: a real commit failure of the engine.
  const u = turnOver(`
    CREATE TABLE parent (id INTEGER PRIMARY KEY);
    CREATE TABLE child (p INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED);
  `);
  u.db.pragma('foreign_keys = ON');
  const orphan = u.db.prepare('INSERT INTO child (p) VALUES (42)');
  try {
    const small = Buffer.from('v');
    u.turn.write(() => u.ins.run(1, small), () => u.ins.run(1, small));
    u.turn.write(() => orphan.run(), () => orphan.run());
    await endOfTurn();
    assert.equal(u.lost.n, 1);
    assert.equal(u.db.inTransaction, false, 'rolled back');
    assert.deepEqual(u.committed(), []);
    let ran = false;
    assert.throws(
      () => u.turn.write(() => (ran = true), () => undefined),
      (e: unknown) => e instanceof StoreError && e.message === `${u.file}: SQLITE_CONSTRAINT_FOREIGNKEY: FOREIGN KEY constraint failed`,
    );
    assert.equal(ran, false, 'the deferred failure comes first');
    u.turn.raiseDeferred(); // once only
    u.turn.write(() => u.ins.run(2, small), () => u.ins.run(2, small));
    await endOfTurn();
    assert.deepEqual(u.committed(), [2]);
    assert.equal(u.lost.n, 1);
  } finally {
    u.done();
  }
});

test('turn: a write that fails alone (a constraint) leaves the turn open; the end of the turn commits it', async () => {
  const u = turnOver();
  try {
    const small = Buffer.from('v');
    u.turn.write(() => u.ins.run(1, small), () => u.ins.run(1, small));
    await endOfTurn();
    assert.throws(() => u.turn.write(() => u.ins.run(1, small), () => undefined), (e: unknown) => e instanceof StoreError && /: SQLITE_CONSTRAINT_PRIMARYKEY: /.test(e.message));
    assert.equal(u.db.inTransaction, true, 'only the statement was undone');
    await endOfTurn();
    assert.equal(u.db.inTransaction, false, 'the empty transaction is committed all the same');
    assert.deepEqual(u.committed(), [1]);
    assert.equal(u.lost.n, 0);
  } finally {
    u.done();
  }
});

test('turn: the reads of one turn share one read transaction, ended at the end of the turn', async () => {
  const u = turnOver();
  const other = new Database(u.file);
  try {
    const small = Buffer.from('v');
    other.prepare('INSERT INTO t (id, v) VALUES (?, ?)').run(1, small);
    assert.deepEqual(u.turn.read(() => u.visible()), [1]);
    assert.equal(u.db.inTransaction, true, 'the read opened the turn\'s transaction');
    // Another connection writes meanwhile: this turn keeps reading the snapshot it began with.
    other.prepare('INSERT INTO t (id, v) VALUES (?, ?)').run(2, small);
    assert.deepEqual(u.turn.read(() => u.visible()), [1], 'one snapshot per turn');
    await endOfTurn();
    assert.equal(u.db.inTransaction, false, 'ended with the turn');
    assert.deepEqual(u.turn.read(() => u.visible()), [1, 2], 'the next turn sees the other connection\'s write');
    other.prepare('INSERT INTO t (id, v) VALUES (?, ?)').run(3, small);
    // A write after the turn's reads leaves their snapshot, even though it is stale by now.
    u.turn.write(() => u.ins.run(4, small), () => u.ins.run(4, small));
    assert.deepEqual(u.turn.read(() => u.visible()), [1, 2, 3, 4], 'the turn sees its own writes');
    assert.deepEqual(u.committed(), [1, 2, 3], 'others see them at the end of the turn');
    await endOfTurn();
    assert.equal(u.db.inTransaction, false);
    assert.deepEqual(u.turn.read(() => u.visible()), [1, 2, 3, 4]);
    await endOfTurn();
    assert.equal(u.db.inTransaction, false, 'a turn of reads only ends its transaction too');
    assert.deepEqual(u.committed(), [1, 2, 3, 4]);
    assert.equal(u.lost.n, 0);
  } finally {
    other.close();
    u.done();
  }
});

test('turn: errors that are not SQLite\'s pass through unchanged; read() translates SQLite\'s', () => {
  const u = turnOver();
  try {
    const mine = new TypeError('not the engine');
    assert.throws(() => u.turn.write(() => {
      throw mine;
    }, () => undefined), (e: unknown) => e === mine);
    assert.throws(() => u.turn.read(() => {
      throw mine;
    }), (e: unknown) => e === mine);
    assert.throws(
      () => u.turn.read(() => u.db.prepare('SELECT * FROM t WHERE id = ?').get(1, 2)),
      (e: unknown) => !(e instanceof StoreError) && e instanceof RangeError,
      'a binding mistake is not an engine failure',
    );
    u.db.exec('CREATE TABLE doomed (x)');
    const read = u.db.prepare('SELECT x FROM doomed');
    u.db.exec('DROP TABLE doomed');
    assert.throws(() => u.turn.read(() => read.all()), (e: unknown) => e instanceof StoreError && e.message.startsWith(`${u.file}: SQLITE_`));
    assert.deepEqual(u.turn.read(() => u.visible()), []);
  } finally {
    u.done();
  }
});

// ---- DatabaseFile ----

const SCHEMA = 'CREATE TABLE t (id INTEGER PRIMARY KEY)';

test('file: a FIFO at the path does not hang the start; it is removed and a file made', { timeout: 20_000 }, () => {
  const file = freshFile();
  execFileSync('mkfifo', [file]);
  execFileSync('mkfifo', [`${file}-wal`]);
  const f = DatabaseFile.create(file, { schema: SCHEMA });
  try {
    assert.ok(lstatSync(file).isFile());
    assert.equal(f.path, file);
    assert.equal(f.db.prepare('SELECT count(*) FROM t').pluck().get(), 0);
  } finally {
    f.close();
  }
});

test('file: a directory at the path (or at -wal) is fatal "cannot remove"', () => {
  for (const side of ['', '-wal']) {
    const file = freshFile();
    mkdirSync(file + side);
    assert.throws(() => DatabaseFile.create(file, { schema: SCHEMA }), (e: unknown) => {
      assert.ok(e instanceof FatalError);
      assert.match(e.message, new RegExp(`^cannot remove ${file}${side}: EISDIR: `));
      return true;
    });
    assert.equal(existsSync(file + side), true, 'left alone');
  }
});

test('file: a failed setup is "open database", and closes what it opened: the lock is free again', () => {
  const file = freshFile();
  assert.throws(() => DatabaseFile.create(file, { schema: 'CREATE TABLE' }), (e: unknown) => {
    assert.ok(e instanceof FatalError);
    assert.match(e.message, new RegExp(`^open database ${file}: `));
    return true;
  });
  // A descriptor left open would still hold the flock(2): this create would be refused.
  const f = DatabaseFile.create(file, { schema: SCHEMA });
  f.close();
});

test('file: close() releases the lock; a second close() closes nothing else', () => {
  const file = freshFile();
  const f = DatabaseFile.create(file, { schema: SCHEMA });
  assert.throws(() => DatabaseFile.create(file, { schema: SCHEMA }), /unable to get exclusive lock: the TLS session cache is in use by another process$/);
  f.close();
  const other = openSync(join(root, 'other'), 'w'); // likely takes the lock's descriptor number
  try {
    f.close();
    fstatSync(other); // still open
  } finally {
    closeSync(other);
  }
  const g = DatabaseFile.create(file, { schema: SCHEMA });
  g.close();
});
