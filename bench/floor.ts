/*
 * NAME
 *   bench/floor - the "floor" of the benchmarks: a bare Node `net` server answering tlsmgr requests
 * SYNOPSIS
 *   node dist/bench/floor.js SOCKET          (the server process)
 *   startFloor(): Promise<RunningDaemon>     (a server process on a scratch UNIX socket)
 * DESCRIPTION
 *   What Node itself costs per request for the bench's load: one process, node:net over a
 *   UNIX stream socket, strict request/reply, nothing else. It sends the 26-byte greeting, then
 *   for each attr0 request record finds its end and its first three values (request, cache_type,
 *   cache_id) with Buffer.indexOf and writes one reply of exactly the bytes our daemon and
 *   Postfix's tlsmgr send: update and delete "status 0"; a lookup the reply kept by the update
 *   of that cache_type and cache_id (status 0 and the session's base64, copied from the update
 *   as it came), else ERR with an empty session; seed a fixed reply of 32 bytes. So the load
 *   generator does the same work against it as against a real daemon (it verifies every reply
 *   as it does there), and the floor's CPU per request is the socket, the event loop and one
 *   Map operation: no attr0 decoder, no validation, no sealing, no store, no logging. Run
 *   with node's default options (a bare Node).
 *   startFloor() spawns it on <tmpdir>/tlsmgr-floor-XXXX/floor and resolves once the socket
 *   answers with the greeting; stop() sends SIGTERM (SIGKILL after 5 s) and removes the
 *   directory.
 * LIMITS
 *   Not a pure echo: framing, the key string and the Map operation cost about 0.6-0.9 us of
 *   CPU per request (a microbenchmark of that code alone, on a busy 2-core machine), some 5%
 *   of the floor; the price of replies the load generator can verify as it does a daemon's.
 *   Not a tlsmgr: no limits, no expiry, no policy or tktkey requests (answered FAIL), no
 *   bound on what it holds (the bench's preload and runs are bounded); the seed is constant.
 *   A partial record waits for the rest (Buffer.concat); a request never sent whole grows it.
 *   Waits at most 15 s for the socket.
 * DIAGNOSTICS
 *   The server exits 0 on SIGTERM, 1 with "fatal: ..." on stderr when it cannot listen.
 * SEE ALSO
 *   bench/compare.ts (the "floor" column), bench/loadgen.ts
 */

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ATTR, GREETING, STAT } from '../src/protocol/names.js';
import { serving, type RunningDaemon } from './daemon.js';

const latin1 = (s: string): Buffer => Buffer.from(s, 'latin1');
const OK = latin1(`${ATTR.STATUS}\0${STAT.OK}\0\0`);
const MISS = latin1(`${ATTR.STATUS}\0${STAT.ERR >>> 0}\0${ATTR.SESSION}\0\0\0`);
const FAIL = latin1(`${ATTR.STATUS}\0${STAT.FAIL >>> 0}\0\0`);
const SEED = latin1(`${ATTR.STATUS}\0${STAT.OK}\0${ATTR.SEED}\0${Buffer.alloc(32, 0x5a).toString('base64')}\0\0`);
const HIT_HEAD = latin1(`${ATTR.STATUS}\0${STAT.OK}\0${ATTR.SESSION}\0`);
const HIT_TAIL = latin1('\0\0');

/** Start and end of the values of the first four attributes of the record being framed. */
const vals = new Int32Array(8);

/*
 * recordEnd - the offset of the record's final NUL (the empty name ending an attr0 list),
 * or -1 while it is incomplete; fills `vals` with the first four values' bounds.
 */
function recordEnd(buf: Buffer, from: number): number {
  let i = from;
  for (let k = 0; ; k++) {
    if (i >= buf.length) return -1;
    if (buf[i] === 0) return i;
    const n = buf.indexOf(0, i);
    if (n < 0) return -1;
    const v = buf.indexOf(0, n + 1);
    if (v < 0) return -1;
    if (k < 4) {
      vals[2 * k] = n + 1;
      vals[2 * k + 1] = v;
    }
    i = v + 1;
  }
}

/** The held lookup replies, keyed by cache_type NUL cache_id (latin1). */
const held = new Map<string, Buffer>();

/* reply - the reply to the record framed last in `buf` (its values' bounds in `vals`) */
function reply(buf: Buffer): Buffer {
  // cache_type .. cache_id: the record's bytes from the second value to the end of the third.
  const key = (): string => buf.toString('latin1', vals[2], vals[5]);
  switch (buf[vals[0]]) {
    case 0x73: // seed
      return SEED;
    case 0x75: // update: keep the reply a lookup of this id will get
      held.set(key(), Buffer.concat([HIT_HEAD, buf.subarray(vals[6], vals[7]), HIT_TAIL]));
      return OK;
    case 0x6c: // lookup
      return held.get(key()) ?? MISS;
    case 0x64: // delete
      held.delete(key());
      return OK;
    default:
      return FAIL;
  }
}

function serve(sock: Socket): void {
  let pending: Buffer | null = null;
  sock.on('error', () => sock.destroy());
  sock.on('data', (chunk: Buffer) => {
    const buf = pending === null ? chunk : Buffer.concat([pending, chunk]);
    let at = 0;
    for (let end = recordEnd(buf, at); end >= 0; end = recordEnd(buf, at)) {
      sock.write(reply(buf));
      at = end + 1;
    }
    pending = at < buf.length ? buf.subarray(at) : null;
  });
  sock.write(GREETING);
}

function main(path: string): void {
  const srv = createServer(serve);
  srv.on('error', (err) => {
    process.stderr.write(`fatal: floor: listen ${path}: ${err.message}\n`);
    process.exit(1);
  });
  srv.listen(path);
  process.on('SIGTERM', () => process.exit(0));
}

export async function startFloor(): Promise<RunningDaemon> {
  const dir = mkdtempSync(join(tmpdir(), 'tlsmgr-floor-'));
  const socket = join(dir, 'floor');
  const proc = spawn(process.execPath, [fileURLToPath(import.meta.url), socket], { stdio: ['ignore', 'ignore', 'pipe'] });
  return serving(proc, { dir, socket, what: 'floor server', cleanup: () => rmSync(dir, { recursive: true, force: true }) });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const path = process.argv[2];
  if (path === undefined) {
    process.stderr.write('usage: node dist/bench/floor.js SOCKET\n');
    process.exit(2);
  }
  main(path);
}
