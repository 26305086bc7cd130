// Tests for config/tlsmgrcf.ts through config/load.ts: the extension settings in
// $config_directory/tlsmgr.cf, real files in a temp directory.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeCold } from '../helpers/cold.js';
import { DEFAULTS, loadConfig, type LoadedConfig } from '../../src/config/load.js';
import { isExtensionName, readTlsmgrCf } from '../../src/config/tlsmgrcf.js';
import { FatalError } from '../../src/util/errors.js';

const IS_ROOT = process.getuid?.() === 0;
const tmp = mkdtempSync(join(tmpdir(), 'tlsmgr-tlsmgrcf-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** A config directory with main.cf and, unless undefined, tlsmgr.cf (mode 0644). */
function dirWith(mainCf: string, tlsmgrCf?: string): string {
  const dir = mkdtempSync(join(tmp, 'cf-'));
  writeCold(join(dir, 'main.cf'), mainCf);
  if (tlsmgrCf !== undefined) {
    writeCold(join(dir, 'tlsmgr.cf'), tlsmgrCf);
    chmodSync(join(dir, 'tlsmgr.cf'), 0o644);
  }
  return dir;
}

function load(dir: string, overrides: string[] = []): { r: LoadedConfig; warnings: string[] } {
  const warnings: string[] = [];
  const r = loadConfig({ configDir: dir, overrides, warn: (m) => warnings.push(m) });
  return { r, warnings };
}

function fatalMessage(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (e instanceof FatalError) return e.message;
    throw e;
  }
  assert.fail('no FatalError');
}

test('isExtensionName: tlsmgr_* but tlsmgr_service_name, and the per-cache limits', () => {
  for (const n of ['tlsmgr_connection_limit', 'tlsmgr_tktkey_database', 'tlsmgr_metrics_listen', 'tlsmgr_my_macro',
    'smtpd_tls_session_cache_max_entries', 'smtp_tls_session_cache_max_size', 'lmtp_tls_session_cache_max_entry_size']) {
    assert.equal(isExtensionName(n), true, n);
  }
  for (const n of ['tlsmgr_service_name', 'queue_directory', 'smtpd_tls_session_cache_timeout',
    'smtpd_tls_session_cache_database', 'tls_random_bytes', 'lmtp_tls_session_cache_max_foo', 'x_tlsmgr_y']) {
    assert.equal(isExtensionName(n), false, n);
  }
  // Of the parameters loadConfig() reads, exactly these 19 are extensions.
  assert.deepEqual(Object.keys(DEFAULTS).filter(isExtensionName), [
    'tlsmgr_attr_name_limit', 'tlsmgr_attr_value_limit', 'tlsmgr_attr_count_limit', 'tlsmgr_cache_id_limit',
    'tlsmgr_session_limit', 'tlsmgr_connection_limit', 'tlsmgr_input_buffer_limit', 'tlsmgr_stats_interval',
    'smtpd_tls_session_cache_max_entries', 'smtp_tls_session_cache_max_entries', 'lmtp_tls_session_cache_max_entries',
    'smtpd_tls_session_cache_max_size', 'smtp_tls_session_cache_max_size', 'lmtp_tls_session_cache_max_size',
    'smtpd_tls_session_cache_max_entry_size', 'smtp_tls_session_cache_max_entry_size', 'lmtp_tls_session_cache_max_entry_size',
    'tlsmgr_syslog_socket', 'tlsmgr_tktkey_database', 'tlsmgr_metrics_listen',
  ]);
});

test('tlsmgr.cf values are used, without any warning', () => {
  const dir = dirWith('compatibility_level = 3.6\n', [
    '# tlsmgr extensions',
    'tlsmgr_connection_limit = 77',
    'tlsmgr_stats_interval = 5m',
    'smtp_tls_session_cache_max_entries = 12',
    'lmtp_tls_session_cache_max_size = 0',
    'tlsmgr_tktkey_database = none',
    '',
  ].join('\n'));
  const { r, warnings } = load(dir);
  assert.equal(r.config.connectionLimit, 77);
  assert.equal(r.config.statsInterval, 300);
  assert.equal(r.config.cache.smtp.maxEntries, 12);
  assert.equal(r.config.cache.smtpd.maxEntries, 1000000);
  assert.equal(r.config.cache.lmtp.maxSize, 0);
  assert.equal(r.config.tktkeyDatabase, 'none');
  assert.deepEqual(warnings, []);
});

test('an extension left in main.cf is honoured, with exactly one warning per name', () => {
  const dir = dirWith([
    'tlsmgr_connection_limit = 5',
    'smtpd_tls_session_cache_max_entries = 9',
    'tlsmgr_connection_limit = 6',
    'tlsmgr_service_name = tlsmgr',
    'queue_directory = /var/spool/postfix',
    '',
  ].join('\n'));
  const { r, warnings } = load(dir);
  assert.equal(r.config.connectionLimit, 6);
  assert.equal(r.config.cache.smtpd.maxEntries, 9);
  assert.deepEqual(warnings, [
    `${dir}/main.cf, line 3: overriding earlier entry: tlsmgr_connection_limit=5`,
    `${dir}/main.cf: parameter tlsmgr_connection_limit belongs in ${dir}/tlsmgr.cf`,
    `${dir}/main.cf: parameter smtpd_tls_session_cache_max_entries belongs in ${dir}/tlsmgr.cf`,
  ]);
});

test('tlsmgr.cf wins over main.cf; the warning says so, once', () => {
  const dir = dirWith('tlsmgr_connection_limit = 5\ntlsmgr_attr_count_limit = 40\n', 'tlsmgr_connection_limit = 7\n');
  const { r, warnings } = load(dir);
  assert.equal(r.config.connectionLimit, 7);
  assert.equal(r.config.attrCountLimit, 40);
  assert.equal(r.lookup('tlsmgr_connection_limit'), '7');
  assert.deepEqual(warnings, [
    `${dir}/main.cf: parameter tlsmgr_connection_limit belongs in ${dir}/tlsmgr.cf, which overrides it`,
    `${dir}/main.cf: parameter tlsmgr_attr_count_limit belongs in ${dir}/tlsmgr.cf`,
  ]);
});

test('a Postfix parameter (or any non-extension name) in tlsmgr.cf is ignored with one warning', () => {
  const dir = dirWith('queue_directory = /q\nsite = main\n', [
    'queue_directory = /elsewhere',
    'queue_directory = /again',
    'tlsmgr_service_name = other',
    'smtpd_tls_session_cache_timeout = 1s',
    'site = tlsmgr',
    'config_directory = /etc/other',
    'tlsmgr_syslog_socket = /run/$site',
    '',
  ].join('\n'));
  const { r, warnings } = load(dir);
  assert.equal(r.config.queueDirectory, '/q');
  assert.equal(r.config.tlsmgrServiceName, 'tlsmgr');
  assert.equal(r.config.cache.smtpd.timeout, 3600);
  assert.equal(r.config.configDirectory, dir);
  assert.equal(r.lookup('site'), 'main', 'what Postfix sees in main.cf stays');
  assert.equal(r.config.syslogPath, '/run/main');
  const t = `${dir}/tlsmgr.cf`;
  assert.deepEqual(warnings, [
    `${t}, line 2: overriding earlier entry: queue_directory=/elsewhere`,
    `${t}: parameter queue_directory belongs in ${dir}/main.cf; ignored`,
    `${t}: parameter tlsmgr_service_name belongs in ${dir}/main.cf; ignored`,
    `${t}: parameter smtpd_tls_session_cache_timeout belongs in ${dir}/main.cf; ignored`,
    `${t}: parameter site belongs in ${dir}/main.cf; ignored`,
    `${t}: parameter config_directory belongs in ${dir}/main.cf; ignored`,
  ]);
});

test('$name expansion across both files, as one table', () => {
  const dir = dirWith('data_directory = /srv/pf\nmyhostname = mx.example\n', [
    'tlsmgr_base = ${data_directory}/tlsmgr',
    'tlsmgr_syslog_socket = $tlsmgr_base/log-$myhostname',
    'tlsmgr_tktkey_database = ${tlsmgr_nosuch?redis:/x}',
    'smtpd_tls_session_cache_max_entries = ${{$tls_random_bytes} == {32} ? {32} : {1}}',
    'smtp_tls_session_cache_max_entries = $lmtp_tls_session_cache_max_entries',
    'lmtp_tls_session_cache_max_entries = 4',
    '',
  ].join('\n'));
  const { r, warnings } = load(dir);
  assert.equal(r.config.syslogPath, '/srv/pf/tlsmgr/log-mx.example');
  assert.equal(r.config.tktkeyDatabase, '');
  assert.equal(r.config.cache.smtpd.maxEntries, 32, '$tls_random_bytes: its default, entered when it was read');
  assert.equal(r.config.cache.smtp.maxEntries, 4);
  assert.equal(r.lookup('tlsmgr_base'), '/srv/pf/tlsmgr', 'lookup() sees the merged table');
  assert.equal(r.lookup('myhostname'), 'mx.example');
  assert.deepEqual(warnings, []);
});

test('-o overrides apply over both files', () => {
  const dir = dirWith('tlsmgr_connection_limit = 9\ndata_directory = /d\n',
    'tlsmgr_connection_limit = 7\ntlsmgr_attr_count_limit = 40\ntlsmgr_syslog_socket = $data_directory/log\n');
  const { r } = load(dir, ['tlsmgr_connection_limit=5', 'data_directory=/o', 'tlsmgr_attr_count_limit = $tlsmgr_new', 'tlsmgr_new=41']);
  assert.equal(r.config.connectionLimit, 5);
  assert.equal(r.config.attrCountLimit, 41);
  assert.equal(r.config.syslogPath, '/o/log');
  assert.equal(r.lookup('tlsmgr_connection_limit'), '5');
});

test('a missing tlsmgr.cf means the defaults, silently', () => {
  const { r, warnings } = load(dirWith('compatibility_level = 3.6\n'));
  assert.equal(r.config.connectionLimit, DEFAULTS.tlsmgr_connection_limit);
  assert.equal(r.config.statsInterval, 3600);
  assert.equal(r.lookup('tlsmgr_connection_limit'), '8192');
  assert.deepEqual(warnings, []);
});

test('an unreadable tlsmgr.cf is fatal in Postfix\'s words: a directory, a dangling link, a syntax error', () => {
  const dir = dirWith('');
  mkdirSync(join(dir, 'tlsmgr.cf'));
  assert.equal(fatalMessage(() => load(dir)), `read ${dir}/tlsmgr.cf: Is a directory`);
  const dangling = dirWith('');
  symlinkSync(join(dangling, 'nowhere.cf'), join(dangling, 'tlsmgr.cf'));
  assert.equal(fatalMessage(() => load(dangling)), `open ${dangling}/tlsmgr.cf: No such file or directory`);
  const bad = dirWith('', 'tlsmgr_connection_limit = 1\nno equals sign\n');
  assert.equal(fatalMessage(() => load(bad)), `${bad}/tlsmgr.cf, line 2: missing '=' after attribute name: "no equals sign"`);
  const value = dirWith('', 'tlsmgr_connection_limit = lots\n');
  assert.equal(fatalMessage(() => load(value)), 'bad numerical configuration: tlsmgr_connection_limit = lots');
});

test('a tlsmgr.cf that the reader may not open (EACCES) is fatal', () => {
  const dir = dirWith('compatibility_level = 3.6\n', 'tlsmgr_connection_limit = 3\n');
  chmodSync(join(dir, 'tlsmgr.cf'), 0o000);
  const expected = `open ${dir}/tlsmgr.cf: Permission denied`;
  if (!IS_ROOT) {
    assert.equal(fatalMessage(() => load(dir)), expected);
    return;
  }
  // root reads any file: load as "nobody", in a child, from a directory that user can search.
  for (const d of [tmp, dir]) chmodSync(d, 0o755);
  const loadJs = new URL('../../src/config/load.js', import.meta.url).href;
  const code = `import { loadConfig } from ${JSON.stringify(loadJs)};
    try { loadConfig({ configDir: ${JSON.stringify(dir)}, overrides: [] }); console.log('loaded'); }
    catch (e) { console.log(e.name + ': ' + e.message); }`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', code],
    { uid: 65534, gid: 65534, encoding: 'utf8', timeout: 10_000 });
  assert.equal(r.stdout.trim(), `FatalError: ${expected}`, r.stderr);
  chmodSync(join(dir, 'tlsmgr.cf'), 0o644);
  const ok = spawnSync(process.execPath, ['--input-type=module', '-e', code],
    { uid: 65534, gid: 65534, encoding: 'utf8', timeout: 10_000 });
  assert.equal(ok.stdout.trim(), 'loaded', 'control: the same file readable loads');
});

