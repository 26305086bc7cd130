/*
 * NAME
 *   attr/reader - streaming attr0 decoder: bytes in, attribute lists out
 * SYNOPSIS
 *   const r = new Attr0Reader(limits)
 *   r.push(chunk); for (let ev = r.next(); ev; ev = r.next()) ...
 *   r.bareContinue() | r.dropBuffered() after a 'bare' event; dropBuffered() after a reply
 *   r.finish(): Truncation | null       at end of input
 * DESCRIPTION
 *   attr0 (util/attr_print0.c, spec 1.2) is a sequence of NUL-terminated tokens: name, value,
 *   name, value, ..., and an empty name ends the list. The reader is a pure push parser: it owns
 *   no socket and no timer, keeps the unread tail between chunks and is correct for any split of
 *   the bytes. It does not interpret names or values (no tlsmgr vocabulary here); names are
 *   returned as latin1 strings, values as Buffers that point into the received chunks.
 *
 *   The short-input path: Postfix peeks at the queued byte count when a request starts and
 *   reads a lone NUL-terminated "request name" when it is 2 bytes or fewer (master wake-up
 *   `W\0`, spec 2.2 step 2). The reader mirrors that per chunk: a chunk of <= 2 bytes that
 *   arrives at the start of a list, with nothing buffered, starts a bare name. After the 'bare'
 *   event the consumer says whether request attributes follow (bareContinue) or whether the
 *   buffered input is to be dropped (dropBuffered), as Postfix does for an unknown name.
 * LIMITS
 *   Every token is bounded before it is buffered: a name by limits.nameLimit bytes, a value by
 *   limits.valueLimit bytes; a list by limits.countLimit attributes. Exceeding one yields a
 *   'limit' event; the reader is then dead (the connection must be closed).
 * DIAGNOSTICS
 *   Never throws on peer input; problems are events or the truncation record.
 * SEE ALSO
 *   util/attr_scan0.c, util/vstring_vstream.c (vstring_get_null)
 */

export interface Attr {
  readonly name: string;
  readonly value: Buffer;
}

export interface AttrLimits {
  readonly nameLimit: number;
  readonly valueLimit: number;
  readonly countLimit: number;
}

export type ReadEvent =
  /** A complete list; `bare` is the name read on the short path, if any. */
  | { readonly type: 'list'; readonly bare: Buffer | null; readonly attrs: Attr[] }
  /** A bare name was read on the short path; call bareContinue() or dropBuffered(). */
  | { readonly type: 'bare'; readonly name: Buffer }
  /** A bound was exceeded; the reader accepts no more input. */
  | { readonly type: 'limit'; readonly what: 'name' | 'value' | 'count'; readonly limit: number };

/** What was pending when the input ended in the middle of a list. */
export interface Truncation {
  readonly bare: Buffer | null;
  readonly attrs: Attr[];
  /** Which token was being read: a bare name, an attribute name, or an attribute value. */
  readonly where: 'bare' | 'name' | 'value';
  /** Bytes of that token received before the end (empty = at a token boundary). */
  readonly partial: Buffer;
  /** For where === 'value': the name whose value was cut off. */
  readonly name: string;
}

const enum State {
  Start, // between lists
  Bare, // reading a bare name (short path)
  BareWait, // bare name delivered, waiting for the consumer's decision
  Name, // reading an attribute name inside a list
  Value, // reading an attribute value inside a list
  Dead, // a limit was exceeded
}

const EMPTY = Buffer.alloc(0);

export class Attr0Reader {
  private buf: Buffer = EMPTY;
  private pos = 0;
  /** Bytes from pos up to here are known to hold no NUL. */
  private scanned = 0;
  private state = State.Start;
  private bare: Buffer | null = null;
  private attrs: Attr[] = [];
  private pendingName = '';

  /**
   * @param shortPath enable the server-side short-input path (default); a client reading
   *   replies turns it off, as replies never start with a bare name.
   */
  constructor(
    private readonly limits: AttrLimits,
    private readonly shortPath = true,
  ) {}

