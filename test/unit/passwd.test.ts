/*
 * passwd - master/passwd.ts over passwd-format files given by path: the uid and gid fields
 * are decimal digits only (an empty field is an error, never uid 0), checkMailOwner() refuses
 * an unknown user, user ID 0, group ID 0 and a uid shared with an earlier entry, in
 * Postfix's words (global/mail_params.c check_mail_owner; the first two also checked
 * against the real tlsmgr in test/integration/mail-owner.test.ts).
 */

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { FatalError } from '../../src/util/errors.js';
import { checkMailOwner, lookupUid, lookupUser } from '../../src/master/passwd.js';

const dir = mkdtempSync(join(tmpdir(), 'tlsmgr-passwd-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

/** A passwd-format file with these lines. */
function passwd(...lines: string[]): string {
  const p = join(dir, `passwd${n++}`);
  writeFileSync(p, `${lines.join('\n')}\n`);
  return p;
}

const fatal = (fn: () => unknown, message: string): void =>
  assert.throws(fn, (e: unknown) => e instanceof FatalError && e.message === message, message);

const BASE = [
  'root:x:0:0:root:/root:/bin/bash',
  'daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin',
  'postfix:x:102:105::/var/spool/postfix:/usr/sbin/nologin',
];

test('lookupUser reads the uid and gid of the named entry, null for an absent name', () => {
  const p = passwd(...BASE);
  assert.deepEqual(lookupUser('postfix', p), { uid: 102, gid: 105 });
  assert.deepEqual(lookupUser('root', p), { uid: 0, gid: 0 });
  assert.equal(lookupUser('nosuchuser', p), null);
  assert.equal(lookupUser('', p), null);
  assert.equal(lookupUser('postfix', join(dir, 'absent')), null);
});

test('an empty, signed, hex, spaced or huge uid or gid field is an error, not 0', () => {
  const cases: Array<[string, string]> = [
    ['postfix:x::105::/:/bin/false', 'user ID field is empty'],
    ['postfix:x:102:::/:/bin/false', 'group ID field is empty'],
    ['postfix:x', 'user ID field is empty'],
    ['postfix:x:102', 'group ID field is empty'],
    ['postfix:x:-1:105::/:/bin/false', 'user ID field is not a decimal number'],
    ['postfix:x:+5:105::/:/bin/false', 'user ID field is not a decimal number'],
    ['postfix:x:0x66:105::/:/bin/false', 'user ID field is not a decimal number'],
    ['postfix:x: 102:105::/:/bin/false', 'user ID field is not a decimal number'],
    ['postfix:x:1e2:105::/:/bin/false', 'user ID field is not a decimal number'],
    ['postfix:x:102:abc::/:/bin/false', 'group ID field is not a decimal number'],
    ['postfix:x:4294967295:105::/:/bin/false', 'user ID field is out of range'],
    ['postfix:x:12345678901:105::/:/bin/false', 'user ID field is not a decimal number'],
  ];
  for (const [line, why] of cases) {
    const p = passwd(BASE[0], line);
    fatal(() => lookupUser('postfix', p), `${p}, line 2: user postfix: ${why}`);
  }
  // A malformed entry of another user does not matter.
  const p = passwd('other:x::::/:/bin/false', BASE[2]);
  assert.deepEqual(lookupUser('postfix', p), { uid: 102, gid: 105 });
});

test('lookupUid is getpwuid: the first well-formed entry with that uid', () => {
  const p = passwd('broken:x::0::/:/bin/false', ...BASE, 'toor:x:0:0::/:/bin/sh');
  assert.equal(lookupUid(0, p), 'root');
  assert.equal(lookupUid(102, p), 'postfix');
  assert.equal(lookupUid(4242, p), null);
});

test('checkMailOwner: Postfix\'s fatals for unknown, uid 0, gid 0, shared uid, an empty uid field', () => {
  const cfg = (mailOwner: string) => ({ mailOwner, configDirectory: '/etc/postfix' });
  const where = 'file /etc/postfix/main.cf: parameter mail_owner';
  const p = passwd(
    ...BASE,
    'wheelie:x:1001:0::/:/bin/false',
    'postfix2:x:102:105::/:/bin/false',
    'emptyuid:x::1002::/:/bin/false',
  );
  assert.deepEqual(checkMailOwner(cfg('postfix'), p), { uid: 102, gid: 105 });
  fatal(() => checkMailOwner(cfg('nosuchuser'), p), `${where}: unknown user name value: nosuchuser`);
  fatal(() => checkMailOwner(cfg('root'), p), `${where}: user root has privileged user ID`);
  fatal(() => checkMailOwner(cfg('wheelie'), p), `${where}: user wheelie has privileged group ID`);
  fatal(() => checkMailOwner(cfg('postfix2'), p), `${where}: user postfix2 has the same user ID 102 as user postfix`);
  // Number('') is 0: read loosely, this user would be root.
  fatal(() => checkMailOwner(cfg('emptyuid'), p), `${p}, line 6: user emptyuid: user ID field is empty`);
});
