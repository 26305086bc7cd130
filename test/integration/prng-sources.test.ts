/*
 * prng-sources - each entropy source against a real peer (spec 4.2, 4.3; scenarios 36, 37):
 * - dev: /dev/urandom (a character device): one read of min(len, 255); /dev/null (end of file:
 *   failure, "Success" as Postfix's errno 0); a FIFO with a silent writer stalls and times out
 *   (injected 150 ms; the default stays 10 s) and then delivers what is written; a missing path
 *   fails to open;
 * - file: a regular file read from offset 0 in chunks of at most 8192 up to len, stopping at
 *   end of file; an empty file (count 0, "Success"); a FIFO (cannot seek: "Illegal seek");
 * - EGD: a server started here on a UNIX socket: the request bytes (0x01, min(n, 255)), a full
 *   and a short answer, an answer split across segments, two reads on one connection, a zero
 *   count, a server that closes, one that stalls (timeout), one that sends part of the bytes,
 *   and connect failures (no socket file, nobody listening) with their Postfix info texts.
 * Every wait is bounded by the injected timeouts or the test's own timeout.
 */

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, constants, fstatSync, mkdtempSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { DEV_READ_MAX, DevSource } from '../../src/prng/sources/dev.js';
import { EgdSource } from '../../src/prng/sources/egd.js';
import { FILE_CHUNK, FileSource } from '../../src/prng/sources/file.js';
import { IO_TIMEOUT_MS } from '../../src/prng/sources/source.js';

