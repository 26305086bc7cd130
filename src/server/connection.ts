/*
 * NAME
 *   server/connection - one client connection: greeting, requests in, exactly one reply each
 * SYNOPSIS
 *   serveConnection(sock: Duplex, ctx: ConnectionContext): void
 *   serveBytes(input: Buffer, ctx): Buffer | Promise<Buffer>   (-S mode: one request, no greeting)
 * DESCRIPTION
 *   serveConnection() sends the 26-byte greeting at once (spec 1.6) and serves the socket
 *   with a Connection: received bytes go to an attr0 reader, and every complete request is
 *   answered in the event-loop turn it completes in, in order; one slow or stalled client
 *   never delays another (unlike Postfix 3.7, spec 2.2.3). After each reply the rest of that
 *   read is dropped, as Postfix's flush does (spec 2.2), so leftovers of a malformed request
 *   never turn into replies nobody asked for.
 *   - "W" (wake-up, either path): close, no reply, no log;
 *   - unknown request name: no reply, connection stays open (as Postfix);
 *   - end of input in the middle of a request: its FAIL reply when its name was complete,
 *     else nothing; then close;
 *   - a token or list over the configured bounds: one warning, the connection is closed;
 *   - with ctx.guard (server/guard.ts): a connection over tlsmgr_connection_limit is closed
 *     at once without a greeting, and after every read the connection's unfinished bytes are
 *     reported to the guard, which may close it (process-wide input bound, ipc_timeout);
 *   - ctx.onRequest(true) and (false) bracket the serving of every read.
 *   A Connection is in one phase at a time:
 *     Reading    greeting sent; each read is served as it arrives;
 *     Replying   a remote store answers later: reading is paused until that reply is
 *                written, so replies keep request order and one client has one request in
 *                flight;
 *     Finishing  input has ended while a remote store's reply is on its way: that reply
 *                is written, then the socket is closed;
 *     Closing    no more input is served; the socket is ended once the pending replies
 *                are written;
 *     Closed     ended or destroyed (socket error, or the guard chose it).
 *   Replies are not written one by one: the Outbox writes the replies of one event-loop turn
 *   together at its end (see there), one write per connection.
 *   serveBytes() serves the first request of a buffer the same way, with no greeting and
 *   nothing written: the reply bytes are returned (empty when there is no reply).
 * LIMITS
 *   The synchronous path (local stores) allocates no promise and no closure per request.
 *   A client that does not read its replies stops being read from until its socket drains.
 * DIAGNOSTICS
 *   Socket errors (ECONNRESET, EPIPE) close the connection quietly; nothing is thrown. A
 *   request handler that throws (or whose promise rejects) is that request's FAIL reply and
 *   a warning '"<request>" request failed: <reason>'.
 * SEE ALSO
 *   master/multi_server.c, tlsmgr/tlsmgr.c tlsmgr_request_receive()
 */

import type { Duplex } from 'node:stream';
import { Attr0Reader, type AttrLimits, type ReadEvent } from '../attr/reader.js';
import { GREETING, REQ, WAKEUP, type RequestName } from '../protocol/names.js';
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
const EMPTY = Buffer.alloc(0);

/** No reply; the connection stays open (an unknown request name, as Postfix). */
const IGNORE = 'ignore';
/** No reply; the connection is closed (a wake-up, or input that ended before a request name). */
const CLOSE = 'close';
/** What one request gets: reply bytes (now, or later from a remote store), or no reply. */
type Answer = Maybe<Buffer> | typeof IGNORE | typeof CLOSE;

/* answer - scan and serve one complete or truncated request */
function answer(input: RequestInput, ctx: ConnectionContext): Answer {
  const r = scanRequest(input, ctx.scan);
  switch (r.kind) {
    case 'request': {
      let reply: Maybe<Buffer>;
      try {
        reply = ctx.dispatcher.handle(r.req);
      } catch (err) {
        return failed(ctx, r.req.request, err);
      }
      if (!(reply instanceof Promise)) return reply;
      const request = r.req.request;
      return reply.catch((err: unknown) => failed(ctx, request, err));
    }
    case 'fail':
      return failResponse(r.request);
    case 'unknown':
      return IGNORE;
    case 'wakeup':
    case 'close':
      return CLOSE;
  }
}

/* failed - nothing is thrown across the socket (style.md 6.3): a failing handler is a FAIL reply */
function failed(ctx: ConnectionContext, request: RequestName, err: unknown): Buffer {
  ctx.scan.warn(`"${request}" request failed: ${errorReason(err)}`);
  return failResponse(request);
}

