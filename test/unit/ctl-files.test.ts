// Tests for ctl/entry.ts (the $daemon_directory/tlsmgr-node script), ctl/files.ts (race-free
// writes, backups, removal) and ctl/trusted.ts (paths only root can change). The owner checks
// need root (chown); as another user those parts are skipped.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  chmodSync, chownSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync,
  statSync, symlinkSync, writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CtlError } from '../../src/ctl/command.js';
import {
  ENTRY_MARKER, entryTarget, packageDaemon, packageRoot, readEntry, renderEntry, shebangNodeArgs, shellQuote,
} from '../../src/ctl/entry.js';
import { backupFile, removeFile, writeFileSafely } from '../../src/ctl/files.js';
import { pathProblems, treeProblems } from '../../src/ctl/trusted.js';

const REPO = fileURLToPath(new URL('../../../', import.meta.url)).replace(/\/$/, '');
const isRoot = process.geteuid?.() === 0;
const NOBODY = 65534;

function scratch(): string {
  const d = mkdtempSync(join(tmpdir(), 'tlsmgr-ctl-unit-'));
  chmodSync(d, 0o755);
  return d;
}

test('shebangNodeArgs reads the V8 options of bin/tlsmgr, and none from other #! lines', () => {
  assert.deepEqual(shebangNodeArgs(readFileSync(join(REPO, 'bin', 'tlsmgr'), 'utf8')), ['--max-semi-space-size=1', '--max-old-space-size=1024', '--v8-pool-size=1']);
  assert.deepEqual(shebangNodeArgs('#!/usr/bin/env node\n'), []);
  assert.deepEqual(shebangNodeArgs('#!/usr/bin/env -S node\n'), []);
  assert.deepEqual(shebangNodeArgs('#!/usr/bin/env -S node  --a=1   --b \nx'), ['--a=1', '--b']);
});

test('packageDaemon: this node and this package\'s bin/tlsmgr', () => {
  assert.equal(packageRoot(), REPO);
  const t = packageDaemon();
  assert.equal(t.node, process.execPath);
  assert.equal(t.daemon, join(REPO, 'bin', 'tlsmgr'));
  assert.deepEqual(t.nodeArgs, ['--max-semi-space-size=1', '--max-old-space-size=1024', '--v8-pool-size=1']);
});

