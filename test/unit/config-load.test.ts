// Tests for config/load.ts: main.cf + -o overrides + built-in defaults -> TlsmgrConfig.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { writeCold } from '../helpers/cold.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULTS, loadConfig, type LoadedConfig } from '../../src/config/load.js';
import { FatalError } from '../../src/util/errors.js';

const POSTCONF = '/usr/sbin/postconf';
const HAVE_POSTCONF = existsSync(POSTCONF);
const tmp = mkdtempSync(join(tmpdir(), 'tlsmgr-load-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

function dirWith(text: string): string {
  const dir = mkdtempSync(join(tmp, 'cf-'));
  writeCold(join(dir, 'main.cf'), text);
  return dir;
}

function load(text: string, overrides: string[] = [], warnings?: string[]): LoadedConfig {
  return loadConfig({ configDir: dirWith(text), overrides, warn: (m) => warnings?.push(m) });
}

function fatal(text: string, overrides: string[], message: string): void {
  assert.throws(() => load(text, overrides), (e: unknown) => e instanceof FatalError && e.message === message,
    message);
}

const DEBIAN_MAIN_CF = `# See /usr/share/postfix/main.cf.dist for a commented, more complete version
smtpd_banner = $myhostname ESMTP $mail_name (Debian/GNU)
biff = no
append_dot_mydomain = no
readme_directory = no
compatibility_level = 3.6
smtpd_tls_cert_file=/etc/ssl/certs/ssl-cert-snakeoil.pem
smtpd_tls_key_file=/etc/ssl/private/ssl-cert-snakeoil.key
smtpd_tls_security_level=may
smtp_tls_CApath=/etc/ssl/certs
smtp_tls_security_level=may
smtp_tls_session_cache_database = btree:\${data_directory}/smtp_scache
smtpd_tls_session_cache_database = btree:\${data_directory}/smtpd_scache
`;

test('defaults from an empty main.cf (postconf -d values)', () => {
  const dir = dirWith('');
  const { config } = loadConfig({ configDir: dir, overrides: [] });
  assert.deepEqual(config, {
    configDirectory: dir,
    queueDirectory: '/var/spool/postfix',
    dataDirectory: '/var/lib/postfix',
    daemonDirectory: '/usr/lib/postfix/sbin',
    mailOwner: 'postfix',
    syslogName: 'postfix',
    syslogFacility: 'mail',
    maillogFile: '',
    tlsmgrServiceName: 'tlsmgr',
    defaultDatabaseType: 'hash',
    smtputf8Enable: false,
    ipcTimeout: 3600,
    daemonTimeout: 18000,
    cache: {
      smtpd: { database: '', timeout: 3600, loglevel: '0', maxEntries: 1000000, maxSize: 1073741824, maxEntrySize: 65536 },
      smtp: { database: '', timeout: 3600, loglevel: '0', maxEntries: 1000000, maxSize: 1073741824, maxEntrySize: 65536 },
      lmtp: { database: '', timeout: 3600, loglevel: '0', maxEntries: 1000000, maxSize: 1073741824, maxEntrySize: 65536 },
    },
    tlsRandomSource: 'dev:/dev/urandom',
    tlsRandomBytes: 32,
    tlsRandomReseedPeriod: 3600,
    tlsRandomPrngUpdatePeriod: 3600,
    tlsRandomExchangeName: '/var/lib/postfix/prng_exch',
    attrNameLimit: 256,
    attrValueLimit: 1500000,
    attrCountLimit: 32,
    cacheIdLimit: 65536,
    sessionLimit: 1048576,
    connectionLimit: 8192,
    inputBufferLimit: 67108864,
    statsInterval: 3600,
    syslogPath: '/dev/log',
    tktkeyDatabase: '',
    metricsListen: null,
  });
});

test('the config and its nested objects are frozen', () => {
  const { config } = load('');
  assert.ok(Object.isFrozen(config));
  assert.ok(Object.isFrozen(config.cache));
  for (const c of Object.values(config.cache)) assert.ok(Object.isFrozen(c));
  assert.throws(() => {
    (config as { ipcTimeout: number }).ipcTimeout = 1;
  }, TypeError);
});

test('smtputf8_enable: no at compatibility level 0, yes with Debian\'s 3.6', () => {
  assert.equal(load('').config.smtputf8Enable, false);
  assert.equal(load('compatibility_level = 0\n').config.smtputf8Enable, false);
  const deb = load(DEBIAN_MAIN_CF);
  assert.equal(deb.config.smtputf8Enable, true);
  assert.equal(deb.lookup('smtputf8_enable'), 'yes');
  assert.equal(load('compatibility_level = 1\n').config.smtputf8Enable, true);
  assert.equal(load('smtputf8_enable = NO\ncompatibility_level = 3.6\n').config.smtputf8Enable, false);
  assert.equal(load('', ['compatibility_level=2']).config.smtputf8Enable, true);
});

test('Debian main.cf: cache databases expand ${data_directory}', () => {
  const { config } = load(DEBIAN_MAIN_CF);
  assert.equal(config.cache.smtpd.database, 'btree:/var/lib/postfix/smtpd_scache');
  assert.equal(config.cache.smtp.database, 'btree:/var/lib/postfix/smtp_scache');
  assert.equal(config.cache.lmtp.database, '');
});

test('scenario 45: continuation, comments, $name, ${name}, ${name?x}, ${name:x}, units, -o', () => {
  const text = [
    '# comment',
    'data_directory = /tmp/dd',
    'site = example',
    'smtpd_tls_session_cache_database = btree:$data_directory/',
    '  # comment inside a continued entry',
    '',
    '  ${site}_scache',
    'smtp_tls_session_cache_database = ${site?btree:/s/$site}',
    'lmtp_tls_session_cache_database = ${nosuch:btree:/l}',
    'smtpd_tls_session_cache_timeout = 1h',
    'smtp_tls_session_cache_timeout = 2d',
    'lmtp_tls_session_cache_timeout = 90',
    'tls_random_bytes = 16',
    '',
  ].join('\n');
  const { config } = load(text, ['tls_random_bytes=64', 'lmtp_tls_session_cache_timeout = 5m']);
  assert.equal(config.cache.smtpd.database, 'btree:/tmp/dd/  example_scache');
  assert.equal(config.cache.smtp.database, 'btree:/s/example');
  assert.equal(config.cache.lmtp.database, 'btree:/l');
  assert.equal(config.cache.smtpd.timeout, 3600);
  assert.equal(config.cache.smtp.timeout, 172800);
  assert.equal(config.cache.lmtp.timeout, 300);
  assert.equal(config.tlsRandomBytes, 64);
  assert.equal(config.tlsRandomExchangeName, '/tmp/dd/prng_exch');
});

test('-o overrides win over main.cf, later ones over earlier ones, without warnings', () => {
  const warnings: string[] = [];
  const r = load('tls_random_source = dev:/dev/random\n', ['tls_random_source=', ' ipc_timeout = 1m ', 'ipc_timeout=2m'], warnings);
  assert.equal(r.config.tlsRandomSource, '');
  assert.equal(r.config.ipcTimeout, 120);
  assert.deepEqual(warnings, []);
});

test('defaults entered before a parameter is read are visible to later ones, not earlier ones', () => {
  // queue_directory is read before tls_random_source (mail_params_init, then tlsmgr.c).
  assert.equal(load('tls_random_source = dev:$queue_directory/r\n').config.tlsRandomSource, 'dev:/var/spool/postfix/r');
  fatal('queue_directory = $tls_random_source\n', [], 'bad string length 0 < 1: queue_directory = ');
  assert.equal(load('multi_instance_name = pfx-b\n').config.syslogName, 'pfx-b');
  // A configured value stays raw in the table: data_directory is read before max_use gets
  // its default, ${data_directory} in a later default is expanded again (checked with tlsmgr).
  const r = load('', ['tls_random_bytes=$max_use', 'tls_random_source=$tls_random_bytes',
    'data_directory=/nonexist$tls_random_source']);
  assert.equal(r.config.dataDirectory, '/nonexist');
  assert.equal(r.config.tlsRandomExchangeName, '/nonexist100/prng_exch');
  assert.equal(r.config.tlsRandomBytes, 100);
});

test('lookup(): expanded values of the final table', () => {
  const dir = dirWith('foo = $data_directory/x\n');
  const { lookup } = loadConfig({ configDir: dir, overrides: ['bar=$foo'], serviceName: 'tls2' });
  assert.equal(lookup('foo'), '/var/lib/postfix/x');
  assert.equal(lookup('bar'), '/var/lib/postfix/x');
  assert.equal(lookup('tls_random_bytes'), '32');
  assert.equal(lookup('ipc_timeout'), '3600s');
  assert.equal(lookup('config_directory'), dir);
  assert.equal(lookup('process_name'), 'tlsmgr');
  assert.equal(lookup('service_name'), 'tls2');
  assert.equal(lookup('no_such_parameter'), undefined);
});

test('duplicate main.cf definitions warn like dict_load_fp()', () => {
  const warnings: string[] = [];
  const dir = dirWith('a = 1\na = 2\na = 2\nconfig_directory = /elsewhere\n');
  const r = loadConfig({ configDir: dir, overrides: [], warn: (m) => warnings.push(m) });
  assert.equal(r.config.configDirectory, dir);
  assert.deepEqual(warnings, [
    `${dir}/main.cf, line 2: overriding earlier entry: a=1`,
    `${dir}/main.cf, line 4: overriding earlier entry: config_directory=${dir}`,
  ]);
});

test('fatal: main.cf and -o syntax', () => {
  const missing = join(tmp, 'missing');
  assert.throws(() => loadConfig({ configDir: missing, overrides: [] }),
    (e: unknown) => e instanceof FatalError && e.message === `open ${missing}/main.cf: No such file or directory`);
  const dir = dirWith('a = 1\nfoo\n');
  assert.throws(() => loadConfig({ configDir: dir, overrides: [] }),
    (e: unknown) => e instanceof FatalError
      && e.message === `${dir}/main.cf, line 2: missing '=' after attribute name: "foo"`);
  fatal('', ['foo'], 'invalid "-o foo" option value: missing \'=\' after attribute name');
  fatal('', ['=x'], 'invalid "-o =x" option value: missing attribute name');
  fatal('', [''], 'invalid "-o " option value: missing attribute name');
});

test('fatal: parameter values', () => {
  const cases: [string, string[], string][] = [
    ['compatibility_level = x\n', [], 'malformed compatibility level syntax: "x"'],
    ['', ['compatibility_level=3.6.1.1'], 'malformed compatibility level syntax: "3.6.1.1"'],
    ['smtputf8_enable = maybe\n', [], 'bad boolean configuration: smtputf8_enable = maybe'],
    ['', ['smtputf8_enable=${{$compatibility_level} <level {x} ? {no} : {yes}}'], 'dictionary mail_dict: macro processing error'],
    ['', ['syslog_name='], 'bad string length 0 < 1: syslog_name = '],
    ['', ['mail_owner=$nothing'], 'bad string length 0 < 1: mail_owner = '],
    ['', ['max_use=0'], 'invalid max_use parameter value 0 < 1'],
    ['', ['max_idle=0'], 'invalid max_idle: 0 (min 1)'],
    ['', ['ipc_timeout=1x'], 'parameter ipc_timeout: bad time value or unit: 1x'],
    ['', ['daemon_timeout=0'], 'invalid daemon_timeout: 0 (min 1)'],
    ['', ['tls_random_reseed_period=0'], 'invalid tls_random_reseed_period: 0 (min 1)'],
    ['', ['tls_random_prng_update_period=-1'], 'parameter tls_random_prng_update_period: bad time value or unit: -1'],
    ['', ['smtpd_tls_session_cache_timeout=8640001'], 'invalid smtpd_tls_session_cache_timeout: 8640001 (max 8640000)'],
    ['', ['lmtp_tls_session_cache_timeout=101d'], 'invalid lmtp_tls_session_cache_timeout: 8726400 (max 8640000)'],
    ['', ['tls_random_bytes=abc'], 'bad numerical configuration: tls_random_bytes = abc'],
    ['', ['tls_random_bytes=0'], 'invalid tls_random_bytes parameter value 0 < 1'],
    ['', ['tls_random_source=${a'], 'dictionary mail_dict: macro processing error'],
    ['a = $a\n', ['tls_random_source=$a'], 'dictionary mail_dict: macro processing error'],
    ['', ['tlsmgr_service_name='], 'bad string length 0 < 1: tlsmgr_service_name = '],
    ['', ['tlsmgr_attr_name_limit=0'], 'invalid tlsmgr_attr_name_limit parameter value 0 < 1'],
    ['', ['tlsmgr_attr_value_limit=1e6'], 'bad numerical configuration: tlsmgr_attr_value_limit = 1e6'],
    ['', ['tlsmgr_attr_count_limit=-1'], 'invalid tlsmgr_attr_count_limit parameter value -1 < 1'],
    ['', ['tlsmgr_cache_id_limit=0'], 'invalid tlsmgr_cache_id_limit parameter value 0 < 1'],
    ['', ['tlsmgr_session_limit=x'], 'bad numerical configuration: tlsmgr_session_limit = x'],
  ];
  for (const [text, o, msg] of cases) fatal(text, o, msg);
  const dir = dirWith('syslog_facility = foo\n');
  assert.throws(() => loadConfig({ configDir: dir, overrides: [] }), (e: unknown) => e instanceof FatalError
    && e.message === `file ${dir}/main.cf: parameter syslog_facility: unrecognized value: foo`);
});

test('macro warnings reach opts.warn before the fatal', () => {
  const warnings: string[] = [];
  assert.throws(() => load('a = $a\ntls_random_source = $a$a\n', [], warnings), FatalError);
  assert.deepEqual(warnings, ['unreasonable macro call nesting: "a"']);
});

test('DEFAULTS and the loaded table agree with postconf -d', { skip: !HAVE_POSTCONF && 'no postconf' }, () => {
  const { lookup } = load('');
  // Extensions (tlsmgr_*, the cache limits) are not Postfix parameters; tlsmgr_service_name is.
  const extension = (n: string): boolean => (n.startsWith('tlsmgr_') && n !== 'tlsmgr_service_name') || n.includes('_tls_session_cache_max_');
  const names = Object.keys(DEFAULTS).filter((n) => !extension(n));
  const out = execFileSync(POSTCONF, ['-d', ...names], { stdio: ['ignore', 'pipe', 'ignore'] }).toString();
  const pc = new Map<string, string>();
  for (const l of out.trim().split('\n')) {
    const m = /^(\S+) =(?: (.*))?$/.exec(l);
    if (m) pc.set(m[1], m[2] ?? '');
  }
  const defs: Record<string, string | number> = DEFAULTS;
  for (const n of names) assert.equal(String(defs[n]), pc.get(n), n);
  const outx = execFileSync(POSTCONF, ['-dxh', ...names], { stdio: ['ignore', 'pipe', 'ignore'] }).toString().split('\n');
  names.forEach((n, i) => assert.equal(lookup(n), outx[i], n));
});

test('Debian main.cf values agree with postconf -x', { skip: !HAVE_POSTCONF && 'no postconf' }, () => {
  const text = `${DEBIAN_MAIN_CF}data_directory = /srv/pf\nsmtp_tls_session_cache_timeout = 2d\n`;
  const dir = dirWith(text);
  const { lookup } = loadConfig({ configDir: dir, overrides: [] });
  const names = ['smtputf8_enable', 'smtpd_tls_session_cache_database', 'smtp_tls_session_cache_database',
    'tls_random_exchange_name', 'syslog_name', 'smtp_tls_session_cache_timeout', 'compatibility_level'];
  const out = execFileSync(POSTCONF, ['-c', dir, '-xh', ...names], { stdio: ['ignore', 'pipe', 'ignore'] }).toString().split('\n');
  names.forEach((n, i) => assert.equal(lookup(n), out[i], n));
});

test('process_name and service_name are read-only: neither main.cf nor -o renames them (Postfix 3.12)', () => {
  const warnings: string[] = [];
  const dir = dirWith('process_name = evilmain\nservice_name = evilsvc\nsyslog_name = p-$process_name-s-$service_name\n');
  const r = loadConfig({
    configDir: dir,
    overrides: ['process_name=evil', 'service_name=evil2', 'tlsmgr_service_name=$service_name'],
    warn: (m) => warnings.push(m),
    processName: 'tlsmgr',
    serviceName: 'tls2',
  });
  assert.equal(r.config.syslogName, 'p-tlsmgr-s-tls2');
  assert.equal(r.config.tlsmgrServiceName, 'tls2');
  assert.equal(r.lookup('process_name'), 'tlsmgr');
  assert.equal(r.lookup('service_name'), 'tls2');
  // main.cf over the entry made before it warns as dict_load_fp() does; the -o and the
  // read-only rule are silent, as in Postfix's daemons (postconf(1) is the one that warns).
  assert.deepEqual(warnings, [`${dir}/main.cf, line 1: overriding earlier entry: process_name=tlsmgr`]);
  // Without -n the service is named after the process.
  const plain = loadConfig({ configDir: dir, overrides: ['service_name=evil2'], processName: 'tlsmgr' });
  assert.equal(plain.config.syslogName, 'p-tlsmgr-s-tlsmgr');
});
