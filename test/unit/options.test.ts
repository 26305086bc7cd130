// Tests for cli/options.ts: multi_server_main() option parsing (getopt "+cdDi:lm:n:o:s:St:uvVz").
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseDaemonArgs } from '../../src/cli/options.js';
import { FatalError } from '../../src/util/errors.js';

function fatal(argv: string[], message: string): void {
  assert.throws(() => parseDaemonArgs(argv), (e: unknown) => e instanceof FatalError && e.message === message,
    `${JSON.stringify(argv)} -> ${message}`);
}

test('defaults', () => {
  assert.deepEqual(parseDaemonArgs([]), {
    chroot: false, noDetachCheck: false, debugger: false, alone: false, overrides: [],
    socketCount: 1, standalone: false, unprivileged: false, verbose: 0, stderrLog: false,
    zeroLimit: false, args: [],
  });
});

test('master.cf style command line', () => {
  const o = parseDaemonArgs(['-l', '-n', 'tlsmgr', '-t', 'unix', '-u', '-c']);
  assert.equal(o.alone, true);
  assert.equal(o.serviceName, 'tlsmgr');
  assert.equal(o.transport, 'unix');
  assert.equal(o.unprivileged, true);
  assert.equal(o.chroot, true);
  assert.deepEqual(o.args, []);
});

test('every flag, combined', () => {
  const o = parseDaemonArgs(['-cdDlSuvVz', '-vv']);
  assert.deepEqual(
    [o.chroot, o.noDetachCheck, o.debugger, o.alone, o.standalone, o.unprivileged, o.stderrLog, o.zeroLimit, o.verbose],
    [true, true, true, true, true, true, true, true, 3],
  );
});

test('attached and separate option arguments', () => {
  const o = parseDaemonArgs(['-ofoo=bar', '-o', 'a = b', '-lo', 'x=', '-lntls2', '-s2', '-t', '-v', '-i10m', '-m', '5']);
  assert.deepEqual(o.overrides, ['foo=bar', 'a = b', 'x=']);
  assert.equal(o.serviceName, 'tls2');
  assert.equal(o.socketCount, 2);
  assert.equal(o.transport, '-v'); // the next word is the argument even if it starts with '-'
  assert.equal(o.verbose, 0);
  assert.equal(o.maxIdle, 600);
  assert.equal(o.maxUse, 5);
});

test('"--" ends the options; no permutation (Linux GETOPT uses "+")', () => {
  assert.deepEqual(parseDaemonArgs(['-l', '--', '-x']).args, ['-x']);
  const o = parseDaemonArgs(['-l', 'foo', '-x', '-t', 'unix']);
  assert.equal(o.alone, true);
  assert.equal(o.transport, undefined);
  assert.deepEqual(o.args, ['foo', '-x', '-t', 'unix']);
  assert.deepEqual(parseDaemonArgs(['-', '-l']).args, ['-', '-l']);
  assert.deepEqual(parseDaemonArgs(['-l', '--', '--']).args, ['--']);
});

test('later -n/-t/-i/-m win', () => {
  const o = parseDaemonArgs(['-n', 'a', '-n', 'b', '-i', 'abc', '-i', '5', '-m', 'x', '-m', '7']);
  assert.equal(o.serviceName, 'b');
  assert.equal(o.maxIdle, 5);
  assert.equal(o.maxUse, 7);
});

test('-s uses atoi()', () => {
  assert.equal(parseDaemonArgs(['-s', '3abc']).socketCount, 3);
  assert.equal(parseDaemonArgs(['-s', ' +2']).socketCount, 2);
  fatal(['-s', '0'], 'invalid socket_count: 0');
  fatal(['-s', 'abc'], 'invalid socket_count: abc');
  fatal(['-s', '-1'], 'invalid socket_count: -1');
  fatal(['-s', ''], 'invalid socket_count: ');
});

test('unknown options and missing arguments: "invalid option: <c>"', () => {
  fatal(['-x'], 'invalid option: x');
  fatal(['-lx'], 'invalid option: x');
  fatal(['-:'], 'invalid option: :');
  fatal(['--foo'], 'invalid option: -');
  for (const c of ['i', 'm', 'n', 'o', 's', 't']) fatal([`-${c}`], `invalid option: ${c}`);
  fatal(['-l', '-t'], 'invalid option: t');
  fatal(['-lt'], 'invalid option: t');
});

test('-o values are checked with split_nameval()', () => {
  fatal(['-o', 'foo'], 'invalid "-o foo" option value: missing \'=\' after attribute name');
  fatal(['-o=x'], 'invalid "-o =x" option value: missing attribute name');
  fatal(['-o', ' '], 'invalid "-o  " option value: missing attribute name');
});

test('-m and -i are checked after the command line, max_use first', () => {
  fatal(['-m', 'abc'], 'bad numerical configuration: max_use = abc');
  fatal(['-m', '0'], 'invalid max_use parameter value 0 < 1');
  fatal(['-i', 'abc'], 'parameter max_idle: bad time value or unit: abc');
  fatal(['-i', '0'], 'invalid max_idle: 0 (min 1)');
  fatal(['-i', 'abc', '-x'], 'invalid option: x');
  fatal(['-i', 'abc', '-m', 'abc'], 'bad numerical configuration: max_use = abc');
});

test('-n alone names the service: -o service_name= and -o process_name= stay plain overrides', () => {
  const o = parseDaemonArgs(['-o', 'service_name=evil', '-o', 'process_name=evil']);
  assert.equal(o.serviceName, undefined);
  assert.deepEqual(o.overrides, ['service_name=evil', 'process_name=evil']);
  const n = parseDaemonArgs(['-n', 'tls2', '-o', 'service_name=evil', '-n', 'tls3']);
  assert.equal(n.serviceName, 'tls3');
});