/** What the Outbox asks of a connection at the end of a turn. */
interface TurnEnd {
  /** Write the replies of this turn, then apply backpressure, resume, or close. */
  endOfTurn(): void;
}

/*
 * Outbox - replies are written once per event-loop turn, together, from one setImmediate()
 * queued before any store work of the turn (so before the SQLite commit, which is also
 * deferred to the end of the turn). Every readable socket of a turn is served first, then
 * every reply is written: a client with many connections (smtpd processes behind one
 * kernel) is woken once per burst instead of once per reply, and the reply writes no longer
 * sit between the requests of the turn. Each connection keeps its own replies in order
 * (Connection.pending) and is listed here once per turn. Two lists take turns, so a turn
 * allocates nothing here.
 */
class Outbox {
  private due: TurnEnd[] = [];
  private spare: TurnEnd[] = [];
  private queued = false;

  /** Queue the end-of-turn flush now, before the turn's requests reach a store. */
  arm(): void {
    if (this.queued) return;
    this.queued = true;
    setImmediate(this.flush);
  }

  /** c has replies to write (or a close to finish) at the end of this turn. */
  add(c: TurnEnd): void {
    this.due.push(c);
    this.arm();
  }

  private readonly flush = (): void => {
    this.queued = false;
    // A connection added while flushing (none today: writes do not call back synchronously)
    // lands in the next turn's list.
    const due = this.due;
    this.due = this.spare;
    for (let i = 0; i < due.length; i++) due[i].endOfTurn();
    due.length = 0;
    this.spare = due;
  };
}

const outbox = new Outbox();

/** Where a connection stands (see DESCRIPTION). */
const enum Phase {
  Reading,
  Replying,
  Finishing,
  Closing,
  Closed,
}

/* Connection - one accepted socket; see DESCRIPTION for its phases */
class Connection implements TurnEnd {
  private phase = Phase.Reading;
  private readonly reader: Attr0Reader;
  /** Replies of this turn, in request order, written by endOfTurn(). */
  private readonly pending: Buffer[] = [];
  /** Listed in the Outbox for the end of this turn. */
  private due = false;
  private slot: GuardSlot | null = null;

  constructor(
    private readonly sock: Duplex,
    private readonly ctx: ConnectionContext,
  ) {
    this.reader = new Attr0Reader(ctx.limits);
  }

  /** Admit (guard), greet and start serving; a connection the guard refuses is destroyed. */
  start(): void {
    const { sock, ctx } = this;
    sock.on('error', () => this.abort());
    const guard = ctx.guard;
    if (guard !== undefined) {
      const slot = guard.admit(() => this.abort());
      if (slot === null) {
        sock.destroy();
        return;
      }
      this.slot = slot;
      sock.once('close', () => guard.release(slot));
    }
    sock.write(GREETING);
    sock.on('data', (chunk: Buffer) => this.read(chunk));
    sock.on('end', () => this.inputEnded());
  }

  /* read - serve one read, bracketed by onRequest, then report what is left to the guard */
  private read(chunk: Buffer): void {
    // Replying pauses the socket, so a read arrives only while Reading or after the close.
    if (this.phase !== Phase.Reading) return;
    // Queue the turn's flush before the requests reach a store (see Outbox).
    outbox.arm();
    const onRequest = this.ctx.onRequest;
    onRequest?.(true);
    try {
      this.serve(chunk);
    } finally {
      onRequest?.(false);
    }
    if (this.slot !== null && (this.phase === Phase.Reading || this.phase === Phase.Replying)) {
      this.ctx.guard?.account(this.slot, this.reader.held, this.reader.idle);
    }
  }

  /* serve - answer the requests a read completes, until one must wait or the connection closes */
  private serve(chunk: Buffer): void {
    const { reader, ctx } = this;
    reader.push(chunk);
    for (let ev: ReadEvent | null = reader.next(); ev !== null && this.phase === Phase.Reading; ev = reader.next()) {
      switch (ev.type) {
        case 'bare': {
          const name = ev.name.toString('latin1');
          if (name === WAKEUP) this.phase = Phase.Closing;
          else if (KNOWN.has(name)) reader.bareContinue();
          else reader.dropBuffered();
          break;
        }
        case 'limit':
          ctx.scan.warn(`${ev.what === 'count' ? 'attribute count' : `attribute ${ev.what} length`} exceeds limit ${ev.limit} on ${ctx.scan.path} -- closing connection`);
          this.phase = Phase.Closing;
          break;
        case 'list': {
          const a = answer({ complete: true, bare: ev.bare, attrs: ev.attrs }, ctx);
          if (a === CLOSE) {
            this.phase = Phase.Closing;
            break;
          }
          reader.dropBuffered();
          if (a instanceof Promise) {
            this.await(a, Phase.Replying);
            this.sock.pause();
          } else if (a !== IGNORE) {
            this.pending.push(a);
          }
          break;
        }
      }
    }
    this.schedule();
  }