test('a group or other writable tlsmgr.cf is used, with postfix check\'s warning', () => {
  for (const [mode, warned] of [[0o664, true], [0o646, true], [0o640, false], [0o600, false]] as const) {
    const dir = dirWith('', 'tlsmgr_connection_limit = 3\n');
    chmodSync(join(dir, 'tlsmgr.cf'), mode);
    const { r, warnings } = load(dir);
    assert.equal(r.config.connectionLimit, 3);
    assert.deepEqual(warnings, warned ? [`group or other writable: ${dir}/tlsmgr.cf`] : [], mode.toString(8));
  }
});

test('a tlsmgr.cf owned by neither root nor the reader is used, with a warning', () => {
  const dir = dirWith('', 'tlsmgr_connection_limit = 3\n');
  const path = join(dir, 'tlsmgr.cf');
  const me = process.geteuid?.() ?? 0;
  if (me === 0) chownSync(path, 65534, 65534);
  const owner = statSync(path).uid;
  const other = owner === 0 ? 1 : owner + 1;
  const warn = (into: string[]) => (m: string): void => void into.push(m);
  const w1: string[] = [];
  readTlsmgrCf(path, { warn: warn(w1), euid: other });
  assert.deepEqual(w1, owner === 0 ? [] : [`not owned by root: ${path}`]);
  const w2: string[] = [];
  readTlsmgrCf(path, { warn: warn(w2), euid: owner });
  assert.deepEqual(w2, [], 'the reading user\'s own file');
  if (me === 0) {
    const { r, warnings } = load(dir);
    assert.equal(r.config.connectionLimit, 3);
    assert.deepEqual(warnings, [`not owned by root: ${path}`]);
  }
});
