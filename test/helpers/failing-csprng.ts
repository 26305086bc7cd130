/*
 * NAME
 *   test/helpers/failing-csprng - a `node --import` preload that breaks crypto.randomBytes on demand
 * SYNOPSIS
 *   TLSMGR_TEST_CSPRNG_FAIL=<flag file> node --import <this file> bin/tlsmgr ...
 * DESCRIPTION
 *   For the daemon tests of a failing entropy source: while the flag file exists,
 *   crypto.randomBytes() throws "CSPRNG failure (test)"; otherwise it is Node's own. The
 *   CommonJS crypto object is patched and the built-in ES module exports are synced, so the
 *   daemon's `import { randomBytes } from 'node:crypto'` sees the wrapper. The daemon's code
 *   is not changed: the failure is the one a dead OpenSSL RAND would give it.
 * LIMITS
 *   Test code only; without TLSMGR_TEST_CSPRNG_FAIL in the environment it does nothing.
 */

import { existsSync } from 'node:fs';
import { createRequire, syncBuiltinESMExports } from 'node:module';

const flag = process.env.TLSMGR_TEST_CSPRNG_FAIL;
if (flag !== undefined && flag !== '') {
  const crypto = createRequire(import.meta.url)('node:crypto') as { randomBytes: (...a: unknown[]) => unknown };
  const real = crypto.randomBytes;
  crypto.randomBytes = function (this: unknown, ...a: unknown[]): unknown {
    if (existsSync(flag)) throw new Error('CSPRNG failure (test)');
    return Reflect.apply(real, this, a);
  };
  syncBuiltinESMExports();
}
