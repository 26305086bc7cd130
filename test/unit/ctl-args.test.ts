// Tests for ctl/args.ts and the ctl/main.ts dispatcher: tlsmgr-ctl's command line, help, and
// exit status 2 with a clear message for every usage error. No command here reaches a
// subcommand's run(), except the one that checks -c reaches it (a stand-in command).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { UsageError, parseCommandArgs, splitCommandLine } from '../../src/ctl/args.js';
import { CtlError, type CtlCommand } from '../../src/ctl/command.js';
import { COMMANDS, main } from '../../src/ctl/main.js';

interface Run {
  code: number;
  out: string[];
  err: string[];
}

async function ctl(argv: string[], env: Record<string, string | undefined> = {}, commands: readonly CtlCommand[] = COMMANDS): Promise<Run> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(argv, { out: (l) => out.push(l), err: (l) => err.push(l) }, env, commands);
  return { code, out, err };
}

/** A usage error: exit 2, nothing on stdout, the message then a usage line on stderr. */
async function usage(argv: string[], message: string, usageLine: RegExp): Promise<void> {
  const r = await ctl(argv);
  assert.equal(r.code, 2, `${JSON.stringify(argv)}: exit status`);
  assert.deepEqual(r.out, [], `${JSON.stringify(argv)}: stdout`);
  assert.equal(r.err[0], `tlsmgr-ctl: ${message}`, `${JSON.stringify(argv)}: message`);
  assert.match(r.err[1] ?? '', usageLine, `${JSON.stringify(argv)}: usage line`);
  assert.equal(r.err.length, 2);
}

const GLOBAL = /^usage: tlsmgr-ctl \[-c config_dir\] command \[options\] \("tlsmgr-ctl help" lists the commands\)$/;

test('no command, an unknown command, an unknown global option: exit 2', async () => {
  await usage([], 'no command given', GLOBAL);
  await usage(['frobnicate'], 'unknown command frobnicate', GLOBAL);
  await usage(['-x', 'check'], 'invalid option: -x', GLOBAL);
  await usage(['--json', 'check'], 'invalid option: --json', GLOBAL);
  await usage(['-c', '/etc/postfix'], 'no command given', GLOBAL);
});

test('-c without a config_dir: exit 2', async () => {
  await usage(['-c'], 'option -c needs a config_dir argument', GLOBAL);
  await usage(['-c', ''], 'option -c needs a config_dir argument', GLOBAL);
  await usage(['check', '-c'], 'option -c needs a config_dir argument', /^usage: tlsmgr-ctl \[-c config_dir\] check$/);
});

test('a command\'s unknown option or extra operand: exit 2 with that command\'s usage', async () => {
  await usage(['install', '--force'], 'install: unknown option --force', /^usage: tlsmgr-ctl \[-c config_dir\] install \[--dry-run\]$/);
  await usage(['install', '-n'], 'install: unknown option -n', /install \[--dry-run\]$/);
  await usage(['uninstall', 'now'], 'uninstall: too many arguments: now', /uninstall \[--dry-run\]$/);
  await usage(['check', '--dry-run'], 'check: unknown option --dry-run', /\] check$/);
  await usage(['check', 'all'], 'check: too many arguments: all', /\] check$/);
  await usage(['help', 'install', 'check'], 'help: too many arguments: check', GLOBAL);
  await usage(['help', 'frob'], 'help: unknown command frob', GLOBAL);
});

test('help, -h and --help print the usage on stdout and exit 0', async () => {
  for (const argv of [['help'], ['-h'], ['--help']]) {
    const r = await ctl(argv);
    assert.equal(r.code, 0, JSON.stringify(argv));
    assert.deepEqual(r.err, []);
    assert.equal(r.out[0], 'usage: tlsmgr-ctl [-c config_dir] command [options]');
    for (const c of COMMANDS) assert.ok(r.out.some((l) => l.startsWith(`  ${c.synopsis} `)), `${c.name} listed`);
    assert.ok(r.out.some((l) => l.startsWith('  help [command] ')));
  }
  for (const argv of [['help', 'install'], ['install', '-h'], ['-h', 'install'], ['install', '--dry-run', '--help']]) {
    const r = await ctl(argv);
    assert.equal(r.code, 0, JSON.stringify(argv));
    assert.deepEqual(r.out, ['usage: tlsmgr-ctl [-c config_dir] install [--dry-run]', `  ${COMMANDS[0].summary}`], JSON.stringify(argv));
  }
});