  /* inputEnded - the client shut down its side: answer a truncated request, then close */
  private inputEnded(): void {
    if (this.phase === Phase.Reading) {
      const trunc = this.reader.finish();
      this.phase = Phase.Closing;
      if (this.slot !== null) this.ctx.guard?.account(this.slot, 0, true);
      const a = trunc === null ? CLOSE : answer({ complete: false, trunc }, this.ctx);
      if (a instanceof Promise) this.await(a, Phase.Finishing);
      else if (typeof a !== 'string') this.pending.push(a);
    } else if (this.phase === Phase.Replying) {
      // A paused socket still reports the end of input. The reply on its way is the last
      // one (the reader dropped the rest of its read): it is written, then the socket closed.
      this.reader.finish();
      this.phase = Phase.Finishing;
      if (this.slot !== null) this.ctx.guard?.account(this.slot, 0, true);
    } else {
      return;
    }
    this.schedule();
  }

  /* await - a remote store answers later; the reply joins the turn it arrives in */
  private await(reply: Promise<Buffer>, phase: Phase.Replying | Phase.Finishing): void {
    this.phase = phase;
    void reply.then((buf) => this.replied(buf));
  }

  private replied(buf: Buffer): void {
    if (this.phase === Phase.Replying) this.phase = Phase.Reading;
    else if (this.phase === Phase.Finishing) this.phase = Phase.Closing;
    else return; // Closed meanwhile: nobody to write to
    this.pending.push(buf);
    this.schedule();
  }

  /* schedule - list this connection in the Outbox for the end of the turn */
  private schedule(): void {
    if (this.due) return;
    this.due = true;
    outbox.add(this);
  }

  /* abort - a socket error, or the guard chose this connection: close at once */
  private abort(): void {
    this.phase = Phase.Closed;
    this.sock.destroy();
  }

  endOfTurn(): void {
    const { sock, pending } = this;
    this.due = false;
    if (pending.length > 0) {
      // Emptied before the write: a stream that answers within write() starts a new turn.
      const out = pending.length === 1 ? pending[0] : Buffer.concat(pending);
      pending.length = 0;
      if (!sock.destroyed) sock.write(out);
    }
    switch (this.phase) {
      case Phase.Reading:
        // Backpressure: a client that does not read its replies stops being read from.
        if (sock.writableNeedDrain) {
          sock.pause();
          sock.once('drain', () => {
            if (this.phase === Phase.Reading) sock.resume();
          });
        } else if (sock.isPaused()) {
          sock.resume(); // paused while a remote reply was on its way
        }
        break;
      case Phase.Closing:
        // Close for good (Postfix close()s the descriptor): with allowHalfOpen, end() alone
        // would leave the socket open, reading and discarding, for as long as the client
        // keeps its side.
        this.phase = Phase.Closed;
        if (!sock.destroyed) sock.end(() => sock.destroy());
        break;
      case Phase.Replying:
      case Phase.Finishing:
      case Phase.Closed:
        break; // a remote reply is still on its way; its arrival ends another turn
    }
  }
}

export function serveConnection(sock: Duplex, ctx: ConnectionContext): void {
  new Connection(sock, ctx).start();
}

/** -S mode: the whole of stdin is one request; the reply bytes (possibly empty) are returned. */
export function serveBytes(input: Buffer, ctx: ConnectionContext): Maybe<Buffer> {
  const reader = new Attr0Reader(ctx.limits);
  reader.push(input);
  for (let ev = reader.next(); ev !== null; ev = reader.next()) {
    if (ev.type === 'limit') {
      ctx.scan.warn(`attribute ${ev.what} exceeds limit ${ev.limit} on ${ctx.scan.path}`);
      return EMPTY;
    }
    if (ev.type === 'bare') {
      const name = ev.name.toString('latin1');
      if (!KNOWN.has(name)) return EMPTY;
      reader.bareContinue();
      continue;
    }
    return replyBytes(answer({ complete: true, bare: ev.bare, attrs: ev.attrs }, ctx));
  }
  const trunc = reader.finish();
  return trunc === null ? EMPTY : replyBytes(answer({ complete: false, trunc }, ctx));
}

function replyBytes(a: Answer): Maybe<Buffer> {
  return a === IGNORE || a === CLOSE ? EMPTY : a;
}
