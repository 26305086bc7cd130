/*
 * dev-start - the README's first command: `npm start` (dist/src/cli/dev.js) runs the daemon on
 * embedded defaults with no Postfix, as any user, root included (mail_owner is then postfix
 * or nobody, and the instance is laid out for it). The test starts it, reads the socket path
 * from its "listening on" line, is greeted and served a seed there, and stops it with SIGTERM
 * (exit 0). Every wait is bounded.
 */

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { REPO } from '../../bench/daemon.js';
import { TlsmgrClient } from '../../src/client/client.js';
import { captureChild } from '../helpers/child.js';
import { sleep } from '../helpers/harness.js';

test('npm start: the daemon runs on embedded defaults and serves its socket', { timeout: 30_000 }, async () => {
  const child = spawn(process.execPath, [join(REPO, 'dist/src/cli/dev.js')], { stdio: ['ignore', 'ignore', 'pipe'] });
  const out = captureChild(child);
  try {
    let path: string | null = null;
    for (let i = 0; i < 400 && path === null; i++) {
      if (child.exitCode !== null) break;
      path = /listening on (\S+)/.exec(out.stderr())?.[1] ?? null;
      if (path === null) await sleep(25);
    }
    assert.ok(path !== null, `no "listening on" line: ${out.stderr()}`);
    const c = await TlsmgrClient.connect(path, { timeoutMs: 5000 });
    const r = await c.seed(32);
    assert.equal(r.status, 0);
    assert.equal(r.seed.length, 32);
    c.close();
    child.kill('SIGTERM');
    assert.equal(await out.exited(10_000), 0, out.stderr());
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
  }
});
