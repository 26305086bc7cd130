// Tests for config/units.ts: conv_time(), strtol()/atoi() and the mail_conf_* conversions.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { atoi, checkInt, checkStr, checkTime, convTime, parseBool, parseConfInt, parseTime, strtol } from '../../src/config/units.js';
import { FatalError } from '../../src/util/errors.js';

function fatal(fn: () => unknown, message: string): void {
  assert.throws(fn, (e: unknown) => e instanceof FatalError && e.message === message && e.code === 'TLSMGR_FATAL');
}

test('strtol: white space, sign, partial input, range', () => {
  assert.deepEqual(strtol(' \t+12x'), { value: 12n, end: 5, erange: false });
  assert.deepEqual(strtol('-7'), { value: -7n, end: 2, erange: false });
  assert.deepEqual(strtol('x1'), { value: 0n, end: 0, erange: false });
  assert.deepEqual(strtol('  -'), { value: 0n, end: 0, erange: false });
  assert.equal(strtol('99999999999999999999').erange, true);
  assert.equal(strtol('99999999999999999999').value, (1n << 63n) - 1n);
  assert.deepEqual(strtol('a.5', 2), { value: 5n, end: 3, erange: false });
});

test('atoi: glibc semantics used by -s', () => {
  assert.equal(atoi('3abc'), 3);
  assert.equal(atoi(' +2'), 2);
  assert.equal(atoi('abc'), 0);
  assert.equal(atoi('-4'), -4);
  assert.equal(atoi('4294967297'), 1); // (int) truncation of the long
  assert.equal(atoi('99999999999999999999'), -1); // LONG_MAX cast to int
});

test('convTime: units and the default unit (scenario 45: 1h = 3600, 2d)', () => {
  assert.equal(convTime('1h', 's'), 3600);
  assert.equal(convTime('2d', 's'), 172800);
  assert.equal(convTime('10', 's'), 10);
  assert.equal(convTime('10s', 's'), 10);
  assert.equal(convTime('5m', 's'), 300);
  assert.equal(convTime('1w', 's'), 604800);
  assert.equal(convTime('5', 'm'), 300);
  assert.equal(convTime('5', 'h'), 18000);
  assert.equal(convTime('0', 's'), 0);
  assert.equal(convTime('-0', 's'), 0);
  assert.equal(convTime('+3', 's'), 3);
  assert.equal(convTime(' 3', 's'), 3);
});

test('convTime: only the first character after the number counts', () => {
  assert.equal(convTime('1hour', 's'), 3600);
  assert.equal(convTime('2days', 's'), 172800);
  assert.equal(convTime('3sx', 's'), 3);
  assert.equal(convTime('h', 's'), 0); // strtol consumes nothing: 0 hours
});

test('convTime: rejected values', () => {
  for (const v of ['', '-1', '1x', '1 h', ' ', '1H', 'x', '2147483648', '99999999999999999999']) {
    assert.equal(convTime(v, 's'), undefined, v);
  }
});

test('convTime: overflow limits are n < INT_MAX / unit', () => {
  assert.equal(convTime('3549w', 's'), 3549 * 604800);
  assert.equal(convTime('3550w', 's'), undefined);
  assert.equal(convTime('24854d', 's'), 24854 * 86400);
  assert.equal(convTime('24855d', 's'), undefined);
  assert.equal(convTime('596522h', 's'), 596522 * 3600);
  assert.equal(convTime('596523h', 's'), undefined);
  assert.equal(convTime('35791393m', 's'), 35791393 * 60);
  assert.equal(convTime('35791394m', 's'), undefined);
  assert.equal(convTime('2147483647', 's'), 2147483647);
  assert.equal(convTime('2147483647s', 's'), 2147483647);
});

test('parseTime / checkTime: fatal texts', () => {
  assert.equal(parseTime('ipc_timeout', '1h'), 3600);
  fatal(() => parseTime('tls_random_reseed_period', '1x'), 'parameter tls_random_reseed_period: bad time value or unit: 1x');
  fatal(() => parseTime('smtpd_tls_session_cache_timeout', '-1'), 'parameter smtpd_tls_session_cache_timeout: bad time value or unit: -1');
  fatal(() => parseTime('ipc_timeout', ''), 'parameter ipc_timeout: bad time value or unit: ');
  assert.equal(checkTime('x', 0, 0, 0), 0);
  assert.equal(checkTime('x', 8640000, 0, 8640000), 8640000);
  fatal(() => checkTime('tls_random_reseed_period', 0, 1, 0), 'invalid tls_random_reseed_period: 0 (min 1)');
  fatal(() => checkTime('smtpd_tls_session_cache_timeout', 8640001, 0, 8640000),
    'invalid smtpd_tls_session_cache_timeout: 8640001 (max 8640000)');
});

test('parseConfInt: whole-string base-10 C int', () => {
  assert.equal(parseConfInt('n', '32'), 32);
  assert.equal(parseConfInt('n', ' 5'), 5);
  assert.equal(parseConfInt('n', '+5'), 5);
  assert.equal(parseConfInt('n', '-5'), -5);
  assert.equal(parseConfInt('n', '007'), 7);
  assert.equal(parseConfInt('n', '-2147483648'), -2147483648);
  assert.equal(parseConfInt('n', '2147483647'), 2147483647);
  for (const v of ['', 'abc', '5 ', '0x10', '1.5', '2147483648', '-2147483649', '99999999999999999999', '5k']) {
    fatal(() => parseConfInt('tls_random_bytes', v), `bad numerical configuration: tls_random_bytes = ${v}`);
  }
});

test('checkInt: fatal texts', () => {
  assert.equal(checkInt('x', 1, 1, 0), 1);
  fatal(() => checkInt('tls_random_bytes', 0, 1, 0), 'invalid tls_random_bytes parameter value 0 < 1');
  fatal(() => checkInt('x', 11, 0, 10), 'invalid x parameter value 11 > 10');
});

test('parseBool: yes/no in any ASCII case', () => {
  assert.equal(parseBool('b', 'yes'), true);
  assert.equal(parseBool('b', 'YES'), true);
  assert.equal(parseBool('b', 'No'), false);
  for (const v of ['maybe', '', 'yes ', 'true', '1', 'ye']) {
    fatal(() => parseBool('smtputf8_enable', v), `bad boolean configuration: smtputf8_enable = ${v}`);
  }
});

test('checkStr: byte lengths and fatal texts', () => {
  assert.equal(checkStr('x', '', 0, 0), '');
  fatal(() => checkStr('syslog_name', '', 1, 0), 'bad string length 0 < 1: syslog_name = ');
  fatal(() => checkStr('x', 'é', 0, 1), 'bad string length 2 > 1: x = é');
});
