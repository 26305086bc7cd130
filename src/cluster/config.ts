/*
 * NAME
 *   cluster/config - the redis: table configuration file (Postfix network-table style)
 * SYNOPSIS
 *   readRedisConfig(path, warn?, opts?: { mailOwner? }): RedisConfig
 *   configFromTable(table, source, warn?): RedisConfig
 *   parseDuration(where, value, defUnit): number   milliseconds
 * DESCRIPTION
 *   `smtpd_tls_session_cache_database = redis:/etc/postfix/tlsmgr-redis.cf` names a file
 *   in main.cf syntax (name = value, # comments, indented continuation lines), as Postfix's
 *   pgsql:, mysql: and ldap: tables do. Parameters (defaults in brackets):
 *
 *     hosts            [127.0.0.1:6379] one or more of host, host:port, [ipv6]:port,
 *                      unix:/path or /path; with cluster = yes, the seed nodes
 *     cluster          [no] the hosts are Redis Cluster nodes
 *     sentinels        [] host:port list of Redis Sentinels (instead of hosts)
 *     sentinel_master  [] the master name the Sentinels watch (required with sentinels)
 *     user, password   [] AUTH credentials (Redis 6 ACL user, or password only)
 *     database         [0] SELECT index (not with cluster)
 *     key_prefix       [tlsmgr:] prefix of every key tlsmgr writes
 *     tls              [no] TLS to Redis; tls_ca_file, tls_cert_file, tls_key_file,
 *                      tls_server_name as for any TLS client (files read at start);
 *                      with sentinels, to the Sentinels and the master alike
 *     timeout          [100ms] longest wait for one Redis call; smtpd waits for us
 *     connect_timeout  [1s] longest wait for one connection attempt
 *     retry_max_delay  [10s] longest pause between reconnection attempts
 *     key_file         [] the cluster key file (cluster/keyfile.ts), required
 *
 *   Times take a unit: ms, s, m, h, d or w; a bare number is in the unit shown in brackets.
 *
 *   The file is opened once, without following a symbolic link at its last component, and
 *   read from that descriptor; what is checked (fstat) is what is read, not a file swapped
 *   in between. A file that holds a password (a non-empty `password`) must be a regular
 *   file named directly (not through a symbolic link), owned by root, by $mail_owner
 *   (opts.mailOwner) or by the user the daemon runs as, and have no permission beyond 0640
 *   (0600 or 0640; 0400 and 0440 also do): anyone else who could change it could point
 *   tlsmgr at their own server, and anyone else who could read it has the password. A file
 *   without a password has no owner or mode rule.
 *   No message about the file shows a value or line text (config/maincf.ts hideValues), and
 *   the password's text is cut out of every message made while checking it (a continuation
 *   line can join it to another parameter's value).
 * LIMITS
 *   TLS certificate and key files are read at start (before chroot); so is the key file.
 *   At most 1 MiB. The directories above the file are not checked.
 * DIAGNOSTICS
 *   FatalError "<path>: <parameter>: <reason>" for a bad value or combination; unknown
 *   parameter names get a warning (a misspelt name must not pass silently).
 *   FatalError "open|read <path>: <strerror>", "redis configuration file <path>: not a
 *   regular file", and for a file holding a password: "redis configuration file <path>
 *   holds a password but is a symbolic link: name the file itself in the redis: table",
 *   "... but is owned by uid <n>: use chown root <path> (or chown <mail_owner> <path>)",
 *   "... but has mode 0<mode>, more than 0640: use chmod 640 (or chmod 600)".
 */

import { closeSync, constants, fstatSync, openSync, readFileSync, readSync, type Stats } from 'node:fs';
import { FatalError, strerror } from '../util/errors.js';
import { parseMainCf } from '../config/maincf.js';
import { lookupUser } from '../master/passwd.js';

export interface RedisEndpoint {
  readonly host?: string;
  readonly port?: number;
  /** A UNIX-domain socket path (then host and port are unset). */
  readonly path?: string;
}

