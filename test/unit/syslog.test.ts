/*
 * syslog - the record formats of log/syslog (spec 5.8): syslog(3)'s "<PRI>Mmm dd hh:mm:ss
 * ident[pid]: text" with a space-padded day, and msg_logger.c's postlog record "Mmm dd
 * hh:mm:ss host ident[pid]: text" with a zero-padded day ("%b %d") and the first label of the
 * host name. Both sinks send to a datagram socket this test binds (unix-dgram); the raw
 * watchdog targets carry the same prefixes. Every wait is bounded and ends when the
 * datagram arrives.
 */

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { facilityCode, openPostlogSink, openSyslogSink, postlogStamp, syslogStamp } from '../../src/log/syslog.js';
import { Signal } from '../helpers/signal.js';

interface DgramSocket {
  on(event: 'message', fn: (buf: Buffer) => void): void;
  bind(path: string): void;
  close(): void;
}
const require = createRequire(import.meta.url);
const unixDgram = require('unix-dgram') as { createSocket(type: 'unix_dgram'): DgramSocket };

let dir: string;
let sock: DgramSocket;
const got: string[] = [];
const arrived = new Signal();

async function next(ms = 2000): Promise<string> {
  await arrived.until(() => got.length > 0, ms, 'a datagram');
  return got.shift() as string;
}

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'tlsmgr-syslog-'));
  sock = unixDgram.createSocket('unix_dgram');
  sock.on('message', (b) => {
    got.push(b.toString('utf8'));
    arrived.wake();
  });
  sock.bind(join(dir, 'log'));
});

after(() => {
  sock.close();
  rmSync(dir, { recursive: true, force: true });
});

test('time stamps: syslog pads the day with a space, postlog with a zero', () => {
  const d = new Date(2026, 10, 5, 1, 2, 3);
  assert.equal(syslogStamp(d), 'Nov  5 01:02:03');
  assert.equal(postlogStamp(d), 'Nov 05 01:02:03');
  const d2 = new Date(2026, 0, 25, 23, 59, 9);
  assert.equal(syslogStamp(d2), 'Jan 25 23:59:09');
  assert.equal(postlogStamp(d2), 'Jan 25 23:59:09');
});

test('facility codes', () => {
  assert.equal(facilityCode('mail'), 2);
  assert.equal(facilityCode('LOCAL7'), 23);
  assert.equal(facilityCode('nonsense'), undefined);
});

test('syslog sink: <PRI>stamp ident[pid]: text; PRI = facility * 8 + severity', async () => {
  const s = openSyslogSink({ path: join(dir, 'log'), facility: 'mail', ident: () => 'postfix/tlsmgr' });
  s.write('info', 'hello');
  assert.match(await next(), new RegExp(`^<22>[A-Z][a-z]{2} [ 1-3]\\d \\d\\d:\\d\\d:\\d\\d postfix/tlsmgr\\[${process.pid}\\]: hello$`));
  s.write('warning', 'warning: w');
  assert.match(await next(), /^<20>\S+ +\d+ [\d:]+ postfix\/tlsmgr\[\d+\]: warning: w$/);
  s.write('error', 'error: e');
  assert.match(await next(), /^<19>/);
  s.write('fatal', 'fatal: f');
  assert.match(await next(), /^<18>/);
  const l7 = openSyslogSink({ path: join(dir, 'log'), facility: 'local7', ident: () => 'x/y' });
  l7.write('info', 'z');
  assert.match(await next(), /^<190>/);
  assert.equal(s.target().template, `<18>%STAMP% postfix/tlsmgr[${process.pid}]: `);
  assert.equal(s.target().zeroPadDay, undefined);
  s.close();
  l7.close();
});

test('postlog sink: "Mmm dd hh:mm:ss host ident[pid]: text", first label of the host name', async () => {
  const s = openPostlogSink({ path: join(dir, 'log'), progname: () => 'postfix/tlsmgr', hostname: 'tlsmgr-test.localdomain' });
  s.write('warning', 'warning: w');
  assert.match(await next(), new RegExp(`^[A-Z][a-z]{2} [0-3]\\d \\d\\d:\\d\\d:\\d\\d tlsmgr-test postfix/tlsmgr\\[${process.pid}\\]: warning: w$`));
  const t = s.target();
  assert.equal(t.template, `%STAMP% tlsmgr-test postfix/tlsmgr[${process.pid}]: `);
  assert.equal(t.zeroPadDay, true);
  s.close();
});

test('a socket nobody listens on: the open throws', () => {
  assert.throws(() => openSyslogSink({ path: join(dir, 'nobody'), facility: 'mail', ident: () => 't' }), /cannot connect to/);
});
