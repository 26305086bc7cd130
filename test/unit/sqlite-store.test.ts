/*
 * sqlite-store - what the SQLite store (cache/stores/sqlite.ts) does when its turn's
 * transaction fails, seen through the store's own calls and a second reader of the file:
 * a put() SQLite rolls back with the whole transaction (SQLITE_FULL) loses only itself (the
 * records written before it in the same turn stay, in memory and in the file); a failed
 * end-of-turn commit loses that turn's records, the entry count, bytes and key index are
 * taken from the table again, and the next call throws its StoreError, once.
 */

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import Database from 'better-sqlite3';
import { StoreError } from '../../src/cache/store.js';
import { SqliteStore } from '../../src/cache/stores/sqlite.js';

const root = mkdtempSync(join(tmpdir(), 'tlsmgr-sqlite-store-'));
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const freshFile = (): string => join(root, `c${n++}.sqlite`);
const endOfTurn = (): Promise<void> => new Promise((r) => setImmediate(r));
const rec = (s: string): Buffer => Buffer.from(s, 'latin1');

/** Reach into the store for its connection (to make the engine fail for real). */
const dbOf = (s: SqliteStore): Database.Database => (s as unknown as { db: Database.Database }).db;

/** The keys in the file, as another reader (sqlite3(1)) sees them. */
function keysInFile(file: string): string[] {
  const db = new Database(file, { readonly: true });
  try {
    return (db.prepare('SELECT k FROM scache_v3 ORDER BY id').pluck().all() as Buffer[]).map((k) => k.toString('latin1'));
  } finally {
    db.close();
  }
}

test('a put() SQLite rolls back with its whole turn (SQLITE_FULL) loses only itself', async () => {
  const file = freshFile();
  const s = SqliteStore.create(file);
  try {
    s.put('old', rec('committed'), 1);
    await endOfTurn();
    s.put('a', rec('first'), 2);
    s.delete('old');
    s.put('b', rec('second'), 3);
    const db = dbOf(s);
    db.pragma(`max_page_count = ${Number(db.pragma('page_count', { simple: true }))}`);
    assert.throws(() => s.put('big', Buffer.alloc(100_000), 4), (e: unknown) => e instanceof StoreError && e.message === `${file}: SQLITE_FULL: database or disk is full`);
    assert.deepEqual(['old', 'a', 'b', 'big'].map((k) => s.get(k)?.toString('latin1')), [undefined, 'first', 'second', undefined]);
    assert.deepEqual([s.size, s.bytes], [2, 1 + 5 + 1 + 6]);
    await endOfTurn();
    assert.deepEqual(keysInFile(file), ['a', 'b'], 'the earlier writes of the turn were committed');
    db.pragma('max_page_count = 1073741823');
    s.put('c', rec('third'), 5);
    await endOfTurn();
    assert.deepEqual(keysInFile(file), ['a', 'b', 'c']);
  } finally {
    s.close();
  }
});

test('a failed end-of-turn commit: the turn is lost, counts come from the table, the next call throws once', async () => {
  const file = freshFile();
  const s = SqliteStore.create(file);
  try {
    s.put('keep', rec('kept'), 1);
    await endOfTurn();
    // A deferred foreign key is checked at COMMIT: a row keyed "bad" makes that commit fail.
    const db = dbOf(s);
    db.pragma('foreign_keys = ON');
    db.exec(`
      CREATE TABLE parent (id INTEGER PRIMARY KEY);
      CREATE TABLE child (p INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED);
      CREATE TRIGGER orphan AFTER INSERT ON scache_v3 WHEN NEW.k = X'626164' BEGIN INSERT INTO child (p) VALUES (42); END;
    `);
    s.put('good', rec('g'), 2);
    s.put('bad', rec('b'), 3);
    s.delete('keep');
    assert.deepEqual([s.size, s.bytes], [2, 4 + 1 + 3 + 1], 'counted in the turn');
    await endOfTurn();
    assert.deepEqual([s.size, s.bytes], [1, 4 + 4], 'taken again from the table');
    assert.throws(() => s.get('keep'), (e: unknown) => e instanceof StoreError && e.message === `${file}: SQLITE_CONSTRAINT_FOREIGNKEY: FOREIGN KEY constraint failed`);
    assert.deepEqual(['keep', 'good', 'bad'].map((k) => s.get(k)?.toString('latin1')), ['kept', undefined, undefined], 'thrown once; the index agrees with the table');
    assert.deepEqual(keysInFile(file), ['keep']);
    assert.equal(s.delete('keep'), true);
    assert.deepEqual([s.size, s.bytes], [0, 0]);
    await endOfTurn();
    assert.deepEqual(keysInFile(file), []);
  } finally {
    s.close();
  }
});

/** Count the lookup statement's runs (the store's prepared SELECT of one row). */
function countTableReads(s: SqliteStore): { n: number } {
  const stmt = (s as unknown as { getStmt: { get: (...a: unknown[]) => unknown } }).getStmt;
  const get = stmt.get.bind(stmt);
  const count = { n: 0 };
  stmt.get = (...a: unknown[]) => {
    count.n++;
    return get(...a);
  };
  return count;
}

test('the latest writes are looked up in memory, older ones in the table; both give the same records', async () => {
  const file = freshFile();
  const s = SqliteStore.create(file);
  try {
    const reads = countTableReads(s);
    // 160 records of 60,000 bytes: more than the 8 MiB held, so the first ones are read from the table.
    const big = (i: number): Buffer => Buffer.alloc(60_000, i + 1);
    for (let i = 0; i < 160; i++) s.put(`big${i}`, big(i), i);
    s.put('small', rec('latest'), 20);
    await endOfTurn();
    assert.equal(s.get('small')?.toString('latin1'), 'latest');
    assert.ok(s.get('big159')?.equals(big(159)));
    assert.equal(reads.n, 0, 'the latest writes: no statement');
    assert.ok(s.get('big0')?.equals(big(0)), 'an older row comes from the table');
    assert.equal(reads.n, 1);
    assert.equal(s.get('absent'), undefined);
    assert.equal(reads.n, 1, 'a key the index does not know: no statement either');
    // Deleted, replaced and swept rows are gone from memory as from the table.
    assert.equal(s.delete('small'), true);
    assert.equal(s.get('small'), undefined);
    s.put('big159', rec('replaced'), 200);
    assert.equal(s.get('big159')?.toString('latin1'), 'replaced');
    assert.equal(s.sweep(160, 1000), 159, 'big0..big158 are below the cutoff');
    assert.deepEqual(['big0', 'big100', 'big158'].map((k) => s.get(k)), [undefined, undefined, undefined]);
    assert.equal(s.get('big159')?.toString('latin1'), 'replaced');
    assert.equal(reads.n, 1);
    await endOfTurn();
    assert.deepEqual(keysInFile(file), ['big159']);
  } finally {
    s.close();
  }
});