export interface RedisTls {
  readonly ca?: Buffer;
  readonly cert?: Buffer;
  readonly key?: Buffer;
  readonly servername?: string;
}

export interface RedisConfig {
  /** The file it came from, for messages. */
  readonly source: string;
  readonly mode: 'single' | 'cluster' | 'sentinel';
  readonly hosts: readonly RedisEndpoint[];
  readonly sentinels: readonly RedisEndpoint[];
  readonly sentinelMaster: string;
  readonly user: string;
  readonly password: string;
  readonly database: number;
  readonly keyPrefix: string;
  readonly tls: RedisTls | null;
  /** Milliseconds. */
  readonly timeout: number;
  readonly connectTimeout: number;
  readonly retryMaxDelay: number;
  readonly keyFile: string;
}

const KNOWN = new Set([
  'hosts', 'cluster', 'sentinels', 'sentinel_master', 'user', 'password', 'database', 'key_prefix', 'tls',
  'tls_ca_file', 'tls_cert_file', 'tls_key_file', 'tls_server_name', 'timeout', 'connect_timeout',
  'retry_max_delay', 'key_file',
]);

const UNIT_MS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** A time with an optional unit (ms s m h d w), in milliseconds. */
export function parseDuration(where: string, value: string, defUnit: string): number {
  const m = /^(\d{1,9})(ms|s|m|h|d|w)?$/.exec(value.trim());
  const mult = m ? UNIT_MS[m[2] ?? defUnit] : undefined;
  if (m === null || mult === undefined) throw new FatalError(`${where}: bad time value or unit: ${value}`);
  const ms = Number(m[1]) * mult;
  if (!Number.isSafeInteger(ms) || ms > 2_147_483_647) throw new FatalError(`${where}: time value too large: ${value}`);
  return ms;
}

/** One endpoint: unix:/path, /path, [v6]:port, host:port or host. */
export function parseEndpoint(where: string, text: string, defPort: number): RedisEndpoint {
  if (text.startsWith('unix:')) text = text.slice(5);
  if (text.startsWith('/')) return { path: text };
  let host = text;
  let port = String(defPort);
  const v6 = /^\[([^\]]+)\](?::(.*))?$/.exec(text);
  if (v6 !== null) {
    host = v6[1];
    if (v6[2] !== undefined) port = v6[2];
  } else if (text.includes(':')) {
    const i = text.lastIndexOf(':');
    host = text.slice(0, i);
    port = text.slice(i + 1);
  }
  const n = /^\d{1,5}$/.test(port) ? Number(port) : NaN;
  if (host === '' || !(n >= 1 && n <= 65535)) throw new FatalError(`${where}: bad address: ${text}`);
  return { host, port: n };
}

function list(value: string): string[] {
  return value.split(/[\s,]+/).filter((s) => s !== '');
}

function bool(where: string, value: string): boolean {
  if (/^(yes|true|1)$/i.test(value)) return true;
  if (/^(no|false|0)$/i.test(value)) return false;
  throw new FatalError(`${where}: bad boolean value: ${value} (use yes or no)`);
}

function readTlsFile(where: string, path: string): Buffer | undefined {
  if (path === '') return undefined;
  try {
    return readFileSync(path);
  } catch (err) {
    throw new FatalError(`${where}: cannot read ${path}: ${(err as Error).message}`, { cause: err });
  }
}