test('splitCommandLine: global options end at the command', () => {
  assert.deepEqual(splitCommandLine(['-c', '/a', 'install', '--dry-run']),
    { configDir: '/a', help: false, command: 'install', rest: ['--dry-run'] });
  assert.deepEqual(splitCommandLine(['-c/a', '-c', '/b', 'check']), { configDir: '/b', help: false, command: 'check', rest: [] });
  assert.deepEqual(splitCommandLine(['--', '-c']), { configDir: undefined, help: false, command: '-c', rest: [] });
  assert.deepEqual(splitCommandLine([]), { configDir: undefined, help: false, command: undefined, rest: [] });
  assert.deepEqual(splitCommandLine(['-', 'x']), { configDir: undefined, help: false, command: '-', rest: ['x'] });
});

test('parseCommandArgs: flags, -c after the command, "--", operand counts and values', () => {
  const spec = { flags: ['--json', '--cluster'], minOperands: 0, maxOperands: 1, operandValues: ['smtpd', 'all'], operandNames: '[smtpd|all]' };
  const a = parseCommandArgs('flush', ['--cluster', '-c', '/x', 'all'], spec);
  assert.deepEqual([...a.flags], ['--cluster']);
  assert.deepEqual(a.operands, ['all']);
  assert.equal(a.configDir, '/x');
  assert.equal(parseCommandArgs('flush', ['-c/y'], spec).configDir, '/y');
  const u = (words: string[], message: string): void =>
    assert.throws(() => parseCommandArgs('flush', words, spec), (e: unknown) => e instanceof UsageError && e.message === message && e.command === 'flush');
  u(['smtp'], 'flush: invalid argument smtp (expected smtpd, all)');
  u(['all', 'smtpd'], 'flush: too many arguments: smtpd');
  u(['--', '--json'], 'flush: invalid argument --json (expected smtpd, all)');
  u(['--verbose'], 'flush: unknown option --verbose');
  const need = { maxOperands: 2, minOperands: 1, operandNames: 'rotate|revoke' };
  assert.throws(() => parseCommandArgs('keys', [], need), /keys: missing argument: rotate\|revoke/);
  assert.deepEqual(parseCommandArgs('keys', ['-'], need).operands, ['-']);
});

test('-c reaches the command as an absolute path; else $MAIL_CONFIG; else /etc/postfix', async () => {
  // A command that only reports its configuration directory stands in for a real one.
  const seen: string[] = [];
  const probe: CtlCommand = {
    name: 'probe', synopsis: 'probe', summary: 'test', args: {},
    run: async (_a, ctx) => {
      seen.push(ctx.configDir);
      return 3;
    },
  };
  const run = (argv: string[], env: Record<string, string> = {}): Promise<Run> => ctl(argv, env, [probe]);
  assert.equal((await run(['-c', 'rel/dir', 'probe'])).code, 3);
  assert.equal(seen.pop(), `${process.cwd()}/rel/dir`);
  assert.equal((await run(['-c', '/a', 'probe', '-c', '/b'])).code, 3);
  assert.equal(seen.pop(), '/b');
  assert.equal((await run(['probe'], { MAIL_CONFIG: '/etc/postfix-out' })).code, 3);
  assert.equal(seen.pop(), '/etc/postfix-out');
  assert.equal((await run(['probe'], { MAIL_CONFIG: '' })).code, 3);
  assert.equal(seen.pop(), '/etc/postfix');
  assert.equal((await run(['probe', 'x'])).code, 2, 'an operand the spec does not take');
  assert.deepEqual(seen, []);
});

test('a command that fails with CtlError: "tlsmgr-ctl: fatal: ..." and exit 1', async () => {
  const failing: CtlCommand = {
    name: 'fail', synopsis: 'fail', summary: 'test', args: {},
    run: async () => {
      throw new CtlError('cannot do that');
    },
  };
  const r = await ctl(['fail'], {}, [failing]);
  assert.equal(r.code, 1);
  assert.deepEqual(r.err, ['tlsmgr-ctl: fatal: cannot do that']);
});

test('bin/tlsmgr-ctl exits 2 on a usage error and 0 on help (the real process)', () => {
  const bin = fileURLToPath(new URL('../../../bin/tlsmgr-ctl', import.meta.url));
  const bad = spawnSync(process.execPath, [bin, 'frob'], { encoding: 'utf8', timeout: 30_000 });
  assert.equal(bad.status, 2);
  assert.equal(bad.stdout, '');
  assert.match(bad.stderr, /^tlsmgr-ctl: unknown command frob\nusage: /);
  const help = spawnSync(process.execPath, [bin, 'help'], { encoding: 'utf8', timeout: 30_000 });
  assert.equal(help.status, 0);
  assert.match(help.stdout, /^usage: tlsmgr-ctl \[-c config_dir\] command \[options\]\n/);
});