test('renderEntry: sh runs exactly the node, options and daemon given, then master\'s arguments', () => {
  const dir = scratch();
  try {
    // printf stands in for node: it prints each word it gets on a line of its own.
    const daemon = `/opt/it's a "dir"/$HOME/\`x\`\\n/bin/tlsmgr`;
    const t = { node: '/usr/bin/printf', nodeArgs: ['[%s]\\n'], daemon };
    const text = renderEntry(t);
    assert.equal(text.split('\n')[0], '#!/bin/sh');
    assert.equal(text.split('\n')[1], ENTRY_MARKER);
    writeFileSync(join(dir, 'entry'), text, { mode: 0o755 });
    const r = spawnSync(join(dir, 'entry'), ['-l', '-n', 'tlsmgr', 'a b'], { encoding: 'utf8', env: {} });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, `[${daemon}]\n[-l]\n[-n]\n[tlsmgr]\n[a b]\n`);
    assert.deepEqual(entryTarget(text), t);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('entryTarget: only an entry exactly as renderEntry writes it', () => {
  const t = { node: '/usr/bin/node', nodeArgs: ['--max-semi-space-size=1'], daemon: '/usr/lib/node_modules/tlsmgr/bin/tlsmgr' };
  const text = renderEntry(t);
  assert.deepEqual(entryTarget(text), t);
  assert.equal(shellQuote(`a'b`), `'a'\\''b'`);
  assert.equal(entryTarget(text.replace(ENTRY_MARKER, '# mine')), undefined);
  assert.equal(entryTarget(text.replace(' "$@"', '')), undefined);
  assert.equal(entryTarget(text.replace(`'/usr/bin/node'`, '/usr/bin/node')), undefined);
  assert.equal(entryTarget(`${text}rm -rf /\n`), undefined);
  assert.equal(entryTarget(text.replace('exec ', 'exec  ')), undefined);
});

test('readEntry: absent, ours, or foreign (no marker, a link, a directory)', () => {
  const dir = scratch();
  try {
    const p = join(dir, 'tlsmgr-node');
    assert.deepEqual(readEntry(p), { kind: 'absent' });
    const t = { node: '/usr/bin/node', nodeArgs: [], daemon: '/x/bin/tlsmgr' };
    writeFileSync(p, renderEntry(t));
    assert.deepEqual(readEntry(p), { kind: 'ours', text: renderEntry(t), target: t });
    writeFileSync(join(dir, 'other'), '#!/bin/sh\nexec /usr/bin/false\n');
    assert.deepEqual(readEntry(join(dir, 'other')), { kind: 'foreign', why: 'not written by tlsmgr-ctl' });
    symlinkSync(p, join(dir, 'link'));
    assert.deepEqual(readEntry(join(dir, 'link')), { kind: 'foreign', why: 'not a regular file' });
    mkdirSync(join(dir, 'sub'));
    assert.deepEqual(readEntry(join(dir, 'sub')), { kind: 'foreign', why: 'not a regular file' });
    writeFileSync(p, `${renderEntry(t)}# edited\n`);
    const edited = readEntry(p);
    assert.equal(edited.kind, 'ours');
    assert.equal(edited.kind === 'ours' ? edited.target : 'x', undefined, 'an edited entry is ours but not up to date');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('writeFileSafely: whole file, exact mode whatever the umask, owned by root, a link at the name replaced not followed', () => {
  const dir = scratch();
  const old = process.umask(0o077);
  try {
    const victim = join(dir, 'victim');
    writeFileSync(victim, 'keep me\n');
    symlinkSync(victim, join(dir, 'tlsmgr-node'));
    writeFileSafely(dir, 'tlsmgr-node', '#!/bin/sh\nexit 0\n', 0o755);
    const st = lstatSync(join(dir, 'tlsmgr-node'));
    assert.ok(st.isFile(), 'a regular file, not the link');
    assert.equal(st.mode & 0o7777, 0o755);
    if (isRoot) assert.deepEqual([st.uid, st.gid], [0, 0]);
    assert.equal(readFileSync(join(dir, 'tlsmgr-node'), 'utf8'), '#!/bin/sh\nexit 0\n');
    assert.equal(readFileSync(victim, 'utf8'), 'keep me\n', 'the link\'s target is untouched');
    assert.deepEqual(readdirSync(dir).sort(), ['tlsmgr-node', 'victim'], 'no temporary file left');
    assert.throws(() => writeFileSafely(join(dir, 'missing'), 'x', 'y', 0o755),
      (e: unknown) => e instanceof CtlError && /^cannot write .*\/missing\/x: /.test(e.message));
  } finally {
    process.umask(old);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('backupFile: a timestamped copy beside the file, with its mode; a second one in the same second gets .1', () => {
  const dir = scratch();
  try {
    const cf = join(dir, 'master.cf');
    writeFileSync(cf, 'tlsmgr unix - - y 1000? 1 tlsmgr\n', { mode: 0o640 });
    chmodSync(cf, 0o640);
    const now = new Date(Date.UTC(2026, 0, 2, 3, 4, 5, 678));
    const a = backupFile(cf, now);
    const b = backupFile(cf, now);
    assert.equal(a, `${cf}.tlsmgr-ctl.20260102T030405Z`);
    assert.equal(b, `${a}.1`);
    for (const p of [a, b]) {
      assert.equal(readFileSync(p, 'utf8'), readFileSync(cf, 'utf8'));
      assert.equal(statSync(p).mode & 0o777, 0o640);
    }
    symlinkSync(cf, join(dir, 'link.cf'));
    assert.throws(() => backupFile(join(dir, 'link.cf'), now), (e: unknown) => e instanceof CtlError && /^cannot back up /.test(e.message));
    assert.equal(existsSync(join(dir, 'link.cf.tlsmgr-ctl.20260102T030405Z')), false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('removeFile: true when removed, false when there was nothing', () => {
  const dir = scratch();
  try {
    writeFileSync(join(dir, 'f'), '');
    assert.equal(removeFile(join(dir, 'f')), true);
    assert.equal(removeFile(join(dir, 'f')), false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('pathProblems: root\'s paths pass; a writable directory, a link into one, a missing path do not', () => {
  assert.deepEqual(pathProblems('/'), []);
  assert.deepEqual(pathProblems('relative/path'), ['relative/path: not an absolute path']);
  const dir = scratch();
  try {
    const uid = process.geteuid?.() ?? 0;
    const opts = { uid };
    mkdirSync(join(dir, 'good'), { mode: 0o755 });
    writeFileSync(join(dir, 'good', 'file'), '', { mode: 0o644 });
    assert.deepEqual(pathProblems(join(dir, 'good', 'file'), opts), []);

    mkdirSync(join(dir, 'open'));
    chmodSync(join(dir, 'open'), 0o777);
    writeFileSync(join(dir, 'open', 'file'), '', { mode: 0o644 });
    assert.deepEqual(pathProblems(join(dir, 'open', 'file'), opts), [`${dir}/open: writable by group or others (mode 0777)`]);

    mkdirSync(join(dir, 'group'));
    chmodSync(join(dir, 'group'), 0o775);
    assert.deepEqual(pathProblems(join(dir, 'group'), opts), [`${dir}/group: writable by group or others (mode 0775)`]);

    writeFileSync(join(dir, 'good', 'gw'), '');
    chmodSync(join(dir, 'good', 'gw'), 0o664);
    assert.deepEqual(pathProblems(join(dir, 'good', 'gw'), opts), [`${dir}/good/gw: writable by group or others (mode 0664)`]);

    // A link is followed: what it names must be safe too, and the link is checked where it is.
    symlinkSync(join(dir, 'open'), join(dir, 'good', 'to-open'));
    assert.deepEqual(pathProblems(join(dir, 'good', 'to-open', 'file'), opts), [`${dir}/open: writable by group or others (mode 0777)`]);
    symlinkSync('../good', join(dir, 'open', 'back'));
    assert.deepEqual(pathProblems(join(dir, 'open', 'back', 'file'), opts), [`${dir}/open: writable by group or others (mode 0777)`]);
    symlinkSync('file', join(dir, 'good', 'rel'));
    assert.deepEqual(pathProblems(join(dir, 'good', 'rel'), opts), []);

    assert.deepEqual(pathProblems(join(dir, 'good', 'none'), opts), [`${dir}/good/none: does not exist`]);
    assert.deepEqual(pathProblems(join(dir, 'good', 'file', 'x'), opts), [`${dir}/good/file: not a directory`]);
    symlinkSync('loop', join(dir, 'good', 'loop'));
    assert.deepEqual(pathProblems(join(dir, 'good', 'loop'), opts), [`${dir}/good/loop: too many levels of symbolic links`]);

    // Sticky and world-writable (/tmp's way): fine when what is in it is the owner's.
    mkdirSync(join(dir, 'sticky'));
    chmodSync(join(dir, 'sticky'), 0o1777);
    writeFileSync(join(dir, 'sticky', 'mine'), '', { mode: 0o644 });
    assert.deepEqual(pathProblems(join(dir, 'sticky', 'mine'), opts), []);
    if (isRoot) {
      writeFileSync(join(dir, 'sticky', 'theirs'), '', { mode: 0o644 });
      chownSync(join(dir, 'sticky', 'theirs'), NOBODY, NOBODY);
      assert.deepEqual(pathProblems(join(dir, 'sticky', 'theirs')), [`${dir}/sticky/theirs: owned by uid ${NOBODY}, not by root`]);
      chownSync(join(dir, 'good'), NOBODY, 0);
      assert.deepEqual(pathProblems(join(dir, 'good', 'file')), [`${dir}/good: owned by uid ${NOBODY}, not by root`]);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('treeProblems: everything under a directory, not following links, bounded', () => {
  const dir = scratch();
  try {
    const uid = process.geteuid?.() ?? 0;
    mkdirSync(join(dir, 'pkg', 'dist', 'src'), { recursive: true, mode: 0o755 });
    for (const f of ['a.js', 'b.js', 'c.js']) writeFileSync(join(dir, 'pkg', 'dist', 'src', f), '', { mode: 0o644 });
    symlinkSync('/tmp', join(dir, 'pkg', 'link'));
    assert.deepEqual(treeProblems(join(dir, 'pkg'), { uid }), []);
    chmodSync(join(dir, 'pkg', 'dist', 'src', 'b.js'), 0o666);
    assert.deepEqual(treeProblems(join(dir, 'pkg'), { uid }), [`${dir}/pkg/dist/src/b.js: writable by group or others (mode 0666)`]);
    chmodSync(join(dir, 'pkg', 'dist', 'src', 'c.js'), 0o646);
    assert.equal(treeProblems(join(dir, 'pkg'), { uid, max: 1 }).length, 1);
    assert.deepEqual(treeProblems(join(dir, 'pkg'), { uid, limit: 3 }).slice(-1), [`${dir}/pkg: more than 3 entries; not all checked`]);
    if (isRoot) {
      chmodSync(join(dir, 'pkg', 'dist', 'src', 'b.js'), 0o644);
      chmodSync(join(dir, 'pkg', 'dist', 'src', 'c.js'), 0o644);
      chownSync(join(dir, 'pkg', 'dist', 'src', 'a.js'), NOBODY, NOBODY);
      assert.deepEqual(treeProblems(join(dir, 'pkg')), [`${dir}/pkg/dist/src/a.js: owned by uid ${NOBODY}, not by root`]);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
