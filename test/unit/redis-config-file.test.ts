/*
 * redis-config-file - readRedisConfig() (cluster/config.ts) as a file: one holding a password
 * must be a regular file named directly, owned by root or $mail_owner, mode at most 0640,
 * else a fatal that names the file, what was found and the fix; a file without a password
 * has no such rule; and no message made while reading the file or its key file (override
 * warnings, a malformed line, a bad value the password was joined to) carries the password,
 * in clear, hex or base64.
 */

import assert from 'node:assert/strict';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { randomBytes } from 'node:crypto';
import { readRedisConfig } from '../../src/cluster/config.js';
import { ClusterMembers } from '../../src/cluster/members.js';
import { systemClock } from '../../src/util/clock.js';
import { FatalError } from '../../src/util/errors.js';
import { lookupUser } from '../../src/master/passwd.js';

const dir = mkdtempSync(join(tmpdir(), 'tlsmgr-redis-cf-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const isRoot = process.geteuid?.() === 0;
const PW1 = 'Old-Pass-4f9c2e';
const PW2 = 'New-Pass-b81d07';
let n = 0;

/** A redis: configuration file with these lines, at `mode`. */
function cf(lines: readonly string[], mode = 0o600): string {
  const p = join(dir, `r${n++}.cf`);
  writeFileSync(p, `${lines.join('\n')}\n`);
  chmodSync(p, mode);
  return p;
}

const base = ['hosts = 127.0.0.1:6379', 'key_file = /etc/postfix/tlsmgr-cluster.key'];

function fatalMessage(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof FatalError, String(e));
    return e.message;
  }
  assert.fail('no FatalError');
}

/** Every form of the passwords that must not appear: clear, hex, base64 (and base64url). */
function assertNoSecret(texts: readonly string[]): void {
  for (const pw of [PW1, PW2]) {
    const b = Buffer.from(pw);
    for (const form of [pw, b.toString('hex'), b.toString('hex').toUpperCase(), b.toString('base64'), b.toString('base64url')]) {
      for (const t of texts) assert.ok(!t.includes(form), `"${t}" carries ${form}`);
    }
  }
}

test('a password set twice and a malformed line holding it: neither value reaches a message', () => {
  const warnings: string[] = [];
  const p = cf([...base, `password = ${PW1}`, `password = ${PW2}`, `${PW2} password`]);
  const msg = fatalMessage(() => readRedisConfig(p, (m) => warnings.push(m)));
  assert.equal(msg, `${p}, line 5: missing '=' after attribute name (text not shown)`);
  assert.deepEqual(warnings, [`${p}, line 4: overriding earlier entry: password (value not shown)`]);
  assertNoSecret([msg, ...warnings]);
});

test('a password joined to another value by an indented line is cut out of the message', () => {
  const warnings: string[] = [];
  const p = cf([...base, `password = ${PW2}`, 'timeout = 100ms', `  ${PW2}`]);
  const msg = fatalMessage(() => readRedisConfig(p, (m) => warnings.push(m)));
  assert.equal(msg, `${p}: timeout: bad time value or unit: 100ms  (hidden)`);
  const q = cf([...base, `password = ${PW2}`, 'tls = yes', `tls_ca_file = /nonexistent/${PW2}`, `hostz${PW2} = 1`]);
  const msg2 = fatalMessage(() => readRedisConfig(q, (m) => warnings.push(m)));
  assert.match(msg2, /^.*: tls_ca_file: cannot read \/nonexistent\/\(hidden\): /);
  assert.deepEqual(warnings, [`${q}: unknown parameter (name not shown) ignored`]);
  assertNoSecret([msg, msg2, ...warnings]);
});

test('a mistyped password line ("password:<secret>") becomes an unknown name that is not shown', () => {
  const warnings: string[] = [];
  const p = cf([...base, `password:${PW1}==`]); // base64 padding makes it name = value
  readRedisConfig(p, (m) => warnings.push(m));
  assert.deepEqual(warnings, [`${p}: unknown parameter (name not shown) ignored`]);
  assertNoSecret(warnings);
});

