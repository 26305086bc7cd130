/*
 * prng-manager - tlsmgr's PRNG lifecycle (spec 4.2-4.5; scenarios 34-40) in-process, with real
 * sources and files, recorded log lines, an intercepted exit() and fake timers:
 * - empty source: the two warnings, no reseed timer, the exchange file is still kept;
 * - dev: read at post-init and on every reseed timer; a missing device: warning at pre-init,
 *   "exiting to reopen external entropy source" at post-init, exchange file saved, exit(0);
 *   a device at end of file: "cannot read from entropy device ... -- exiting to reopen";
 * - EGD: normal answers on every reseed; zero count: the info lines, save, exit(0); a server
 *   that cannot be reached: the warning, then "exiting to reopen";
 * - file: read once (up to tls_random_bytes), later reseeds do nothing; an empty file warns
 *   and keeps running; a missing file is silent until post-init exits to reopen it;
 * - exchange file: written at post-init and by beforeExit(); removed -> warning, exit(0), not
 *   recreated; a read failure at post-init goes to fatal(); no name: no file, no timer;
 * - timers: intervals within [0, period], periods clamped to 8421504 s; close() stops them;
 * - seed(): n bytes, fresh each time; stir(): the time once per event-loop turn, extra data always;
 * - a pool whose CSPRNG fails: the source bytes it cannot take are a warning (no exit), seed()
 *   throws until the CSPRNG works again, the reseed timer takes pid & 0xff; an exchange-file
 *   update the pool breaks is a fatal() with its reason, not an exception out of the timer.
 */

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { FatalError } from '../../src/util/errors.js';
import { EXCH_SIZE } from '../../src/prng/exchange.js';
import { PrngManager, type PrngConfig } from '../../src/prng/manager.js';
import type { PoolDeps } from '../../src/prng/pool.js';
import { PERIOD_MAX } from '../../src/prng/schedule.js';
import { FakeTimers } from '../helpers/fake-timers.js';
import { until } from '../helpers/harness.js';

