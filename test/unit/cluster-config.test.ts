/*
 * cluster-config - the redis: configuration file and the cluster key file (issue 7): defaults,
 * every address form, modes (single, cluster, sentinel) and their conflicts, time units, a
 * required key_file, unknown names warned about; key files: the "id hex" format, comments,
 * the first key seals and every key opens, derived keys differ from the listed ones, mode
 * 0644/0640 refused and 0600/0400 accepted, malformed lines reported by number without the
 * key text, repeated ids, and tlsmgr_tktkey_database values. The key file is parsed as bytes
 * (hardening issue, finding 7): reading one makes no JS string holding any 8 hex digits of
 * the key (Buffer decoding is spied on), and every buffer allocated meanwhile, the file
 * buffer and the decoded key among them, no longer holds the key or its text afterwards.
 */

import assert from 'node:assert/strict';
import { chmodSync, chownSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, mock, test } from 'node:test';
import { configFromTable, parseDuration, parseEndpoint } from '../../src/cluster/config.js';
import { parseClusterKeyBytes, parseClusterKeys, readClusterKeys } from '../../src/cluster/keyfile.js';
import { ClusterMembers, redisFile } from '../../src/cluster/members.js';
import { openTicketKeys } from '../../src/tickets/open.js';
import { systemClock } from '../../src/util/clock.js';
import { FatalError } from '../../src/util/errors.js';
import { TicketKeyRing } from '../../src/tickets/keys.js';
import { randomBytes } from 'node:crypto';
import { testConfig } from '../helpers/attr.js';