const dir = mkdtempSync(join(tmpdir(), 'tlsmgr-prng-src-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const SHORT = 150;

function collector(): { feed: (b: Buffer) => void; chunks: number[]; bytes: () => Buffer } {
  const parts: Buffer[] = [];
  const chunks: number[] = [];
  return {
    feed: (b) => {
      chunks.push(b.length);
      parts.push(Buffer.from(b)); // the source reuses its buffer: keep a copy
    },
    chunks,
    bytes: () => Buffer.concat(parts),
  };
}

test('the default I/O timeout is 10 s (TLS_MGR_TIMEOUT)', () => {
  assert.equal(IO_TIMEOUT_MS, 10_000);
});

test('dev: /dev/urandom is a character device; one read of min(len, 255) bytes', async () => {
  const src = DevSource.open('/dev/urandom');
  try {
    for (const [len, want] of [[32, 32], [1, 1], [255, 255], [1000, DEV_READ_MAX]] as const) {
      const c = collector();
      const r = await src.read(len, c.feed);
      assert.deepEqual(r, { count: want, error: '' });
      assert.deepEqual(c.chunks, [want], 'one read, fed once');
    }
  } finally {
    src.close();
  }
  const fd = openSync('/dev/urandom', 'r');
  assert.ok(fstatSync(fd).isCharacterDevice());
  closeSync(fd);
});

test('dev: /dev/null gives end of file at once: failure with "Success" (errno 0)', async () => {
  const src = DevSource.open('/dev/null');
  const c = collector();
  assert.deepEqual(await src.read(32, c.feed), { count: 0, error: 'Success' });
  assert.deepEqual(c.chunks, []);
  src.close();
  assert.deepEqual(await src.read(32, c.feed), { count: -1, error: 'Bad file descriptor' }, 'after close');
});

test('dev: a missing device fails to open with ENOENT', () => {
  assert.throws(() => DevSource.open(join(dir, 'nonexistent')), { code: 'ENOENT' });
});

test('dev: a FIFO whose writer stays silent times out (injected timeout), then delivers what is written', { timeout: 20_000 }, async () => {
  const fifo = join(dir, 'stall.fifo');
  execFileSync('mkfifo', [fifo]);
  const src = DevSource.open(fifo, { timeoutMs: SHORT });
  const writer = openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK);
  try {
    const t0 = Date.now();
    const c = collector();
    assert.deepEqual(await src.read(32, c.feed), { count: -1, error: 'Connection timed out' });
    const took = Date.now() - t0;
    assert.ok(took >= SHORT - 5, `timed out after ${took} ms`);
    writeSync(writer, Buffer.from('0123456789'));
    assert.deepEqual(await src.read(32, c.feed), { count: 10, error: '' }, 'a short read counts');
    assert.equal(c.bytes().toString(), '0123456789');
  } finally {
    closeSync(writer);
  }
  assert.deepEqual(await src.read(32, collector().feed), { count: 0, error: 'Success' }, 'writer gone: end of file');
  src.close();
});

test('file: read from offset 0 in chunks of at most 8192 up to len, stopping at end of file', async () => {
  const path = join(dir, 'entropy');
  const data = Buffer.alloc(20000);
  for (let i = 0; i < data.length; i++) data[i] = (i * 7) & 0xff;
  writeFileSync(path, data);
  const src = FileSource.open(path);
  try {
    let c = collector();
    assert.deepEqual(await src.read(20000, c.feed), { count: 20000, error: '' });
    assert.deepEqual(c.chunks, [FILE_CHUNK, FILE_CHUNK, 20000 - 2 * FILE_CHUNK]);
    assert.ok(c.bytes().equals(data));
    c = collector();
    assert.deepEqual(await src.read(100, c.feed), { count: 100, error: '' }, 'no 255 cap, no more than len');
    assert.ok(c.bytes().equals(data.subarray(0, 100)), 'again from offset 0');
    c = collector();
    assert.deepEqual(await src.read(50000, c.feed), { count: 20000, error: '' }, 'stops at end of file');
  } finally {
    src.close();
  }
});

test('file: an empty file reads 0 bytes ("Success"); a missing one fails to open', async () => {
  const path = join(dir, 'empty');
  writeFileSync(path, '');
  const src = FileSource.open(path);
  assert.deepEqual(await src.read(32, collector().feed), { count: 0, error: 'Success' });
  src.close();
  assert.throws(() => FileSource.open(join(dir, 'missing')), { code: 'ENOENT' });
});

test('file: a FIFO cannot be positioned: "Illegal seek", and opening it does not hang', async () => {
  const fifo = join(dir, 'file.fifo');
  execFileSync('mkfifo', [fifo]);
  const src = FileSource.open(fifo, { timeoutMs: SHORT });
  assert.deepEqual(await src.read(32, collector().feed), { count: -1, error: 'Illegal seek' });
  src.close();
});

/* ---------------------------------------------------------------- EGD */

type Behaviour = (sock: Socket, req: Buffer) => void;

interface EgdServer {
  readonly path: string;
  readonly requests: Buffer[];
  readonly server: Server;
  close(): Promise<void>;
}

let egdSerial = 0;

/** An EGD server on a UNIX socket; `answer` decides what happens to each 2-byte request. */
async function egdServer(answer: Behaviour): Promise<EgdServer> {
  const path = join(dir, `egd-${++egdSerial}.sock`);
  const requests: Buffer[] = [];
  const socks = new Set<Socket>();
  const server = createServer((sock) => {
    socks.add(sock);
    let buf = Buffer.alloc(0);
    sock.on('error', () => undefined);
    sock.on('data', (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      while (buf.length >= 2) {
        const req = buf.subarray(0, 2);
        buf = buf.subarray(2);
        requests.push(Buffer.from(req));
        answer(sock, req);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  return {
    path,
    requests,
    server,
    close: () =>
      new Promise((resolve) => {
        for (const s of socks) s.destroy();
        server.close(() => resolve());
      }),
  };
}

const bytes = (n: number, fill = 0xa5): Buffer => Buffer.alloc(n, fill);

function infoLog(): { info: (m: string) => void; lines: string[] } {
  const lines: string[] = [];
  return { info: (m) => lines.push(m), lines };
}

test('EGD: request 0x01 n with n = min(len, 255); a full answer is fed; two reads on one connection', async () => {
  const srv = await egdServer((sock, req) => sock.write(Buffer.concat([Buffer.from([req[1]]), bytes(req[1])])));
  const log = infoLog();
  const src = await EgdSource.connect(srv.path, { timeoutMs: SHORT, info: log.info });
  try {
    const c = collector();
    assert.deepEqual(await src.read(32, c.feed), { count: 32, error: '' });
    assert.deepEqual(await src.read(1000, c.feed), { count: 255, error: '' });
    assert.deepEqual(srv.requests.map((r) => r.toString('hex')), ['0120', '01ff']);
    assert.deepEqual(c.chunks, [32, 255]);
    assert.ok(c.bytes().equals(bytes(287)));
    assert.deepEqual(log.lines, []);
  } finally {
    src.close();
    await srv.close();
  }
});

test('EGD: fewer bytes than asked (k < n) are accepted; an answer split into segments is reassembled', async () => {
  const srv = await egdServer((sock) => {
    sock.write(Buffer.from([5]));
    setTimeout(() => sock.write(bytes(2, 1)), 20);
    setTimeout(() => sock.write(bytes(3, 2)), 40);
  });
  const src = await EgdSource.connect(srv.path, { timeoutMs: 2000 });
  try {
    const c = collector();
    assert.deepEqual(await src.read(32, c.feed), { count: 5, error: '' });
    assert.equal(c.bytes().toString('hex'), '0101020202');
  } finally {
    src.close();
    await srv.close();
  }
});

test('EGD: a zero count is a failure: "EGD server <path> reports zero bytes available"', async () => {
  const srv = await egdServer((sock) => sock.write(Buffer.from([0])));
  const log = infoLog();
  const src = await EgdSource.connect(srv.path, { timeoutMs: SHORT, info: log.info });
  try {
    const c = collector();
    assert.equal((await src.read(32, c.feed)).count, -1);
    assert.deepEqual(log.lines, [`EGD server ${srv.path} reports zero bytes available`]);
    assert.deepEqual(c.chunks, []);
  } finally {
    src.close();
    await srv.close();
  }
});

test('EGD: a server that closes the connection: "cannot read from EGD server", no hang', async () => {
  const srv = await egdServer((sock) => sock.destroy());
  const log = infoLog();
  const src = await EgdSource.connect(srv.path, { timeoutMs: 5000, info: log.info });
  try {
    assert.equal((await src.read(32, collector().feed)).count, -1);
    assert.deepEqual(log.lines, [`cannot read from EGD server ${srv.path}: unexpected end-of-input`]);
    // The next attempt fails at once as well (writing to a closed connection).
    assert.equal((await src.read(32, collector().feed)).count, -1);
    assert.match(log.lines[1], new RegExp(`^cannot (write to|read from) EGD server ${srv.path}: `));
  } finally {
    src.close();
    await srv.close();
  }
});

test('EGD: a server that stalls past the timeout: "cannot read from EGD server ...: Connection timed out"', { timeout: 20_000 }, async () => {
  const srv = await egdServer(() => undefined);
  const log = infoLog();
  const src = await EgdSource.connect(srv.path, { timeoutMs: SHORT, info: log.info });
  try {
    const t0 = Date.now();
    assert.equal((await src.read(32, collector().feed)).count, -1);
    const took = Date.now() - t0;
    assert.ok(took >= SHORT - 5, `gave up after ${took} ms`);
    assert.deepEqual(log.lines, [`cannot read from EGD server ${srv.path}: Connection timed out`]);
  } finally {
    src.close();
    await srv.close();
  }
});

test('EGD: part of the announced bytes, then a stall or a close: "cannot read <k> bytes from EGD server"', async () => {
  for (const then of ['stall', 'close'] as const) {
    const srv = await egdServer((sock) => {
      sock.write(Buffer.concat([Buffer.from([32]), bytes(10)]));
      if (then === 'close') setTimeout(() => sock.end(), 10);
    });
    const log = infoLog();
    const src = await EgdSource.connect(srv.path, { timeoutMs: SHORT, info: log.info });
    try {
      const c = collector();
      assert.equal((await src.read(32, c.feed)).count, -1);
      const why = then === 'stall' ? 'Connection timed out' : 'unexpected end-of-input';
      assert.deepEqual(log.lines, [`cannot read 32 bytes from EGD server ${srv.path}: ${why}`]);
      assert.deepEqual(c.chunks, [], 'nothing of a partial answer is fed');
    } finally {
      src.close();
      await srv.close();
    }
  }
});

test('EGD: connect failures: no socket file (ENOENT), nobody listening (ECONNREFUSED)', async () => {
  await assert.rejects(EgdSource.connect(join(dir, 'no-such.sock'), { timeoutMs: SHORT }), { code: 'ENOENT' });
  // A listener killed by SIGKILL leaves its socket file behind with nobody accepting on it
  // (Node's own close() would unlink the file).
  const stale = join(dir, 'stale-egd.sock');
  const code = `require('net').createServer().listen(${JSON.stringify(stale)}, () => process.kill(process.pid, 'SIGKILL'))`;
  try {
    execFileSync(process.execPath, ['-e', code], { stdio: 'ignore', timeout: 10_000 });
  } catch {
    /* killed, as intended */
  }
  await assert.rejects(EgdSource.connect(stale, { timeoutMs: SHORT }), { code: 'ECONNREFUSED' });
});