test('a password joined to key_file\'s value is cut out of the key file\'s fatal too (ClusterMembers)', () => {
  const p = cf(['hosts = 127.0.0.1:6379', `password = ${PW1}`, `key_file = ${join(dir, 'absent.key')}`, `  ${PW1}`]);
  const members = new ClusterMembers({ clock: systemClock, warn: () => undefined, random: randomBytes });
  const msg = fatalMessage(() => members.member(p, 'smtpd_tls_session_cache_database'));
  assert.match(msg, /^open cluster key file .*absent\.key {2}\(hidden\): /);
  assertNoSecret([msg]);
  members.close();
});

test('with a password: mode 0600, 0640, 0400 and 0440 do; anything beyond 0640 is fatal with the chmod to use', () => {
  for (const mode of [0o600, 0o640, 0o400, 0o440]) {
    const c = readRedisConfig(cf([...base, `password = ${PW1}`], mode));
    assert.equal(c.password, PW1);
  }
  for (const mode of [0o644, 0o604, 0o660, 0o620, 0o641, 0o700, 0o740, 0o4600]) {
    const p = cf([...base, `password = ${PW1}`], mode);
    assert.equal(
      fatalMessage(() => readRedisConfig(p)),
      `redis configuration file ${p} holds a password but has mode 0${mode.toString(8)}, more than 0640: use chmod 640 (or chmod 600)`,
    );
  }
});

test('without a password: no mode, owner or link rule (an empty password is none)', () => {
  const p = cf(base, 0o644);
  assert.equal(readRedisConfig(p).password, '');
  assert.equal(readRedisConfig(cf([...base, 'password ='], 0o666)).password, '');
  const link = join(dir, `link${n++}.cf`);
  symlinkSync(p, link);
  assert.equal(readRedisConfig(link).hosts.length, 1);
});

test('with a password: a symbolic link is refused, not followed to a file it could be swapped for', () => {
  const p = cf([...base, `password = ${PW1}`], 0o600);
  const link = join(dir, `link${n++}.cf`);
  symlinkSync(p, link);
  assert.equal(
    fatalMessage(() => readRedisConfig(link)),
    `redis configuration file ${link} holds a password but is a symbolic link: name the file itself in the redis: table`,
  );
  assert.equal(readRedisConfig(p).password, PW1);
});

test('not a regular file, a missing file: fatal as for main.cf', () => {
  const d = join(dir, `d${n++}`);
  mkdirSync(d);
  assert.equal(fatalMessage(() => readRedisConfig(d)), `redis configuration file ${d}: not a regular file`);
  assert.equal(fatalMessage(() => readRedisConfig(join(dir, 'absent.cf'))), `open ${join(dir, 'absent.cf')}: No such file or directory`);
});

const postfix = lookupUser('postfix');
test('with a password: owned by root or $mail_owner; another owner is fatal with the chown to use',
  { skip: (!isRoot && 'needs root (chown)') || (postfix === null && 'no postfix user') }, () => {
    assert.ok(postfix !== null);
    const p = cf([...base, `password = ${PW1}`], 0o640);
    chownSync(p, postfix.uid, postfix.gid);
    assert.equal(readRedisConfig(p, undefined, { mailOwner: 'postfix' }).password, PW1);
    assert.equal(
      fatalMessage(() => readRedisConfig(p)),
      `redis configuration file ${p} holds a password but is owned by uid ${postfix.uid}: use chown root ${p}`,
    );
    chownSync(p, 54321, 54321);
    assert.equal(
      fatalMessage(() => readRedisConfig(p, undefined, { mailOwner: 'postfix' })),
      `redis configuration file ${p} holds a password but is owned by uid 54321: use chown root ${p} (or chown postfix ${p})`,
    );
    // Without a password the owner does not matter.
    const q = cf(base, 0o644);
    chownSync(q, 54321, 54321);
    assert.equal(readRedisConfig(q, undefined, { mailOwner: 'postfix' }).password, '');
  });
