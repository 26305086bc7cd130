/*
 * NAME
 *   server/connection - one client connection: greeting, requests in, exactly one reply each
 * SYNOPSIS
 *   serveConnection(sock: Duplex, ctx: ConnectionContext): void
 *   serveBytes(input: Buffer, ctx): Buffer | Promise<Buffer>   (-S mode: one request, no greeting)
 * DESCRIPTION
 *   Sends the 26-byte greeting at once (spec 1.6), then feeds received bytes to an attr0
 *   reader and answers every complete request in the event-loop turn it completes in, in
 *   order (the replies of a turn are written together at its end, see Outbox); one slow
 *   or stalled client never delays another (unlike Postfix 3.7, spec 2.2.3). After each
 *   reply the rest of that read is dropped, as Postfix's flush does (spec 2.2), so leftovers
 *   of a malformed request never turn into replies nobody asked for.
 *   - "W" (wake-up, either path): close, no reply, no log;
 *   - unknown request name: no reply, connection stays open (as Postfix);
 *   - end of input in the middle of a request: its FAIL reply when its name was complete,
 *     else nothing; then close;
 *   - a token or list over the configured bounds: one warning, the connection is closed;
 *   - with ctx.guard (server/guard.ts): a connection over tlsmgr_connection_limit is closed
 *     at once without a greeting, and after every read the connection's unfinished bytes are
 *     reported to the guard, which may close it (process-wide input bound, ipc_timeout).
 * DIAGNOSTICS
 *   Socket errors (ECONNRESET, EPIPE) close the connection quietly; nothing is thrown.
 * SEE ALSO
 *   master/multi_server.c, tlsmgr/tlsmgr.c tlsmgr_request_receive()
 */

import type { Duplex } from 'node:stream';
import { Attr0Reader, type AttrLimits, type ReadEvent } from '../attr/reader.js';
import { GREETING, REQ, WAKEUP } from '../protocol/names.js';
import { scanRequest, type RequestInput, type ScanContext } from '../protocol/requests.js';
import { failResponse } from '../protocol/responses.js';
import { errorReason } from '../util/printable.js';
import type { Dispatcher } from './dispatch.js';
import type { ConnectionGuard, GuardSlot } from './guard.js';
import { type Maybe } from '../util/maybe.js';

export interface ConnectionContext {
  readonly dispatcher: Dispatcher;
  readonly limits: AttrLimits;
  readonly scan: ScanContext;
  /**
   * Called with true before and false after each readable event is served, as the
   * multi-server skeleton brackets its service routine (master status TAKEN/AVAIL).
   */
  readonly onRequest?: (busy: boolean) => void;
  /** Process-wide bounds shared by every connection of every listener (server/guard.ts). */
  readonly guard?: ConnectionGuard;
}

const KNOWN = new Set<string>(Object.values(REQ));

/** What to do with one complete or truncated request: a reply (or null), and whether to close. */
function serveInput(input: RequestInput, ctx: ConnectionContext): { reply: Maybe<Buffer> | null; close: boolean } {
  const r = scanRequest(input, ctx.scan);
  switch (r.kind) {
    case 'request': {
      const request = r.req.request;
      // Nothing is thrown across the socket (style.md 6.3): a failing handler is a FAIL reply.
      const failed = (err: unknown): Buffer => {
        ctx.scan.warn(`"${request}" request failed: ${errorReason(err)}`);
        return failResponse(request);
      };
      try {
        const reply = ctx.dispatcher.handle(r.req);
        return { reply: reply instanceof Promise ? reply.catch(failed) : reply, close: false };
      } catch (err) {
        return { reply: failed(err), close: false };
      }
    }
    case 'fail':
      return { reply: failResponse(r.request), close: false };
    case 'unknown':
      return { reply: null, close: false };
    case 'wakeup':
    case 'close':
      return { reply: null, close: true };
  }
}

/*
 * Replies are written once per event-loop turn, together, from one setImmediate() queued
 * before any store work of the turn (so before the SQLite commit, which is also deferred to
 * the end of the turn). Every readable socket of a turn is served first, then every reply is
 * written: a client with many connections (smtpd processes behind one kernel) is woken once
 * per burst instead of once per reply, and the reply writes no longer sit between the
 * requests of the turn. Per connection the order is kept: one pending list, FIFO.
 */
interface Outbox {
  pending: Buffer[];
  /** After the pending replies are written: backpressure, resume, or the final close. */
  settle(): void;
}

const outboxes: Outbox[] = [];
let flushQueued = false;

function queueFlush(): void {
  if (flushQueued) return;
  flushQueued = true;
  setImmediate(flushTurn);
}

function flushTurn(): void {
  flushQueued = false;
  // Replies that arrive while flushing (none today: writes do not call back synchronously)
  // would land in a fresh turn; take the list as it is now.
  const boxes = outboxes.splice(0, outboxes.length);
  for (const box of boxes) box.settle();
}

