// Tests for ctl/check.ts on scratch directories (no Postfix instance): the node version rule,
// the native modules, data_directory, the secrets at rest, the private/ directory and the
// socket, and `tlsmgr-ctl check`'s exit status on a configuration that does not parse.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/load.js';
import { checkFiles, checkNativeModules, checkNode, type Finding } from '../../src/ctl/check.js';
import { main } from '../../src/ctl/main.js';

const uid = process.geteuid?.() ?? 0;

function scratch(): string {
  const d = mkdtempSync(join(tmpdir(), 'tlsmgr-ctl-check-'));
  chmodSync(d, 0o755);
  return d;
}

/** A config directory whose main.cf points data and queue into `dir`. */
function instance(dir: string): { configDir: string; data: string; priv: string } {
  const configDir = join(dir, 'etc');
  const data = join(dir, 'data');
  const priv = join(dir, 'queue', 'private');
  mkdirSync(configDir);
  mkdirSync(data, { mode: 0o700 });
  mkdirSync(priv, { recursive: true, mode: 0o700 });
  chmodSync(priv, 0o700);
  writeFileSync(join(configDir, 'main.cf'), [
    `data_directory = ${data}`,
    `queue_directory = ${join(dir, 'queue')}`,
    'smtpd_tls_session_cache_database = btree:${data_directory}/smtpd_scache',
    'smtp_tls_session_cache_database = memory:',
    '',
  ].join('\n'));
  return { configDir, data, priv };
}

const levels = (fs: readonly Finding[]): string[] => fs.map((f) => f.level);

test('checkNode: 20 and later pass, older is an error', () => {
  assert.equal(checkNode('v20.0.0').level, 'ok');
  assert.equal(checkNode('v22.11.0').level, 'ok');
  assert.deepEqual(checkNode('v18.20.4'), { level: 'error', text: 'node v18.20.4 is too old: tlsmgr needs node 20 or later' });
});

test('checkNativeModules: the four native modules load here', () => {
  assert.deepEqual(checkNativeModules(), ['better-sqlite3', 'posix', 'fs-ext', 'unix-dgram'].map((m) => ({ level: 'ok', text: `native module ${m} loads` })));
});

test('checkFiles: a sound layout is all ok; each broken mode is an error line', async () => {
  const dir = scratch();
  const server = createServer();
  try {
    const { configDir, data, priv } = instance(dir);
    const { config } = loadConfig({ configDir, overrides: [] });
    const owner = { uid };
    writeFileSync(join(data, 'smtpd_scache.sqlite'), '', { mode: 0o600 });
    writeFileSync(join(data, 'prng_exch'), '', { mode: 0o600 });
    await new Promise<void>((resolve) => server.listen(join(priv, 'tlsmgr'), resolve));
    const good = await checkFiles(config, owner);
    assert.deepEqual(levels(good), ['ok', 'ok', 'ok', 'ok', 'ok'], JSON.stringify(good, null, 1));
    assert.match(good.map((f) => f.text).join('\n'), /smtpd session cache .*smtpd_scache\.sqlite: mail_owner's, mode 0600/);

    chmodSync(data, 0o777);
    chmodSync(join(data, 'smtpd_scache.sqlite'), 0o644);
    writeFileSync(join(data, 'smtpd_scache.sqlite-wal'), '', { mode: 0o640 });
    chmodSync(join(data, 'smtpd_scache.sqlite-wal'), 0o640);
    chmodSync(join(data, 'prng_exch'), 0o604);
    chmodSync(priv, 0o755);
    const bad = (await checkFiles(config, owner)).filter((f) => f.level !== 'ok').map((f) => `${f.level}: ${f.text}`);
    assert.deepEqual(bad, [
      `error: data_directory ${data} is writable by group or others (mode 0777)`,
      `error: smtpd session cache ${data}/smtpd_scache.sqlite is open to group or others (mode 0644; want 0600)`,
      `error: smtpd session cache ${data}/smtpd_scache.sqlite-wal is open to group or others (mode 0640; want 0600)`,
      `error: PRNG exchange file ${data}/prng_exch is open to group or others (mode 0604; want 0600)`,
      `error: ${priv} is open to group or others (mode 0755; want 0700): anyone could use the tlsmgr socket`,
    ]);

    const other = await checkFiles(config, { uid: uid + 1 });
    assert.ok(other.some((f) => f.level === 'error' && f.text === `data_directory ${data} is owned by uid ${uid}, not by mail_owner postfix`),
      JSON.stringify(other, null, 1));
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    rmSync(dir, { recursive: true, force: true });
  }
});

test('tlsmgr-ctl check: exit 1 and an error line when main.cf does not parse', async () => {
  const dir = scratch();
  try {
    const { configDir } = instance(dir);
    writeFileSync(join(configDir, 'main.cf'), 'smtpd_tls_session_cache_timeout = forever\n');
    const out: string[] = [];
    const code = await main(['-c', configDir, 'check'], { out: (l) => out.push(l), err: (l) => out.push(`stderr: ${l}`) }, {});
    assert.equal(code, 1);
    assert.ok(out.includes('ok: native module better-sqlite3 loads'), out.join('\n'));
    assert.ok(out.some((l) => /^error: configuration: .*smtpd_tls_session_cache_timeout/.test(l)), out.join('\n'));
    assert.ok(out.every((l) => /^(ok|warning|error): /.test(l)), out.join('\n'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