  /** Append received bytes. */
  push(chunk: Buffer): void {
    if (this.state === State.Dead || chunk.length === 0) return;
    if (this.pos >= this.buf.length) {
      if (this.shortPath && this.state === State.Start && chunk.length <= 2) this.state = State.Bare;
      this.buf = chunk;
      this.pos = 0;
      this.scanned = 0;
    } else {
      const rest = this.buf.subarray(this.pos);
      this.buf = Buffer.concat([rest, chunk]);
      this.scanned -= this.pos;
      this.pos = 0;
    }
  }

  /** Whether bytes of an unfinished list or token are buffered or pending. */
  get idle(): boolean {
    return this.state === State.Start && this.pos >= this.buf.length;
  }

  /** Bytes of unconsumed input held. */
  get buffered(): number {
    return this.buf.length - this.pos;
  }

  /** Parse as far as the buffered bytes allow; null when more input is needed. */
  next(): ReadEvent | null {
    for (;;) {
      if (this.state === State.Dead || this.state === State.BareWait) return null;
      const limit = this.state === State.Value ? this.limits.valueLimit : this.limits.nameLimit;
      const from = this.scanned > this.pos ? this.scanned : this.pos;
      const nul = this.buf.indexOf(0, from);
      if (nul < 0) {
        this.scanned = this.buf.length;
        if (this.buf.length - this.pos > limit) return this.die(this.state === State.Value ? 'value' : 'name', limit);
        return null;
      }
      if (nul - this.pos > limit) return this.die(this.state === State.Value ? 'value' : 'name', limit);
      const token = this.buf.subarray(this.pos, nul);
      this.pos = nul + 1;
      this.scanned = this.pos;
      switch (this.state) {
        case State.Start:
        case State.Name:
          if (token.length === 0) {
            const ev: ReadEvent = { type: 'list', bare: this.bare, attrs: this.attrs };
            this.resetList();
            return ev;
          }
          this.pendingName = token.toString('latin1');
          this.state = State.Value;
          break;
        case State.Value:
          this.attrs.push({ name: this.pendingName, value: token });
          if (this.attrs.length > this.limits.countLimit) return this.die('count', this.limits.countLimit);
          this.state = State.Name;
          break;
        case State.Bare:
          this.bare = token;
          this.state = State.BareWait;
          return { type: 'bare', name: token };
      }
    }
  }

  /** After 'bare': the request's attributes follow as an attr0 list. */
  bareContinue(): void {
    if (this.state === State.BareWait) this.state = State.Name;
  }

  /**
   * Drop the input buffered so far, as Postfix's reply flush does (spec 2.2, input buffering
   * rule): called after each answered request, and after a 'bare' name that is not followed by
   * attributes. Between lists only; a list in progress is kept.
   */
  dropBuffered(): void {
    if (this.state === State.BareWait) this.resetList();
    if (this.state !== State.Start) return;
    this.buf = EMPTY;
    this.pos = 0;
    this.scanned = 0;
  }

  /** End of input: describe the unfinished list, or null if input ended between lists. */
  finish(): Truncation | null {
    const partial = this.buf.subarray(this.pos);
    let t: Truncation | null = null;
    switch (this.state) {
      case State.Start:
        if (partial.length > 0) t = { bare: null, attrs: [], where: 'name', partial, name: '' };
        break;
      case State.Bare:
        t = { bare: null, attrs: [], where: 'bare', partial, name: '' };
        break;
      case State.BareWait:
      case State.Name:
        t = { bare: this.bare, attrs: this.attrs, where: 'name', partial, name: '' };
        break;
      case State.Value:
        t = { bare: this.bare, attrs: this.attrs, where: 'value', partial, name: this.pendingName };
        break;
      case State.Dead:
        break;
    }
    this.state = State.Dead;
    this.buf = EMPTY;
    this.pos = 0;
    return t;
  }

  private resetList(): void {
    this.state = State.Start;
    this.bare = null;
    this.attrs = [];
    this.pendingName = '';
  }

  private die(what: 'name' | 'value' | 'count', limit: number): ReadEvent {
    this.state = State.Dead;
    this.buf = EMPTY;
    this.pos = 0;
    this.attrs = [];
    return { type: 'limit', what, limit };
  }
}
