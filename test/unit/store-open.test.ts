/*
 * store-open - the database parameter mapping (cache/open.ts) and what is special about the
 * SQLite store (cache/stores/sqlite.ts; issue 3): btree/hash/lmdb/sdbm/dbm and no type map to
 * <path>.sqlite, memory: to the memory store, anything else is fatal; the file is created
 * fresh at every start (old content, -wal and -shm removed; a symbolic link removed, never
 * followed), mode 0600 with every umask, WAL with synchronous OFF; owned by $mail_owner when
 * run as root (with its -wal and -shm); a second store on a locked file is refused while the
 * first keeps working; two cache types on one file are refused; engine failures become
 * StoreError and, through the cache, warnings; the in-memory key index (issue 6) keeps keys
 * whose hashes collide apart and agrees with the table.
 */

import assert from 'node:assert/strict';
import {
  chmodSync, chownSync, closeSync, existsSync, lstatSync, openSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import Database from 'better-sqlite3';
import { CacheTable } from '../../src/cache/caches.js';
import { FILE_TYPES, storeKind, storeOpener, SQLITE_SUFFIX } from '../../src/cache/open.js';
import { StoreError } from '../../src/cache/store.js';
import { MemoryStore } from '../../src/cache/stores/memory.js';
import { SqliteStore } from '../../src/cache/stores/sqlite.js';
import { FakeClock } from '../../src/util/clock.js';
import { FatalError } from '../../src/util/errors.js';
import { testConfig } from '../helpers/attr.js';
import { T0 } from '../helpers/harness.js';
import { scacheOver } from '../helpers/stores.js';

const root = mkdtempSync(join(tmpdir(), 'tlsmgr-open-'));
// As root, $mail_owner (nobody) opens the files: it must be able to reach the directories.
chmodSync(root, 0o711);
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const freshDir = (): string => {
  const d = join(root, `d${n++}`);
  mkdirSync(d);
  return d;
};
const isRoot = process.geteuid?.() === 0;
const noUser = (): null => null;

test('file map types and no type (default_database_type) map to <path>.sqlite; memory: to memory', () => {
  for (const t of FILE_TYPES) {
    assert.deepEqual(storeKind(`${t}:/var/lib/postfix/smtpd_scache`, 'p'), { kind: 'sqlite', file: `/var/lib/postfix/smtpd_scache${SQLITE_SUFFIX}` });
  }
  assert.deepEqual(storeKind('memory:', 'p'), { kind: 'memory' });
  assert.deepEqual(storeKind('memory:smtpd', 'p'), { kind: 'memory' });
  const dir = freshDir();
  const config = testConfig({ cache: { smtpd: { database: `${dir}/smtpd_scache` }, smtp: { database: 'memory:smtp' } } });
  const table = new CacheTable(config, {
    clock: new FakeClock(T0), warn: () => undefined, openStore: storeOpener({ mailOwner: 'postfix', lookupUser: noUser, euid: 1000 }),
  });
  try {
    assert.ok(existsSync(`${dir}/smtpd_scache.sqlite`), 'hash: (the default type) is a SQLite file');
    assert.deepEqual(readdirSync(dir).sort(), ['smtpd_scache.sqlite', 'smtpd_scache.sqlite-shm', 'smtpd_scache.sqlite-wal']);
  } finally {
    table.close();
  }
});

test('unsupported and malformed database types are fatal at start, naming the parameter', () => {
  for (const db of ['cdb:/x', 'proxy:btree:/x', 'mysql:/etc/postfix/my.cf', 'redis:x', 'texthash:/x', 'inline:{a=b}']) {
    assert.throws(() => storeKind(db, 'smtpd_tls_session_cache_database'), (e: unknown) => {
      assert.ok(e instanceof FatalError);
      assert.match(e.message, /^unsupported dictionary type: [a-z]+ \(smtpd_tls_session_cache_database = /);
      assert.match(e.message, /use btree:, hash:, lmdb:, sdbm:, dbm: \(an embedded database file\), memory: or redis:<file>$/);
      return true;
    }, db);
  }
  assert.throws(() => storeKind('btree:', 'smtp_tls_session_cache_database'), /^FatalError: smtp_tls_session_cache_database: missing file name in "btree:"$/);
  const config = testConfig({ cache: { smtpd: { database: 'pgsql:/etc/x.cf' } } });
  assert.throws(
    () => new CacheTable(config, { clock: new FakeClock(T0), warn: () => undefined, openStore: storeOpener({ mailOwner: 'postfix', lookupUser: noUser }) }),
    /unsupported dictionary type: pgsql/,
  );
});

test('the file is created fresh: old content, -wal, -shm gone; mode 0600 whatever the umask', async () => {
  for (const mask of [0o022, 0o000, 0o077]) {
    const dir = freshDir();
    const file = join(dir, 'c.sqlite');
    for (const f of [file, `${file}-wal`, `${file}-shm`, `${file}-journal`]) writeFileSync(f, 'GARBAGE FROM ANOTHER PROGRAM', { mode: 0o644 });
    const oldIno = statSync(file).ino;
    const held = openSync(file, 'r'); // keeps the old inode from being reused for the new file
    const old = process.umask(mask);
    let s: SqliteStore;
    try {
      s = SqliteStore.create(file);
    } finally {
      process.umask(old);
    }
    try {
      assert.equal(s.size, 0);
      s.put('k', Buffer.from('v'), 1);
      await new Promise(setImmediate); // the writes of a turn are committed at its end
      assert.notEqual(statSync(file).ino, oldIno, 'a new file');
      assert.equal(existsSync(`${file}-journal`), false);
      for (const f of [file, `${file}-wal`, `${file}-shm`]) assert.equal(statSync(f).mode & 0o777, 0o600, `${f} umask ${mask.toString(8)}`);
      assert.doesNotMatch(readFileSync(file, 'latin1'), /GARBAGE/);
      const db = new Database(file, { readonly: true });
      try {
        assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
        assert.equal(db.prepare('SELECT count(*) FROM scache_v3').pluck().get(), 1, 'readable by sqlite3 while in use');
      } finally {
        db.close();
      }
    } finally {
      s.close();
      closeSync(held);
    }
  }
});

test('a symbolic link at the path is removed, never followed', () => {
  const dir = freshDir();
  const target = join(dir, 'precious');
  writeFileSync(target, 'keep me');
  const file = join(dir, 'c.sqlite');
  symlinkSync(target, file);
  symlinkSync(target, `${file}-wal`);
  const s = SqliteStore.create(file);
  try {
    assert.equal(readFileSync(target, 'latin1'), 'keep me');
    assert.ok(lstatSync(file).isFile());
  } finally {
    s.close();
  }
});

test('a file locked by a running store is refused; the running store keeps working', () => {
  const file = join(freshDir(), 'c.sqlite');
  const a = SqliteStore.create(file);
  try {
    a.put('k', Buffer.from('v'), 1);
    assert.throws(() => SqliteStore.create(file), (e: unknown) => {
      assert.ok(e instanceof FatalError);
      assert.equal(e.message, `${file}: unable to get exclusive lock: the TLS session cache is in use by another process`);
      return true;
    });
    a.put('j', Buffer.from('w'), 2);
    assert.deepEqual(a.get('k'), Buffer.from('v'));
    assert.equal(a.size, 2);
  } finally {
    a.close();
  }
  const b = SqliteStore.create(file); // unlocked once closed
  assert.equal(b.size, 0);
  b.close();
});

test('a missing directory is fatal "open database"', () => {
  assert.throws(() => SqliteStore.create(join(root, 'no', 'such', 'dir', 'c.sqlite')), /^FatalError: open database .*c\.sqlite: ENOENT/);
});

test('two cache types on one file (btree: and hash: of one path) are fatal', () => {
  const dir = freshDir();
  const config = testConfig({ cache: { smtpd: { database: `btree:${dir}/one` }, smtp: { database: `hash:${dir}/one` } } });
  assert.throws(
    () => new CacheTable(config, { clock: new FakeClock(T0), warn: () => undefined, openStore: storeOpener({ mailOwner: 'postfix', lookupUser: noUser, euid: 1000 }) }),
    new RegExp(`^FatalError: do not use the same TLS cache file ${dir}/one.sqlite for smtpd and smtp$`),
  );
  // The first store was closed again: its file can be opened at once.
  SqliteStore.create(`${dir}/one.sqlite`).close();
});

test('as root the files belong to $mail_owner (with the -wal and -shm SQLite creates)', { skip: !isRoot && 'needs root' }, () => {
  const dir = freshDir();
  chownSync(dir, 65534, 65534);
  const open = storeOpener({ mailOwner: 'nobody', lookupUser: (u) => (u === 'nobody' ? { uid: 65534, gid: 65534 } : null) });
  const s = open('smtpd', `btree:${dir}/smtpd_scache`);
  try {
    s.put('k', Buffer.from('v'), 1);
    for (const f of ['', '-wal', '-shm']) {
      const st = statSync(`${dir}/smtpd_scache.sqlite${f}`);
      assert.deepEqual([st.uid, st.gid, st.mode & 0o777], [65534, 65534, 0o600], f);
    }
  } finally {
    s.close();
  }
  assert.throws(() => storeOpener({ mailOwner: 'nosuchuser', lookupUser: noUser, euid: 0 })('smtp', `btree:${dir}/x`), /^FatalError: unknown mail_owner user: nosuchuser$/);
});

test('as root SQLite opens the files as $mail_owner: a directory $mail_owner cannot write fails the start', { skip: !isRoot && 'needs root' }, () => {
  const dir = freshDir(); // root's, 0755: root could create files here, nobody cannot
  chmodSync(dir, 0o755);
  const open = storeOpener({ mailOwner: 'nobody', lookupUser: (u) => (u === 'nobody' ? { uid: 65534, gid: 65534 } : null) });
  assert.throws(() => open('smtpd', `btree:${dir}/smtpd_scache`), /permission denied/i);
  assert.deepEqual(readdirSync(dir), []);
});

test('as root a table in a directory not $mail_owner\'s is redirected to data_directory, with Postfix\'s two warnings', { skip: !isRoot && 'needs root' }, () => {
  const dir = freshDir();
  const data = freshDir();
  chownSync(data, 65534, 65534);
  const warnings: string[] = [];
  const open = storeOpener({
    mailOwner: 'nobody',
    lookupUser: (u) => (u === 'nobody' ? { uid: 65534, gid: 65534 } : null),
    redirect: { dataDirectory: data, warn: (m) => warnings.push(m) },
  });
  const s = open('smtpd', `btree:${dir}/smtpd_scache`);
  try {
    s.put('k', Buffer.from('v'), 1);
    assert.deepEqual(readdirSync(dir), []);
    const st = statSync(join(data, 'smtpd_scache.sqlite'));
    assert.deepEqual([st.uid, st.gid], [65534, 65534]);
  } finally {
    s.close();
  }
  assert.deepEqual(warnings, [
    `request to update table btree:${dir}/smtpd_scache in non-nobody directory ${dir}`,
    `redirecting the request to nobody-owned data_directory ${data}`,
  ]);
  // A table in $mail_owner's directory stays where it is, without a word.
  const kept = open('smtp', `hash:${data}/smtp_scache`);
  kept.close();
  assert.ok(existsSync(join(data, 'smtp_scache.sqlite')));
  assert.equal(warnings.length, 2);
});

test('memory: needs no file and no owner', () => {
  const s = storeOpener({ mailOwner: 'nosuchuser', lookupUser: noUser, euid: 0 })('lmtp', 'memory:');
  assert.ok(s instanceof MemoryStore);
});

test('an engine failure (the database is full) is a StoreError, and a warning in the cache', () => {
  const file = join(freshDir(), 'c.sqlite');
  const s = SqliteStore.create(file);
  try {
    s.put('k', Buffer.from('v'), 1);
    // Reach into the store to cap the file at its current size: a real SQLITE_FULL.
    const db = (s as unknown as { db: Database.Database }).db;
    db.pragma(`max_page_count = ${Number(db.pragma('page_count', { simple: true }))}`);
    assert.throws(() => s.put('j', Buffer.alloc(100_000), 2), (e: unknown) => e instanceof StoreError && /: SQLITE_FULL: /.test(e.message));
    assert.equal(s.size, 1, 'counts unchanged by the failed insert');
    const { cache, warnings } = scacheOver(s);
    cache.update(Buffer.from('x'), Buffer.alloc(100_000));
    cache.update(Buffer.from('y'), Buffer.alloc(100_000));
    assert.equal(warnings.length, 1, 'rate-limited');
    assert.match(warnings[0], /^btree:\/test\/smtpd_scache: cannot update TLS session cache entry: .*c\.sqlite: SQLITE_FULL: database or disk is full$/);
    assert.equal(cache.stats().stores, 0);
  } finally {
    s.close();
  }
});

test('keys whose hashes collide in the in-memory index stay distinct (every key in one bucket)', () => {
  const s = SqliteStore.create(join(freshDir(), 'c.sqlite'));
  try {
    // Reach into the store's key index: one hash for every key, the worst case of collisions.
    (s as unknown as { index: { hash: (k: Buffer) => number } }).index.hash = () => 7;
    const r = (t: string): Buffer => Buffer.from(t, 'latin1');
    for (const k of ['a', 'b', 'c', 'd']) s.put(k, r(`v${k}`), 1);
    assert.equal(s.size, 4);
    assert.deepEqual(['a', 'b', 'c', 'd', 'x'].map((k) => s.get(k)?.toString('latin1')), ['va', 'vb', 'vc', 'vd', undefined]);
    assert.equal(s.delete('x'), false, 'absent key, same bucket');
    assert.equal(s.delete('b'), true);
    assert.equal(s.get('b'), undefined);
    s.put('c', r('VC'), 2); // replaces c only
    assert.deepEqual(['a', 'c', 'd'].map((k) => s.get(k)?.toString('latin1')), ['va', 'VC', 'vd']);
    assert.equal(s.size, 3);
    assert.equal(s.bytes, 3 + 2 + 2 + 2);
    assert.equal(s.sweep(2, 10), 2, 'a and d (stamp 1) are older than c (stamp 2, written last)');
    assert.deepEqual(['a', 'c', 'd'].map((k) => s.get(k)?.toString('latin1')), [undefined, 'VC', undefined]);
    assert.equal(s.size, 1);
  } finally {
    s.close();
  }
});

test('a cache of 20,000 entries: the in-memory index agrees with the table after replaces, deletes and sweeps', () => {
  const s = SqliteStore.create(join(freshDir(), 'c.sqlite'));
  try {
    for (let i = 0; i < 20_000; i++) s.put(`id${i}`, Buffer.alloc(10, i & 0xff), i < 10_000 ? 1 : 2);
    for (let i = 0; i < 20_000; i += 7) s.delete(`id${i}`);
    for (let i = 1; i < 20_000; i += 7) s.put(`id${i}`, Buffer.alloc(3), 3);
    assert.equal(s.sweep(2, 1_000_000) > 0, true);
    const db = (s as unknown as { db: Database.Database }).db;
    const rows = db.prepare('SELECT k FROM scache_v3').pluck().all() as Buffer[];
    assert.equal(rows.length, s.size);
    for (const k of rows) assert.notEqual(s.get(k.toString('latin1')), undefined);
    for (let i = 0; i < 10_000; i++) if (i % 7 !== 1) assert.equal(s.get(`id${i}`), undefined, `id${i} swept or deleted`);
  } finally {
    s.close();
  }
});