const dir = mkdtempSync(join(tmpdir(), 'tlsmgr-prngmgr-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let serial = 0;

interface Run {
  readonly m: PrngManager;
  readonly exch: string;
  readonly infos: string[];
  readonly warnings: string[];
  readonly fatals: string[];
  readonly exits: number[];
  readonly timers: FakeTimers;
  /** Bytes passed to pool.addEntropy, per call. */
  readonly fed: number[];
}

async function start(over: Partial<PrngConfig> = {}, opts: { ioTimeoutMs?: number; postInit?: boolean; pool?: PoolDeps } = {}): Promise<Run> {
  const exch = join(dir, `prng_exch-${++serial}`);
  const config: PrngConfig = {
    tlsRandomSource: 'dev:/dev/urandom',
    tlsRandomBytes: 32,
    tlsRandomReseedPeriod: 3600,
    tlsRandomPrngUpdatePeriod: 3600,
    tlsRandomExchangeName: exch,
    dataDirectory: dir,
    mailOwner: 'tester',
    ...over,
  };
  const r = { infos: [] as string[], warnings: [] as string[], fatals: [] as string[], exits: [] as number[], timers: new FakeTimers(), fed: [] as number[] };
  const m = await PrngManager.preInit(config, {
    owner: null,
    info: (s) => r.infos.push(s),
    warn: (s) => r.warnings.push(s),
    fatal: (s) => r.fatals.push(s),
    exit: (c) => r.exits.push(c),
    ioTimeoutMs: opts.ioTimeoutMs ?? 2000,
    timers: r.timers,
    pool: opts.pool,
  });
  const add = m.pool.addEntropy.bind(m.pool);
  m.pool.addEntropy = (b: Buffer): void => {
    r.fed.push(b.length);
    add(b);
  };
  if (opts.postInit !== false) await m.postInit();
  return { m, exch: config.tlsRandomExchangeName, ...r };
}

/**
 * Fire the pending timers once and wait (bounded) until each event has finished: a reseed
 * reads its source first and re-arms its timer last, so the events are done when each has
 * re-armed, or when the manager exited or failed (it then re-arms nothing).
 */
async function tick(r: Run): Promise<void> {
  const exits = r.exits.length;
  const fatals = r.fatals.length;
  const fired = r.timers.fireAll();
  await until(() => r.timers.size >= fired || r.exits.length > exits || r.fatals.length > fatals, 5000, 'the timed events to finish');
}

test('dev:/dev/urandom: read at post-init (32 bytes), exchange file written, both timers armed', async () => {
  const r = await start();
  try {
    assert.deepEqual(r.warnings, []);
    assert.deepEqual(r.fed, [32], 'one device read; the new exchange file was empty');
    assert.equal(statSync(r.exch).size, EXCH_SIZE);
    assert.equal(statSync(r.exch).mode & 0o777, 0o600);
    assert.equal(r.timers.size, 2);
    for (const v of [r.m.lastReseedInterval, r.m.lastExchangeInterval]) assert.ok(v !== null && v >= 0 && v <= 3600);
    const before = readFileSync(r.exch);
    await tick(r);
    assert.deepEqual(r.fed.slice(1).sort((a, b) => a - b), [32, EXCH_SIZE], 'reseed read again; exchange update fed the old file');
    assert.ok(!readFileSync(r.exch).equals(before), 'rewritten by the timed update');
    assert.equal(r.timers.size, 2, 're-armed');
    assert.deepEqual(r.exits, []);
  } finally {
    r.m.close();
  }
  assert.equal(r.timers.size, 0, 'close() stops the timers');
});

test('tls_random_bytes over 255: a device read is capped at 255', async () => {
  const r = await start({ tlsRandomBytes: 1000 });
  r.m.close();
  assert.deepEqual(r.fed, [255]);
});

test('empty tls_random_source: the two warnings, no reseed timer, still serving and saving', async () => {
  const r = await start({ tlsRandomSource: '' });
  try {
    assert.deepEqual(r.warnings, ['no entropy source specified with parameter tls_random_source', 'encryption keys etc. may be predictable']);
    assert.equal(r.m.lastReseedInterval, null);
    assert.equal(r.timers.size, 1, 'only the exchange timer');
    assert.equal(r.m.seed(32).length, 32);
    assert.equal(statSync(r.exch).size, EXCH_SIZE);
  } finally {
    r.m.close();
  }
});

test('a missing device: warning at pre-init; post-init says "exiting to reopen", saves, exit(0)', async () => {
  const r = await start({ tlsRandomSource: 'dev:/nonexistent/urandom' }, { postInit: false });
  assert.deepEqual(r.warnings, ['cannot open entropy device /nonexistent/urandom: No such file or directory']);
  assert.equal(existsSync(r.exch), true);
  assert.equal(statSync(r.exch).size, 0, 'opened at pre-init, not yet written');
  await r.m.postInit();
  assert.deepEqual(r.infos, ['exiting to reopen external entropy source dev:/nonexistent/urandom']);
  assert.deepEqual(r.exits, [0]);
  assert.equal(statSync(r.exch).size, EXCH_SIZE, 'the exchange file was saved before the exit');
  assert.equal(r.timers.size, 0);
  r.m.beforeExit(); // after the exit path: nothing more happens
  r.m.close();
});

test('a device at end of file (/dev/null): "cannot read from entropy device ... -- exiting to reopen"', async () => {
  const r = await start({ tlsRandomSource: 'dev:/dev/null' });
  r.m.close();
  assert.deepEqual(r.infos, ['cannot read from entropy device /dev/null: Success -- exiting to reopen']);
  assert.deepEqual(r.exits, [0]);
  assert.equal(statSync(r.exch).size, EXCH_SIZE);
});

async function egd(answer: (n: number) => Buffer): Promise<{ path: string; server: Server; requests: number[] }> {
  const path = join(dir, `egd-${++serial}.sock`);
  const requests: number[] = [];
  const server = createServer((s) => {
    s.on('error', () => undefined);
    s.on('data', (c: Buffer) => {
      for (let i = 0; i + 1 < c.length; i += 2) {
        requests.push(c[i + 1]);
        s.write(answer(c[i + 1]));
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  return { path, server, requests };
}

test('EGD: a reseed per timer run; zero bytes: the info lines, save, exit(0)', async () => {
  let zero = false;
  const e = await egd((n) => (zero ? Buffer.from([0]) : Buffer.concat([Buffer.from([n]), Buffer.alloc(n, 9)])));
  const r = await start({ tlsRandomSource: `egd:${e.path}` });
  try {
    assert.deepEqual(r.fed, [32]);
    assert.deepEqual(e.requests, [32]);
    await tick(r);
    assert.deepEqual(e.requests, [32, 32]);
    zero = true;
    const saved = readFileSync(r.exch);
    r.timers.fireAll();
    await until(() => r.exits.length > 0, 5000, 'the exit');
    assert.deepEqual(r.infos, [`EGD server ${e.path} reports zero bytes available`, `lost connection to EGD server ${e.path} -- exiting to reconnect`]);
    assert.deepEqual(r.exits, [0]);
    assert.ok(!readFileSync(r.exch).equals(saved), 'saved on the way out');
  } finally {
    r.m.close();
    e.server.close();
  }
});

test('EGD server unreachable: warning at pre-init, then "exiting to reopen external entropy source"', async () => {
  const path = join(dir, 'no-egd.sock');
  const r = await start({ tlsRandomSource: `egd:${path}` });
  r.m.close();
  assert.deepEqual(r.warnings, [`cannot connect to EGD server ${path}: No such file or directory`]);
  assert.deepEqual(r.infos, [`exiting to reopen external entropy source egd:${path}`]);
  assert.deepEqual(r.exits, [0]);
});

// A hang would be caught by the test's timeout, far above the 150 ms I/O timeout.
test('EGD server that stalls: the reseed gives up after the I/O timeout and exits; no hang', { timeout: 20_000 }, async () => {
  const e = await egd(() => Buffer.alloc(0));
  const r = await start({ tlsRandomSource: `egd:${e.path}` }, { ioTimeoutMs: 150 });
  r.m.close();
  e.server.close();
  assert.deepEqual(r.infos, [`cannot read from EGD server ${e.path}: Connection timed out`, `lost connection to EGD server ${e.path} -- exiting to reconnect`]);
  assert.deepEqual(r.exits, [0]);
});

test('file source: read once up to tls_random_bytes, then forgotten: later reseeds read nothing', async () => {
  const path = join(dir, `entropy-${++serial}`);
  writeFileSync(path, Buffer.alloc(10000, 3));
  const r = await start({ tlsRandomSource: path, tlsRandomBytes: 9000 });
  try {
    assert.deepEqual(r.fed, [8192, 808], 'chunks of at most 8192');
    assert.deepEqual(r.warnings, []);
    await tick(r);
    await tick(r);
    assert.deepEqual(r.fed.filter((n) => n !== EXCH_SIZE), [8192, 808], 'no second read');
    assert.deepEqual(r.exits, []);
    assert.ok(r.m.lastReseedInterval !== null, 'the reseed timer keeps running, with nothing to do');
  } finally {
    r.m.close();
  }
});

test('file source: an empty file warns ("Success") and keeps running; a missing one exits to reopen', async () => {
  const empty = join(dir, `empty-${++serial}`);
  writeFileSync(empty, '');
  let r = await start({ tlsRandomSource: empty });
  r.m.close();
  assert.deepEqual(r.warnings, [`cannot read from entropy file ${empty}: Success`]);
  assert.deepEqual(r.exits, []);
  const missing = join(dir, 'missing-entropy');
  r = await start({ tlsRandomSource: missing }, { postInit: false });
  assert.deepEqual(r.warnings, [], 'silent at pre-init, as Postfix');
  await r.m.postInit();
  r.m.close();
  assert.deepEqual(r.infos, [`exiting to reopen external entropy source ${missing}`]);
  assert.deepEqual(r.exits, [0]);
});

test('exchange file removed: at the next timed update a warning and exit(0), and it is not recreated', async () => {
  const r = await start();
  try {
    unlinkSync(r.exch);
    await tick(r);
    assert.deepEqual(r.warnings, ['PRNG exchange file was removed -- exiting to reopen']);
    assert.deepEqual(r.exits, [0]);
    assert.equal(existsSync(r.exch), false);
    assert.equal(r.timers.size, 0);
    r.m.beforeExit();
    assert.equal(existsSync(r.exch), false, 'not recreated by a later exit handler either');
  } finally {
    r.m.close();
  }
});

test('beforeExit() rewrites the exchange file (1024 bytes) synchronously', async () => {
  const r = await start();
  const a = readFileSync(r.exch);
  r.m.beforeExit();
  const b = readFileSync(r.exch);
  r.m.close();
  assert.equal(b.length, EXCH_SIZE);
  assert.ok(!a.equals(b));
});

test('no exchange file name: nothing opened or written, no exchange timer', async () => {
  const r = await start({ tlsRandomExchangeName: '' });
  r.m.close();
  assert.equal(r.m.exchange, null);
  assert.equal(r.m.lastExchangeInterval, null);
});

test('exchange file cannot be opened: preInit throws the FatalError', async () => {
  await assert.rejects(
    start({ tlsRandomExchangeName: join(dir, 'no', 'dir', 'prng_exch') }),
    (e: unknown) => e instanceof FatalError && e.message.startsWith('tls_prng_exch_open: cannot open PRNG exchange file '),
  );
});

test('an exchange file whose read fails: post-init reports it through fatal(), no crash', { skip: process.getuid?.() !== 0 }, async () => {
  const r = await start({ tlsRandomExchangeName: '/proc/self/mem' });
  r.m.close();
  assert.deepEqual(r.fatals, ['cannot read PRNG exchange file /proc/self/mem: Input/output error']);
  assert.equal(r.timers.size, 0);
});

test('periods over 8421504 s are clamped; every interval drawn is within [0, period]', async () => {
  const r = await start({ tlsRandomReseedPeriod: 10 ** 9, tlsRandomPrngUpdatePeriod: 2 });
  try {
    for (let i = 0; i < 20; i++) {
      assert.ok((r.m.lastReseedInterval ?? -1) >= 0 && (r.m.lastReseedInterval ?? Infinity) <= PERIOD_MAX);
      assert.ok((r.m.lastExchangeInterval ?? -1) >= 0 && (r.m.lastExchangeInterval ?? Infinity) <= 2);
      await tick(r);
    }
    assert.ok(r.timers.delays.every((d) => d <= 2 ** 31 - 1), 'no Node timer over its limit');
  } finally {
    r.m.close();
  }
});

test('seed(n): n bytes, different every time; stir() does not disturb it', async () => {
  const r = await start();
  try {
    const seen = new Set<string>();
    for (let i = 0; i < 200; i++) {
      r.m.stir(i % 2 ? Buffer.from(`session ${i}`) : undefined);
      const s = r.m.seed(1 + (i % 255));
      assert.equal(s.length, 1 + (i % 255));
      seen.add(s.toString('hex'));
    }
    assert.equal(seen.size, 200);
  } finally {
    r.m.close();
  }
});

test('FIFO as device with no data: the read times out (I/O timeout) and the manager exits', async () => {
  const fifo = join(dir, `dev-${++serial}.fifo`);
  execFileSync('mkfifo', [fifo]);
  // Keep a writer open so the read sees "no data yet" instead of end of file.
  const { openSync, closeSync, constants } = await import('node:fs');
  const reader = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
  const writer = openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK);
  try {
    const r = await start({ tlsRandomSource: `dev:${fifo}` }, { ioTimeoutMs: 150 });
    r.m.close();
    assert.deepEqual(r.infos, [`cannot read from entropy device ${fifo}: Connection timed out -- exiting to reopen`]);
    assert.deepEqual(r.exits, [0]);
  } finally {
    closeSync(writer);
    closeSync(reader);
  }
});

test('stir(): the time goes in once per event-loop turn; extra data every time', async () => {
  const r = await start({ tlsRandomExchangeName: '' });
  try {
    const calls: string[] = [];
    const orig = r.m.pool.stir.bind(r.m.pool);
    r.m.pool.stir = (extra?: Buffer): void => {
      calls.push(extra === undefined ? 'time' : 'extra');
      orig(extra);
    };
    await new Promise((resolve) => setImmediate(resolve)); // a fresh turn
    for (let i = 0; i < 5; i++) r.m.stir();
    r.m.stir(Buffer.from('cache data'));
    assert.deepEqual(calls, ['time', 'extra']);
    await new Promise((resolve) => setImmediate(resolve));
    r.m.stir();
    r.m.stir();
    assert.deepEqual(calls, ['time', 'extra', 'time']);
  } finally {
    r.m.close();
  }
});

/** Node's CSPRNG, failing while `armed`. */
function switchableCsprng(): PoolDeps & { armed: boolean } {
  const d = {
    armed: false,
    randomBytes: (n: number): Buffer => {
      if (d.armed) throw new Error('CSPRNG failure');
      return randomBytes(n);
    },
  };
  return d;
}

test('the pool cannot take the device bytes: a warning, no exit; seeds refused until it recovers; timer r = pid & 0xff (0: 255)', async () => {
  const csprng = switchableCsprng();
  const r = await start({ tlsRandomExchangeName: '' }, { pool: csprng });
  try {
    assert.equal(r.m.seed(32).length, 32);
    csprng.armed = true;
    await tick(r);
    assert.deepEqual(r.warnings, ['cannot reseed the PRNG pool: CSPRNG failure']);
    assert.deepEqual(r.infos, [], 'not taken for a device failure');
    assert.deepEqual(r.exits, []);
    assert.equal(r.m.lastReseedInterval, Math.floor((3600 * ((process.pid & 0xff) || 0xff)) / 255));
    assert.equal(r.timers.size, 1, 're-armed');
    assert.throws(() => r.m.seed(32), /CSPRNG failure/);
    csprng.armed = false;
    assert.equal(r.m.seed(32).length, 32);
    await tick(r);
    assert.equal(r.warnings.length, 1, 'a good reseed is quiet again');
    assert.deepEqual(r.exits, []);
  } finally {
    r.m.close();
  }
});

test('an exchange-file update the pool breaks: fatal() with the reason, timers stopped, nothing thrown', async () => {
  const csprng = switchableCsprng();
  const r = await start({ tlsRandomSource: '' }, { pool: csprng });
  try {
    const before = readFileSync(r.exch);
    csprng.armed = true;
    await tick(r);
    assert.deepEqual(r.fatals, [`cannot update PRNG exchange file ${r.exch}: CSPRNG failure`]);
    assert.equal(r.timers.size, 0);
    assert.ok(readFileSync(r.exch).equals(before), 'nothing written');
  } finally {
    r.m.close();
  }
});
