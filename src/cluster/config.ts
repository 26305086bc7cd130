/*
 * NAME
 *   cluster/config - the redis: table configuration file (Postfix network-table style)
 * SYNOPSIS
 *   readRedisConfig(path, warn?): RedisConfig
 *   parseRedisConfig(text, path, warn?): RedisConfig
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
 * LIMITS
 *   TLS certificate and key files are read at start (before chroot); so is the key file.
 * DIAGNOSTICS
 *   FatalError "<path>: <parameter>: <reason>" for a bad value or combination; unknown
 *   parameter names get a warning (a misspelt name must not pass silently).
 */

import { readFileSync } from 'node:fs';
import { FatalError } from '../errors.js';
import { readMainCf } from '../config/maincf.js';

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
  for (const name of table.keys()) if (!KNOWN.has(name)) warn(`${source}: unknown parameter "${name}" ignored`);
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

/** Read and check a redis: configuration file. */
export function readRedisConfig(path: string, warn?: (msg: string) => void): RedisConfig {
  return configFromTable(readMainCf(path, { warn }), path, warn);
}
