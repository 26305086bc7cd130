/*
 * prng-exchange-lock - our exchange-file lock and Postfix's own tlsmgr(8) exclude each other
 * (spec 4.5, issue 4 item 5). Debian's /usr/lib/postfix/sbin/tlsmgr in -S mode runs its
 * post-init, which updates the PRNG exchange file under flock(LOCK_EX), then answers one
 * request from stdin (a seed request here) and exits. On a shared file:
 * - control: with nobody holding the lock it finishes (exit 0) and rewrites the file;
 * - while our ExchangeFile.update() is inside its locked section (the whileLocked hook), it
 *   cannot finish: it is still blocked when killed after max(2 s, 4 x the control run), and
 *   the file then holds exactly our bytes;
 * - after our update returns, it finishes again and rewrites the file.
 * Needs root and the postfix package (skipped otherwise, like the other interop tests).
 */

import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { lookupUser } from '../../src/master/passwd.js';
import { EXCH_SIZE, ExchangeFile } from '../../src/prng/exchange.js';
import { writeCold } from '../helpers/cold.js';

const TLSMGR = '/usr/lib/postfix/sbin/tlsmgr';
const postfix = lookupUser('postfix');
const skip = process.getuid?.() !== 0 ? 'needs root' : !existsSync(TLSMGR) ? `${TLSMGR} is missing (apt-get install postfix)` : postfix === null ? 'no postfix user' : false;

test("Postfix's tlsmgr and ours exclude each other on the exchange file (real flock)", { skip, timeout: 60_000 }, () => {
  assert.ok(postfix !== null);
  const dir = mkdtempSync(join(tmpdir(), 'tlsmgr-pfx-lock-'));
  try {
    chmodSync(dir, 0o755);
    for (const d of ['etc', 'queue', 'data']) mkdirSync(join(dir, d), { mode: 0o755 });
    chownSync(join(dir, 'data'), postfix.uid, postfix.gid);
    const exch = join(dir, 'data', 'prng_exch');
    // An old main.cf: Postfix re-reads a fresh one for ~2 s (test/helpers/cold.ts).
    writeCold(
      join(dir, 'etc', 'main.cf'),
      [
        `queue_directory = ${join(dir, 'queue')}`,
        `data_directory = ${join(dir, 'data')}`,
        'mail_owner = postfix',
        'compatibility_level = 3.6',
        `tls_random_exchange_name = ${exch}`,
        '',
      ].join('\n'),
    );
    const runPostfix = (timeoutMs: number): { r: SpawnSyncReturns<string>; ms: number } => {
      const t0 = Date.now();
      const r = spawnSync(TLSMGR, ['-S'], {
        cwd: dir,
        env: { ...process.env, MAIL_CONFIG: join(dir, 'etc') },
        // A complete seed request: with an empty stdin 3.7.11 panics (vstream_fflush_some).
        input: Buffer.from('request\0seed\0size\x0032\0\0', 'latin1'),
        encoding: 'utf8',
        timeout: timeoutMs,
        killSignal: 'SIGKILL',
      });
      return { r, ms: Date.now() - t0 };
    };

    const ours = ExchangeFile.open(exch, {
      owner: postfix,
      mailOwner: 'postfix',
      dataDirectory: join(dir, 'data'),
      warn: (m) => assert.fail(`unexpected warning: ${m}`),
      whileLocked: () => {
        if (limit === 0) return; // the first, plain update
        const blocked = runPostfix(limit);
        assert.equal(blocked.r.status, null, `Postfix's tlsmgr finished while we held the lock (exit ${blocked.r.status}): ${blocked.r.stderr}`);
        assert.equal(blocked.r.signal, 'SIGKILL');
      },
    });
    let limit = 0;
    try {
      ours.update({ addEntropy: () => undefined, generate: (n) => Buffer.alloc(n, 0x01) });
      assert.ok(readFileSync(exch).equals(Buffer.alloc(EXCH_SIZE, 0x01)));

      const control = runPostfix(20_000);
      assert.equal(control.r.status, 0, `control run: ${control.r.stderr} ${control.r.signal ?? ''}`);
      const afterControl = readFileSync(exch);
      assert.equal(afterControl.length, EXCH_SIZE);
      assert.ok(!afterControl.equals(Buffer.alloc(EXCH_SIZE, 0x01)), 'Postfix rewrote the file');

      limit = Math.max(2000, 4 * control.ms);
      ours.update({ addEntropy: () => undefined, generate: (n) => Buffer.alloc(n, 0x02) });
      assert.ok(readFileSync(exch).equals(Buffer.alloc(EXCH_SIZE, 0x02)), 'blocked Postfix wrote nothing');

      const again = runPostfix(20_000);
      assert.equal(again.r.status, 0, again.r.stderr);
      assert.ok(!readFileSync(exch).equals(Buffer.alloc(EXCH_SIZE, 0x02)), 'and proceeds once the lock is free');
    } finally {
      ours.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
