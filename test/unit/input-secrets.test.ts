/*
 * input-secrets - what a served request leaves behind in the bytes the connection received
 * (src/attr/reader.ts and src/protocol/requests.ts, SECURITY): the real connection path
 * (serveConnection with the harness's dispatcher and memory store) over an in-memory Duplex
 * whose chunks the test keeps. After an update is served, no received chunk still holds a
 * piece of the session's base64 text, whether the request came in one chunk or trickled in
 * many; and the cache_id a store reads a few turns later (as a remote store does) is intact.
 */

import assert from 'node:assert/strict';
import { Duplex } from 'node:stream';
import { test } from 'node:test';
import type { Request } from '../../src/protocol/requests.js';
import { serveConnection, type ConnectionContext } from '../../src/server/connection.js';
import type { Dispatcher } from '../../src/server/dispatch.js';
import { b64, GREETING_BYTES, listLength, OK, parseReply, req, type Reply } from '../helpers/attr.js';
import { makeHarness, WAIT_MS } from '../helpers/harness.js';

const SESSION = Buffer.from('session state '.repeat(40).slice(0, 501), 'latin1'); // 501 bytes: no padding
const SESSION_B64 = b64(SESSION);
const ID = 'mail.example.com:25:0123456789abcdef';

/** Whether buf holds any 8-character piece of the session's base64 text. */
function holdsSession(buf: Buffer): boolean {
  const text = buf.toString('latin1');
  for (let i = 0; i + 8 <= SESSION_B64.length; i += 4) if (text.includes(SESSION_B64.slice(i, i + 8))) return true;
  return false;
}

/** A connection over an in-memory Duplex: send() delivers the very Buffer given to 'data'. */
class Link {
  private out: Buffer = Buffer.alloc(0);
  private readonly sock: Duplex;
  private wake: (() => void) | null = null;

  constructor(ctx: ConnectionContext) {
    this.sock = new Duplex({
      read: () => {},
      write: (chunk: Buffer, _enc, cb) => {
        this.out = Buffer.concat([this.out, chunk]);
        this.wake?.();
        cb();
      },
    });
    serveConnection(this.sock, ctx);
  }

  send(chunk: Buffer): void {
    this.sock.push(chunk);
  }

  /** The next complete list written by the server (bounded wait). */
  async read(): Promise<Buffer> {
    const until = Date.now() + WAIT_MS;
    for (;;) {
      const n = listLength(this.out);
      if (n >= 0) {
        const list = this.out.subarray(0, n);
        this.out = this.out.subarray(n);
        return list;
      }
      const left = until - Date.now();
      if (left <= 0) throw new Error('no reply in time');
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.wake = null;
    }
  }

  async reply(): Promise<Reply> {
    return parseReply(await this.read());
  }

  close(): void {
    this.sock.destroy();
  }
}

const update = req('update', ['cache_type', 'smtpd'], ['cache_id', ID], ['session', SESSION_B64]);
const lookup = req('lookup', ['cache_type', 'smtpd'], ['cache_id', ID]);

/** Cut bytes at the given offsets into separate chunks (fresh memory each). */
function cutAt(bytes: Buffer, cuts: readonly number[]): Buffer[] {
  const edges = [0, ...cuts, bytes.length];
  return edges.slice(1).map((e, i) => Buffer.from(bytes.subarray(edges[i], e)));
}

test('after an update is served, no received chunk holds any piece of the base64 session', async () => {
  const at = update.indexOf(Buffer.from(SESSION_B64, 'latin1'));
  const idAt = update.indexOf(Buffer.from(ID, 'latin1'));
  const chunkings: Array<[string, number[]]> = [
    ['one chunk', []],
    ['session split in three', [at + 5, at + 300]],
    ['cache_id and session split', [idAt + 4, at + 1, at + SESSION_B64.length - 1]],
    ['100-byte chunks', Array.from({ length: Math.floor((update.length - 1) / 100) }, (_, i) => (i + 1) * 100)],
  ];
  for (const [label, cuts] of chunkings) {
    const h = makeHarness();
    const link = new Link(h.ctx);
    try {
      assert.ok((await link.read()).equals(GREETING_BYTES));
      // Trailing bytes after the request (dropped after the reply, as Postfix does) carry a copy too.
      const chunks = cutAt(Buffer.concat([update, Buffer.from(SESSION_B64.slice(0, 40), 'latin1')]), cuts);
      assert.ok(chunks.some(holdsSession), label);
      for (const c of chunks) link.send(c);
      assert.equal((await link.reply()).text('status'), OK, label);
      for (const [i, c] of chunks.entries()) assert.ok(!holdsSession(c), `${label}: chunk ${i} zeroed`);
      link.send(Buffer.from(lookup));
      const r = await link.reply();
      assert.equal(r.text('status'), OK, `${label}: cached under the intact cache_id`);
      assert.ok(r.data('session').equals(SESSION), `${label}: the session stored is the one sent`);
      assert.deepEqual(h.warnings, [], label);
    } finally {
      link.close();
    }
  }
});

test('a store that reads cache_id turns later (a remote store) sees it intact', async () => {
  for (const cuts of [[], [update.indexOf(Buffer.from(ID, 'latin1')) + 3]]) {
    const h = makeHarness();
    const seen: string[] = [];
    // The real dispatcher, reached only after two more event-loop turns and a timer.
    const later = Object.create(h.dispatcher) as Dispatcher;
    later.handle = (r: Request) => {
      const at = r.request === 'update' ? r.cacheId.toString('latin1') : '';
      return new Promise<Buffer>((resolve) => {
        setImmediate(() =>
          setImmediate(() =>
            setTimeout(() => {
              if (r.request === 'update') seen.push(at, r.cacheId.toString('latin1'));
              const reply = h.dispatcher.handle(r);
              if (reply instanceof Promise) void reply.then(resolve);
              else resolve(reply);
            }, 5),
          ),
        );
      });
    };
    const link = new Link({ ...h.ctx, dispatcher: later });
    try {
      await link.read();
      // The request and, in the same read, the start of another one that is dropped.
      const chunks = cutAt(Buffer.concat([update, Buffer.from(`request\0update\0cache_id\0${ID}`, 'latin1')]), cuts);
      for (const c of chunks) link.send(c);
      assert.equal((await link.reply()).text('status'), OK);
      assert.deepEqual(seen, [ID, ID], 'cache_id when handled and when used');
      assert.ok(chunks.every((c) => !holdsSession(c)));
      link.send(Buffer.from(lookup));
      assert.ok((await link.reply()).data('session').equals(SESSION));
    } finally {
      link.close();
    }
  }
});