export function configFromTable(table: ReadonlyMap<string, string>, source: string, warn: (msg: string) => void = () => undefined): RedisConfig {
  for (const name of table.keys()) {
    if (KNOWN.has(name)) continue;
    // A mistyped line ("password:secret") makes the whole text a name: show only a plain one.
    const shown = /^[A-Za-z0-9_]{1,64}$/.test(name) && !/password|secret/i.test(name) ? `"${name}"` : '(name not shown)';
    warn(`${source}: unknown parameter ${shown} ignored`);
  }
  const get = (name: string, def = ''): string => (table.get(name) ?? def).trim();
  const where = (name: string): string => `${source}: ${name}`;

  const cluster = bool(where('cluster'), get('cluster', 'no'));
  const sentinels = list(get('sentinels')).map((h) => parseEndpoint(where('sentinels'), h, 26379));
  const hostsText = list(get('hosts'));
  if (sentinels.length > 0 && hostsText.length > 0) throw new FatalError(`${source}: use either hosts or sentinels, not both`);
  if (sentinels.length > 0 && cluster) throw new FatalError(`${source}: cluster = yes does not go with sentinels`);
  const hosts = (hostsText.length > 0 ? hostsText : sentinels.length > 0 ? [] : ['127.0.0.1:6379']).map((h) =>
    parseEndpoint(where('hosts'), h, 6379),
  );
  const sentinelMaster = get('sentinel_master');
  if (sentinels.length > 0 && sentinelMaster === '') throw new FatalError(`${where('sentinel_master')}: required with sentinels`);
  if (cluster && hosts.some((h) => h.path !== undefined)) throw new FatalError(`${where('hosts')}: cluster nodes must be host:port`);

  const dbText = get('database', '0');
  if (!/^\d{1,5}$/.test(dbText)) throw new FatalError(`${where('database')}: bad number: ${dbText}`);
  const database = Number(dbText);
  if (cluster && database !== 0) throw new FatalError(`${where('database')}: Redis Cluster has only database 0`);

  const keyPrefix = get('key_prefix', 'tlsmgr:');
  if (keyPrefix.length > 200) throw new FatalError(`${where('key_prefix')}: longer than 200 characters`);

  let tls: RedisTls | null = null;
  if (bool(where('tls'), get('tls', 'no'))) {
    const servername = get('tls_server_name');
    tls = {
      ca: readTlsFile(where('tls_ca_file'), get('tls_ca_file')),
      cert: readTlsFile(where('tls_cert_file'), get('tls_cert_file')),
      key: readTlsFile(where('tls_key_file'), get('tls_key_file')),
      ...(servername !== '' ? { servername } : {}),
    };
  }
  const timeout = parseDuration(where('timeout'), get('timeout', '100ms'), 'ms');
  if (timeout < 1) throw new FatalError(`${where('timeout')}: must be at least 1ms`);
  const connectTimeout = parseDuration(where('connect_timeout'), get('connect_timeout', '1s'), 's');
  const retryMaxDelay = parseDuration(where('retry_max_delay'), get('retry_max_delay', '10s'), 's');
  const keyFile = get('key_file');
  if (keyFile === '') throw new FatalError(`${where('key_file')}: required: the cluster key file that seals every record`);

  return Object.freeze({
    source,
    mode: cluster ? 'cluster' : sentinels.length > 0 ? 'sentinel' : 'single',
    hosts,
    sentinels,
    sentinelMaster,
    user: get('user'),
    password: table.get('password') ?? '',
    database,
    keyPrefix,
    tls,
    timeout,
    connectTimeout: Math.max(connectTimeout, 1),
    retryMaxDelay: Math.max(retryMaxDelay, 1),
    keyFile,
  });
}

/** The largest redis: configuration file read. */
const MAX_FILE_BYTES = 1024 * 1024;
/** The permission bits a file holding a password may have at most: rw-r-----. */
const SECRET_MODE_MAX = 0o640;

export interface ReadRedisConfigOptions {
  /** $mail_owner: may own a file that holds a password (as may root and the daemon's user). */
  readonly mailOwner?: string;
}

/* redact - every copy of `secret` in a message becomes "(hidden)" */
export function redact(text: string, secret: string): string {
  return secret === '' ? text : text.split(secret).join('(hidden)');
}

