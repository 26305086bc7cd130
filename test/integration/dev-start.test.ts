/*
 * dev-start - the README's first command: `npm start` (dist/src/cli/dev.js) runs the daemon on
 * embedded defaults with no Postfix, as any user, root included (mail_owner is then postfix
 * or nobody, and the instance is laid out for it). The test starts it, reads the socket path
 * from its "listening on" line, is greeted and served a seed there, and stops it with SIGTERM
 * (exit 0). Every wait is bounded and ends on its event (the line, the reply, the exit).
 */

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { REPO } from '../../bench/daemon.js';
import { TlsmgrClient } from '../../src/client/client.js';
import { captureChild } from '../helpers/child.js';

test('npm start: the daemon runs on embedded defaults and serves its socket', { timeout: 30_000 }, async () => {
  const child = spawn(process.execPath, [join(REPO, 'dist/src/cli/dev.js')], { stdio: ['ignore', 'ignore', 'pipe'] });
  const out = captureChild(child);
  try {
    const path = (await out.logged(/listening on (\S+)/, 10_000))[1];
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