const dir = mkdtempSync(join(tmpdir(), 'tlsmgr-cluster-config-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const table = (o: Record<string, string>): Map<string, string> => new Map(Object.entries({ key_file: '/k', ...o }));
const fatal = (fn: () => unknown, re: RegExp): void =>
  assert.throws(fn, (e: unknown) => e instanceof FatalError && re.test(e.message));
const KEY1 = 'a1'.repeat(32);
const KEY2 = 'b2'.repeat(32);

test('defaults: one server on 127.0.0.1:6379, prefix tlsmgr:, 100 ms calls, 1 s connect, 10 s backoff cap', () => {
  const c = configFromTable(table({}), 'x.cf');
  assert.equal(c.mode, 'single');
  assert.deepEqual(c.hosts, [{ host: '127.0.0.1', port: 6379 }]);
  assert.equal(c.keyPrefix, 'tlsmgr:');
  assert.equal(c.timeout, 100);
  assert.equal(c.connectTimeout, 1000);
  assert.equal(c.retryMaxDelay, 10000);
  assert.equal(c.database, 0);
  assert.equal(c.tls, null);
});

test('addresses: host, host:port, [v6]:port, unix:/path and /path; bad ones are fatal', () => {
  assert.deepEqual(parseEndpoint('w', 'redis.example', 6379), { host: 'redis.example', port: 6379 });
  assert.deepEqual(parseEndpoint('w', '10.0.0.1:7000', 6379), { host: '10.0.0.1', port: 7000 });
  assert.deepEqual(parseEndpoint('w', '[::1]:7001', 6379), { host: '::1', port: 7001 });
  assert.deepEqual(parseEndpoint('w', 'unix:/run/redis.sock', 6379), { path: '/run/redis.sock' });
  assert.deepEqual(parseEndpoint('w', '/run/redis.sock', 6379), { path: '/run/redis.sock' });
  fatal(() => parseEndpoint('w', 'host:0', 6379), /^w: bad address: host:0$/);
  fatal(() => parseEndpoint('w', 'host:70000', 6379), /bad address/);
  fatal(() => parseEndpoint('w', ':6379', 6379), /bad address/);
});

test('times: ms s m h; a bare number takes the default unit; junk is fatal', () => {
  assert.equal(parseDuration('t', '250ms', 's'), 250);
  assert.equal(parseDuration('t', '2s', 'ms'), 2000);
  assert.equal(parseDuration('t', '250', 'ms'), 250);
  assert.equal(parseDuration('t', '3', 's'), 3000);
  assert.equal(parseDuration('t', '1m', 'ms'), 60000);
  fatal(() => parseDuration('t', '1x', 's'), /^t: bad time value or unit: 1x$/);
  fatal(() => parseDuration('t', '-1', 's'), /bad time value/);
});

test('modes: cluster seeds, sentinels with a master name; conflicts are fatal', () => {
  const cl = configFromTable(table({ hosts: '10.0.0.1:7000, 10.0.0.2:7000', cluster: 'yes' }), 'c.cf');
  assert.equal(cl.mode, 'cluster');
  assert.equal(cl.hosts.length, 2);
  const se = configFromTable(table({ sentinels: '10.0.0.1 10.0.0.2:26380', sentinel_master: 'mx' }), 's.cf');
  assert.equal(se.mode, 'sentinel');
  assert.deepEqual(se.sentinels, [{ host: '10.0.0.1', port: 26379 }, { host: '10.0.0.2', port: 26380 }]);
  fatal(() => configFromTable(table({ sentinels: '10.0.0.1' }), 's.cf'), /^s\.cf: sentinel_master: required with sentinels$/);
  fatal(() => configFromTable(table({ sentinels: '10.0.0.1', hosts: 'h', sentinel_master: 'm' }), 's.cf'), /either hosts or sentinels/);
  fatal(() => configFromTable(table({ hosts: 'h:1', cluster: 'yes', database: '2' }), 'c.cf'), /only database 0/);
  fatal(() => configFromTable(table({ hosts: '/s', cluster: 'yes' }), 'c.cf'), /cluster nodes must be host:port/);
  fatal(() => configFromTable(table({ cluster: 'maybe' }), 'c.cf'), /bad boolean value: maybe/);
});

test('key_file is required; unknown names are warned about; tls files are read at once', () => {
  fatal(() => configFromTable(new Map(), 'x.cf'), /^x\.cf: key_file: required/);
  const warnings: string[] = [];
  configFromTable(table({ hostz: 'h' }), 'x.cf', (m) => warnings.push(m));
  assert.deepEqual(warnings, ['x.cf: unknown parameter "hostz" ignored']);
  fatal(() => configFromTable(table({ tls: 'yes', tls_ca_file: join(dir, 'absent.pem') }), 'x.cf'), /tls_ca_file: cannot read/);
  writeFileSync(join(dir, 'ca.pem'), 'CA');
  const c = configFromTable(table({ tls: 'yes', tls_ca_file: join(dir, 'ca.pem'), tls_server_name: 'r.example' }), 'x.cf');
  assert.equal(c.tls?.ca?.toString(), 'CA');
  assert.equal(c.tls?.servername, 'r.example');
});

test('key file: the first key seals, every listed key opens; comments and blank lines skipped', () => {
  const old = parseClusterKeys(`# old\n1 ${KEY1}\n`, 'k');
  const rolling = parseClusterKeys(`2 ${KEY2}\n\n1 ${KEY1}\n`, 'k');
  assert.deepEqual(rolling.idKeys.map((k) => k.id), [2, 1]);
  const id = Buffer.from('mx.example:25');
  const s = Buffer.from('session bytes');
  const byOld = old.sealer.seal('smtp', id, 100, s);
  const byNew = rolling.sealer.seal('smtp', id, 100, s);
  assert.equal(byNew.readUInt32BE(1), 2, 'the first key seals');
  const a = rolling.sealer.open('smtp', id, byOld);
  assert.ok(a.ok && a.session.equals(s), 'a record of the old key still opens');
  const b = old.sealer.open('smtp', id, byNew);
  assert.ok(!b.ok && /unknown key id 2/.test(b.reason));
});

test('key file: malformed lines by number, never echoing key text; repeated ids; no keys', () => {
  fatal(() => parseClusterKeys(`1 ${KEY1.slice(2)}\n`, 'k'), /^k, line 1: expected "<key id> <64 hex digits>"$/);
  fatal(() => parseClusterKeys(`# c\n1 ${KEY1}\n1 ${KEY2}\n`, 'k'), /^k, line 3: key id 1 listed twice$/);
  fatal(() => parseClusterKeys('# nothing\n', 'k'), /^k: no keys$/);
  fatal(() => parseClusterKeys(`4294967296 ${KEY1}\n`, 'k'), /over 4294967295/);
  try {
    parseClusterKeys(`1 ${KEY1}zz\n`, 'k');
  } catch (e) {
    assert.ok(!(e as Error).message.includes(KEY1));
  }
});

test('key file: parsed as bytes: CRLF, tabs, upper-case hex, no final newline; the same keys as the text API', () => {
  const text = `# comment\r\n\t 2\t${KEY2.toUpperCase()} \r\n\r\n1 ${KEY1}`;
  const fromBytes = parseClusterKeyBytes(Buffer.from(text, 'latin1'), 'k');
  const fromText = parseClusterKeys(`2 ${KEY2}\n1 ${KEY1}\n`, 'k');
  assert.deepEqual(fromBytes.idKeys.map((k) => k.id), [2, 1]);
  const id = Buffer.from('mx.example:25');
  const r = fromText.sealer.open('smtp', id, fromBytes.sealer.seal('smtp', id, 100, Buffer.from('s')));
  assert.ok(r.ok, 'the same sealing keys from both paths');
  const input = Buffer.from(`1 ${KEY1}\n`, 'latin1');
  parseClusterKeyBytes(input, 'k');
  assert.equal(input.toString('latin1'), `1 ${KEY1}\n`, 'the caller\'s bytes are the caller\'s to wipe');
  for (const bad of [`1${KEY1}`, `1 ${KEY1} 2`, `x1 ${KEY1}`, `12345678901 ${KEY1}`, `1 ${KEY1.slice(0, 63)}g`, `1 ${KEY1}0`, `1\xa0${KEY1}`]) {
    fatal(() => parseClusterKeyBytes(Buffer.from(`# c\n\n${bad}\n`, 'latin1'), 'k'), /^k, line 3: expected "<key id> <64 hex digits>"$/);
  }
  fatal(() => parseClusterKeyBytes(Buffer.from(Array.from({ length: 17 }, (_, i) => `${i} ${KEY1}`).join('\n')), 'k'), /^k: more than 16 keys$/);
  fatal(() => parseClusterKeyBytes(Buffer.from(`0000000007 ${KEY1}\n7 ${KEY2}`), 'k'), /^k, line 2: key id 7 listed twice$/);
  fatal(() => parseClusterKeyBytes(Buffer.from(`9999999999 ${KEY1}`), 'k'), /^k, line 1: key id 9999999999 is over 4294967295$/);
});

/*
 * spyStrings - every string that Buffer decoding produces while fn runs: Buffer.prototype's
 * toString() and the *Slice() methods it is built on, plus TextDecoder.decode().
 */
function spyStrings(fn: () => void): string[] {
  const made: string[] = [];
  const protos: Array<[object, string]> = [
    ...['toString', 'latin1Slice', 'asciiSlice', 'utf8Slice', 'hexSlice', 'ucs2Slice', 'base64Slice', 'base64urlSlice']
      .map((m): [object, string] => [Buffer.prototype, m]),
    [TextDecoder.prototype, 'decode'],
  ];
  const saved = protos.map(([o, m]) => Object.getOwnPropertyDescriptor(o, m));
  for (const [o, m] of protos) {
    const orig = (o as Record<string, unknown>)[m];
    if (typeof orig !== 'function') continue;
    Object.defineProperty(o, m, {
      configurable: true,
      writable: true,
      value: function (this: unknown, ...args: unknown[]): unknown {
        const r: unknown = Reflect.apply(orig, this, args);
        if (typeof r === 'string') made.push(r);
        return r;
      },
    });
  }
  try {
    fn();
  } finally {
    protos.forEach(([o, m], i) => {
      const d = saved[i];
      if (d !== undefined) Object.defineProperty(o, m, d);
    });
  }
  return made;
}

test('key file: the key text never becomes a JS string; every buffer it passed through is zeroed', () => {
  const p = join(dir, 'strings.key');
  const key = randomBytes(32);
  const keyHex = key.toString('hex');
  writeFileSync(p, `# a key\n3 ${keyHex}\n`, { mode: 0o600 });
  const allocated: Buffer[] = [];
  const original = Buffer.alloc.bind(Buffer);
  const alloc = mock.method(Buffer, 'alloc', (...args: Parameters<typeof Buffer.alloc>): Buffer => {
    const b = original(...args);
    allocated.push(b);
    return b;
  });
  let keys: ReturnType<typeof readClusterKeys> | undefined;
  let strings: string[];
  try {
    strings = spyStrings(() => {
      keys = readClusterKeys(p);
    });
  } finally {
    alloc.mock.restore();
  }
  assert.ok(keys !== undefined && keys.idKeys[0].id === 3);
  // Any 8 hex digits of the key (either case) in any string made meanwhile would be a copy.
  const windows = Array.from({ length: keyHex.length - 7 }, (_, i) => keyHex.slice(i, i + 8));
  for (const s of strings) {
    const low = s.toLowerCase();
    assert.ok(!windows.some((w) => low.includes(w)), 'a string holding key text was made');
  }
  // The file buffer and the decoded key are among the allocations; none holds the key now.
  assert.ok(allocated.some((b) => b.length === 64 * 1024 + 1), 'the file buffer was seen');
  for (const b of allocated) {
    assert.equal(b.indexOf(keyHex, 0, 'latin1'), -1, `a ${b.length}-byte buffer still holds the key text`);
    assert.equal(b.indexOf(key), -1, `a ${b.length}-byte buffer still holds the key`);
  }
});

test('key file modes: 0644 and 0640 refused, 0600 and 0400 accepted', () => {
  const p = join(dir, 'cluster.key');
  writeFileSync(p, `1 ${KEY1}\n`);
  for (const mode of [0o644, 0o640, 0o604, 0o620]) {
    chmodSync(p, mode);
    fatal(() => readClusterKeys(p), new RegExp(`mode 0${mode.toString(8)} gives access to group or others: use chmod 600$`));
  }
  for (const mode of [0o600, 0o400]) {
    chmodSync(p, mode);
    assert.equal(readClusterKeys(p).idKeys.length, 1);
  }
  fatal(() => readClusterKeys(join(dir, 'absent.key')), /^open cluster key file .*absent\.key: /);
  fatal(() => readClusterKeys(dir), /not a regular file/);
});

test('key file owner: root, $mail_owner or the reading user only; another user\'s is refused', { skip: process.geteuid?.() !== 0 && 'needs root' }, () => {
  const p = join(dir, 'owned.key');
  writeFileSync(p, `1 ${KEY1}\n`, { mode: 0o600 });
  assert.equal(readClusterKeys(p).idKeys.length, 1);
  chownSync(p, 65534, 65534);
  fatal(() => readClusterKeys(p), /^cluster key file .*owned\.key is owned by uid 65534: use chown root .*owned\.key$/);
  fatal(() => readClusterKeys(p, undefined, { mailOwner: 'postfix' }), /owned by uid 65534: use chown root .*owned\.key \(or chown postfix .*owned\.key\)$/);
  assert.equal(readClusterKeys(p, undefined, { mailOwner: 'nobody' }).idKeys.length, 1, '$mail_owner may own it');
});

test('tlsmgr_tktkey_database: empty follows smtpd, none is local, junk is fatal', () => {
  assert.equal(redisFile('redis:/etc/postfix/r.cf'), '/etc/postfix/r.cf');
  assert.equal(redisFile('btree:/x'), undefined);
  const members = new ClusterMembers({ clock: systemClock, warn: () => undefined, random: randomBytes });
  const deps = { members, random: randomBytes, clock: systemClock, warn: () => undefined };
  const local = new TicketKeyRing(randomBytes);
  assert.equal(openTicketKeys(testConfig(), local, deps), local, 'smtpd on btree: keeps local keys');
  const none = { ...testConfig(), tktkeyDatabase: 'none' };
  assert.equal(openTicketKeys(none, local, deps), local);
  const junk = { ...testConfig(), tktkeyDatabase: 'btree:/x' };
  fatal(() => openTicketKeys(junk, local, deps), /^tlsmgr_tktkey_database = btree:\/x: use redis:<file>, none, or leave it empty$/);
  fatal(() => openTicketKeys({ ...testConfig(), tktkeyDatabase: 'redis:' }, local, deps), /missing file name/);
  members.close();
});