/* openNoFollow - the descriptor of `path`, and whether a symbolic link had to be followed */
function openNoFollow(path: string): { fd: number; link: boolean } {
  // O_NONBLOCK: a FIFO put in the file's place must not hang the start.
  const flags = constants.O_RDONLY | constants.O_NONBLOCK;
  try {
    return { fd: openSync(path, flags | constants.O_NOFOLLOW), link: false };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ELOOP') throw new FatalError(`open ${path}: ${strerror(err)}`, { cause: err });
  }
  // A link: followed, so that a file without a password keeps working; one holding a
  // password is refused below.
  try {
    return { fd: openSync(path, flags), link: true };
  } catch (err) {
    throw new FatalError(`open ${path}: ${strerror(err)}`, { cause: err });
  }
}

/* readAll - the whole file from its descriptor */
function readAll(fd: number, path: string): Buffer {
  const buf = Buffer.alloc(MAX_FILE_BYTES + 1);
  let n = 0;
  try {
    for (let r = -1; r !== 0 && n < buf.length; n += r) r = readSync(fd, buf, n, buf.length - n, null);
  } catch (err) {
    buf.fill(0);
    throw new FatalError(`read ${path}: ${strerror(err)}`, { cause: err });
  }
  if (n > MAX_FILE_BYTES) {
    buf.fill(0);
    throw new FatalError(`redis configuration file ${path}: larger than ${MAX_FILE_BYTES} bytes`);
  }
  return buf.subarray(0, n);
}

/**
 * A file that holds a secret may belong only to root, $mail_owner or the reading user:
 * whoever owns it can choose the secret. Throws "<what> is owned by uid <n>: use chown ...".
 */
export function checkSecretOwner(path: string, uid: number, mailOwner: string | undefined, what: string): void {
  const owner = mailOwner !== undefined && mailOwner !== '' ? lookupUser(mailOwner) : null;
  const trusted = new Set([0, process.geteuid?.() ?? 0, ...(owner !== null ? [owner.uid] : [])]);
  if (!trusted.has(uid)) {
    const alt = mailOwner !== undefined && mailOwner !== '' ? ` (or chown ${mailOwner} ${path})` : '';
    throw new FatalError(`${what} is owned by uid ${uid}: use chown root ${path}${alt}`);
  }
}

/* checkSecretFile - owner and mode of a file that holds a password */
function checkSecretFile(path: string, st: Stats, link: boolean, mailOwner: string | undefined): void {
  const what = `redis configuration file ${path} holds a password but`;
  if (link) throw new FatalError(`${what} is a symbolic link: name the file itself in the redis: table`);
  checkSecretOwner(path, st.uid, mailOwner, what);
  const mode = st.mode & 0o7777;
  if ((mode & ~SECRET_MODE_MAX) !== 0) {
    throw new FatalError(`${what} has mode 0${mode.toString(8)}, more than 0${SECRET_MODE_MAX.toString(8)}: use chmod 640 (or chmod 600)`);
  }
}

/** Read and check a redis: configuration file (once, from one descriptor). */
export function readRedisConfig(path: string, warn: (msg: string) => void = () => undefined, opts: ReadRedisConfigOptions = {}): RedisConfig {
  const { fd, link } = openNoFollow(path);
  let password = '';
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new FatalError(`redis configuration file ${path}: not a regular file`);
    const raw = readAll(fd, path);
    let table: Map<string, string>;
    try {
      table = parseMainCf(raw.toString('utf8'), path, { warn, hideValues: true });
    } finally {
      raw.fill(0);
    }
    password = table.get('password') ?? '';
    if (password !== '') checkSecretFile(path, st, link, opts.mailOwner);
    return configFromTable(table, path, (msg) => warn(redact(msg, password)));
  } catch (err) {
    // Without the cause: an engine error's own text may carry the password.
    if (err instanceof FatalError && password !== '') throw new FatalError(redact(err.message, password));
    throw err;
  } finally {
    closeSync(fd);
  }
}