export function serveConnection(sock: Duplex, ctx: ConnectionContext): void {
  const reader = new Attr0Reader(ctx.limits);
  // closed: no more input is served; the socket is ended once pending replies are written.
  let closed = false;
  // waiting: a reply is still to come from a remote store; input waits (the socket is paused).
  let waiting = false;
  // queued: this connection is in the outbox list of the current turn.
  let queued = false;
  let ended = false;
  const box: Outbox = {
    pending: [],
    settle: () => {
      queued = false;
      flush(sock, box.pending);
      box.pending.length = 0;
      settle();
    },
  };
  const post = (reply: Buffer | null): void => {
    if (reply !== null) box.pending.push(reply);
    if (!queued) {
      queued = true;
      outboxes.push(box);
      queueFlush();
    }
  };
  const close = (): void => {
    closed = true;
  };
  sock.on('error', () => {
    closed = true;
    sock.destroy();
  });
  const guard = ctx.guard;
  let slot: GuardSlot | null = null;
  if (guard !== undefined) {
    slot = guard.admit(() => {
      closed = true;
      sock.destroy();
    });
    if (slot === null) {
      sock.destroy();
      return;
    }
    const admitted = slot;
    sock.once('close', () => guard.release(admitted));
  }
  sock.write(GREETING);

  sock.on('data', (chunk: Buffer) => {
    if (closed) return;
    // Queue the turn's flush before the requests reach a store (see Outbox above).
    queueFlush();
    ctx.onRequest?.(true);
    try {
      serveChunk(chunk);
    } finally {
      ctx.onRequest?.(false);
    }
    if (slot !== null && !closed) guard?.account(slot, reader.held, reader.idle);
  });

  const serveChunk = (chunk: Buffer): void => {
    reader.push(chunk);
    for (let ev: ReadEvent | null = reader.next(); ev !== null && !closed; ev = reader.next()) {
      switch (ev.type) {
        case 'bare': {
          const name = ev.name.toString('latin1');
          if (name === WAKEUP) close();
          else if (KNOWN.has(name)) reader.bareContinue();
          else reader.dropBuffered();
          break;
        }
        case 'limit':
          ctx.scan.warn(`${ev.what === 'count' ? 'attribute count' : `attribute ${ev.what} length`} exceeds limit ${ev.limit} on ${ctx.scan.path} -- closing connection`);
          close();
          break;
        case 'list': {
          const { reply, close: mustClose } = serveInput({ complete: true, bare: ev.bare, attrs: ev.attrs }, ctx);
          if (mustClose) close();
          else reader.dropBuffered();
          if (reply instanceof Promise) {
            // A remote store answers later: stop reading until the reply is written, so that
            // replies stay in request order and one client has one request in flight.
            post(null);
            waiting = true;
            sock.pause();
            void reply.then((buf) => {
              waiting = false;
              post(buf);
            });
            return;
          }
          if (reply !== null) box.pending.push(reply);
          break;
        }
      }
    }
    post(null);
  };

  /* settle - after replies are written: backpressure, or the final close */
  const settle = (): void => {
    if (waiting) return; // paused for a remote reply; its arrival settles again
    // Backpressure: a client that does not read its replies stops being read from.
    if (sock.writableNeedDrain && !closed) {
      sock.pause();
      sock.once('drain', () => {
        if (!waiting) sock.resume();
      });
    } else if (!closed && sock.isPaused()) {
      sock.resume(); // paused while a remote reply was on its way
    }
    // Close for good (Postfix close()s the descriptor): with allowHalfOpen, end() alone would
    // leave the socket open, reading and discarding, for as long as the client keeps its side.
    if (closed && !ended && !sock.destroyed) {
      ended = true;
      sock.end(() => sock.destroy());
    }
  };

  sock.on('end', () => {
    if (closed) return;
    const trunc = reader.finish();
    closed = true;
    if (slot !== null) guard?.account(slot, 0, true);
    const reply = trunc === null ? null : serveInput({ complete: false, trunc }, ctx).reply;
    if (reply instanceof Promise) {
      waiting = true;
      post(null);
      void reply.then((buf) => {
        waiting = false;
        post(buf);
      });
    } else {
      post(reply);
    }
  });
}

function flush(sock: Duplex, replies: Buffer[]): void {
  if (replies.length === 0 || sock.destroyed) return;
  sock.write(replies.length === 1 ? replies[0] : Buffer.concat(replies));
}

/** -S mode: the whole of stdin is one request; the reply bytes (possibly empty) are returned. */
export function serveBytes(input: Buffer, ctx: ConnectionContext): Maybe<Buffer> {
  const reader = new Attr0Reader(ctx.limits);
  reader.push(input);
  for (let ev = reader.next(); ev !== null; ev = reader.next()) {
    if (ev.type === 'limit') {
      ctx.scan.warn(`attribute ${ev.what} exceeds limit ${ev.limit} on ${ctx.scan.path}`);
      return Buffer.alloc(0);
    }
    if (ev.type === 'bare') {
      const name = ev.name.toString('latin1');
      if (!KNOWN.has(name)) return Buffer.alloc(0);
      reader.bareContinue();
      continue;
    }
    return serveInput({ complete: true, bare: ev.bare, attrs: ev.attrs }, ctx).reply ?? Buffer.alloc(0);
  }
  const trunc = reader.finish();
  return trunc === null ? Buffer.alloc(0) : (serveInput({ complete: false, trunc }, ctx).reply ?? Buffer.alloc(0));
}
