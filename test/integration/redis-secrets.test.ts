/*
 * redis-secrets - the redis: password never reaches a log line, against a real redis-server
 * that echoes it: with AUTH and HELLO renamed away (rename-command ... ""), Redis answers the
 * handshake with "ERR unknown command 'AUTH', with args beginning with: '<password>'", as an
 * old Redis answers HELLO. Checked through RedisLink (cluster/link.ts) and through the real
 * daemon's stderr (standalone, redis: session cache), with a configuration file that sets
 * the password twice: neither password, nor its hex or base64, appears in any warning.
 */

import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { startDaemon } from '../../bench/daemon.js';
import { readRedisConfig } from '../../src/cluster/config.js';
import { RedisLink } from '../../src/cluster/link.js';
import { systemClock } from '../../src/util/clock.js';
import { sleep } from '../helpers/postfix.js';
import { skipWithoutRedis, startRedis, writeClusterFiles, type ClusterFiles, type RedisServer } from '../helpers/redis.js';

const skip = skipWithoutRedis();
const PW1 = 'First-Pass-73a1c9';
const PW2 = 'Second-Pass-e05b42';
let redis: RedisServer;
let dir: string;
let files: ClusterFiles;

before(async () => {
  if (skip !== false) return;
  redis = await startRedis({ args: ['--rename-command', 'AUTH', '', '--rename-command', 'HELLO', ''] });
  dir = mkdtempSync(join(tmpdir(), 'tlsmgr-redis-secrets-'));
  files = writeClusterFiles(dir, redis, { via: 'tcp' });
  appendFileSync(files.cf, `password = ${PW1}\npassword = ${PW2}\n`);
});

after(async () => {
  await redis?.destroy();
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

/** No form of either password (clear, hex, base64) in `text`. */
function assertNoSecret(text: string): void {
  for (const pw of [PW1, PW2]) {
    const b = Buffer.from(pw);
    for (const form of [pw, b.toString('hex'), b.toString('hex').toUpperCase(), b.toString('base64'), b.toString('base64url')]) {
      assert.ok(!text.includes(form), `the log carries ${form}:\n${text}`);
    }
  }
}

test('RedisLink: the server echoes the password in its error; the warning does not', { skip }, async () => {
  const warnings: string[] = [];
  const config = readRedisConfig(files.cf, (m) => warnings.push(m));
  assert.equal(config.password, PW2);
  const link = RedisLink.open(config, { clock: systemClock, warn: (m) => warnings.push(m), info: (m) => warnings.push(m) });
  try {
    for (let i = 0; i < 100 && !warnings.some((w) => w.includes('connection:')); i++) await sleep(50);
  } finally {
    link.close();
  }
  // The server did refuse the handshake, and said so without the password.
  assert.ok(warnings.some((w) => /connection: ERR unknown command 'AUTH' \(arguments not shown\)/i.test(w)), warnings.join('\n'));
  assert.ok(warnings.some((w) => w.endsWith('overriding earlier entry: password (value not shown)')), warnings.join('\n'));
  assertNoSecret(warnings.join('\n'));
});

test('the daemon: neither the override warning nor the connection warning carries the password', { skip }, async () => {
  const d = await startDaemon({ mainCf: { smtpd_tls_session_cache_database: `redis:${files.cf}`, tlsmgr_stats_interval: '0' } });
  try {
    for (let i = 0; i < 100 && !d.stderr().includes('connection:'); i++) await sleep(50);
  } finally {
    await d.stop();
  }
  assert.match(d.stderr(), /warning: .*, line \d+: overriding earlier entry: password \(value not shown\)\n/);
  assert.match(d.stderr(), /warning: redis .*: connection: ERR unknown command 'AUTH' \(arguments not shown\)/i);
  assertNoSecret(d.stderr());
});
