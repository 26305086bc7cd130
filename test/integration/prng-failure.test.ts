/*
 * prng-failure - the real daemon (`node bin/tlsmgr`, standalone) when its entropy source dies
 * (spec 2.3; Postfix 3.7.21+/3.12 tlsmgr.c: a seed whose RAND_bytes() fails is ERR with an
 * empty seed, never bytes). Node's CSPRNG is broken from outside with a --import preload
 * (test/helpers/failing-csprng.ts) while a flag file exists; the daemon's code is the
 * shipped one. With a 1 s reseed period the next reseed meets the failure: the pool cannot
 * take the device bytes (a warning; the daemon neither exits nor crashes), every seed is then
 * ERR with an empty seed and a warning naming the reason only, the other requests are served,
 * and once the CSPRNG works again the seeds are OK and the daemon stops cleanly (exit 0).
 * Every wait is bounded.
 */

import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, test } from 'node:test';
import { startDaemon } from '../../bench/daemon.js';
import { TlsmgrClient } from '../../src/client/client.js';
import { until } from '../helpers/harness.js';

const PRELOAD = fileURLToPath(new URL('../helpers/failing-csprng.js', import.meta.url));
const work = mkdtempSync(join(tmpdir(), 'tlsmgr-prngfail-'));
// A root daemon drops to mail_owner, whose preload must see the flag file in here.
chmodSync(work, 0o755);
after(() => rmSync(work, { recursive: true, force: true }));


test('a dead CSPRNG: seed ERR with an empty seed, no bytes, no exit; OK again once it is back', async () => {
  const flag = join(work, 'csprng-fails');
  process.env.TLSMGR_TEST_CSPRNG_FAIL = flag; // startDaemon passes the environment on
  const d = await startDaemon({
    mainCf: { tls_random_source: 'dev:/dev/urandom', tls_random_reseed_period: '1s', tls_random_exchange_name: '' },
    nodeArgs: ['--import', PRELOAD],
  });
  const c = await TlsmgrClient.connect(d.socket, { timeoutMs: 5000 });
  try {
    const ok = await c.seed(32);
    assert.equal(ok.status, 0);
    assert.equal(ok.seed.length, 32);

    writeFileSync(flag, '');
    await until(() => d.stderr().includes('warning: cannot reseed the PRNG pool: CSPRNG failure (test)'), 10_000,
      `the failing reseed: ${d.stderr()}`);
    for (const n of [1, 32, 255]) assert.deepEqual(await c.seed(n), { status: -1, seed: Buffer.alloc(0) }, `size ${n}`);
    assert.match(d.stderr(), /warning: cannot generate 255 seed bytes: CSPRNG failure \(test\)/);
    const policy = await c.policy('smtpd');
    assert.equal(policy.status, 0, 'the other requests are served');
    unlinkSync(flag);

    const back = await c.seed(32);
    assert.equal(back.status, 0);
    assert.equal(back.seed.length, 32);
    assert.equal(d.proc.exitCode, null, 'still running');
    assert.doesNotMatch(d.stderr(), /fatal|exiting to reopen|Error:/);
  } finally {
    c.close();
    rmSync(flag, { force: true });
    assert.equal(await d.stop(), 0, d.stderr());
  }
});
