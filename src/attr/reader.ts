/*
 * NAME
 *   attr/reader - streaming attr0 decoder: bytes in, attribute lists out
 * SYNOPSIS
 *   const r = new Attr0Reader(limits)
 *   r.push(chunk); for (let ev = r.next(); ev; ev = r.next()) ...
 *   r.bareContinue() | r.dropBuffered() after a 'bare' event; dropBuffered() after a reply
 *   r.buffered: number                  unconsumed input bytes held
 *   r.finish(): Truncation | null       at end of input
 * DESCRIPTION
 *   attr0 (util/attr_print0.c, spec 1.2) is a sequence of NUL-terminated tokens: name, value,
 *   name, value, ..., and an empty name ends the list. The reader is a pure push parser: it owns
 *   no socket and no timer, keeps the unread tail between chunks and is correct for any split of
 *   the bytes. It does not interpret names or values (no tlsmgr vocabulary here); names are
 *   returned as latin1 strings, values as Buffers.
 *
 *   A token that lies within one chunk is returned in place (a view of the chunk, no copy): a
 *   request that arrives in one read costs no allocation beyond its event. A token spread over
 *   several chunks is collected in a reader-owned buffer that grows by doubling and becomes the
 *   token when its NUL arrives, so the bytes copied stay below three times the token length
 *   however finely it is split (no re-copy of the whole tail per chunk).
 *
 *   The short-input path: Postfix peeks at the queued byte count when a request starts and
 *   reads a lone NUL-terminated "request name" when it is 2 bytes or fewer (master wake-up
 *   `W\0`, spec 2.2 step 2). The reader mirrors that per chunk: a chunk of <= 2 bytes that
 *   arrives at the start of a list, with nothing buffered, starts a bare name. After the 'bare'
 *   event the consumer says whether request attributes follow (bareContinue) or whether the
 *   buffered input is to be dropped (dropBuffered), as Postfix does for an unknown name.
 * SECURITY
 *   push() takes the chunk over, as input may hold TLS sessions: chunk bytes the reader has
 *   copied into a collected token (or into finish()'s partial), and unconsumed bytes it drops
 *   (dropBuffered(), a limit), are zeroed; so are the values of a list a limit cuts off. Bytes
 *   an event or a truncation record refers to are never written afterwards: values stay valid
 *   for as long as the consumer keeps them, and wiping them is the consumer's business.
 * LIMITS
 *   Every token is bounded before it is buffered: a name by limits.nameLimit bytes, a value by
 *   limits.valueLimit bytes; a list by limits.countLimit attributes. Exceeding one yields a
 *   'limit' event; the reader is then dead (the connection must be closed). The bounds are
 *   checked by next(): a consumer that pushes without calling next() buffers without bound.
 *   `held` is the memory an unfinished list keeps alive (for a process-wide bound): the
 *   chunk being parsed while a list is open, the collecting buffer's capacity, queued chunks,
 *   and the names and values of the open list that live outside that chunk. When the reader
 *   moves on from a chunk while a list is open, the list's values still in that chunk are
 *   copied out (each at most once, then zeroed in the chunk), so a few complete values never
 *   keep whole received chunks alive behind a small count.
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

/** First capacity of the buffer that collects a token spread over several chunks. */
const MIN_SPAN = 1024;

export class Attr0Reader {
  /** The chunk being parsed; bytes before pos are consumed (events may point into them). */
  private buf: Buffer = EMPTY;
  private pos = 0;
  /** Bytes from pos up to here are known to hold no NUL. */
  private scanned = 0;
  /**
   * The first spanLen bytes of the current token, when it started in an earlier chunk: owned
   * by the reader, grown by doubling (so a token trickled in small chunks is copied a bounded
   * number of times), and handed over as the token itself when its NUL arrives.
   */
  private span: Buffer = EMPTY;
  private spanLen = 0;
  /** Chunks pushed while buf still held bytes not yet scanned; parsed in order after buf. */
  private queue: Buffer[] = [];
  private queueHead = 0;
  private queueBytes = 0;
  private state = State.Start;
  private bare: Buffer | null = null;
  private attrs: Attr[] = [];
  private pendingName = '';
  /** Bytes of the open list's names and values held outside buf (see held). */
  private listOwned = 0;

  /**
   * @param shortPath enable the server-side short-input path (default); a client reading
   *   replies turns it off, as replies never start with a bare name.
   */
  constructor(
    private readonly limits: AttrLimits,
    private readonly shortPath = true,
  ) {}

  /** Append received bytes; the reader takes the chunk over (see SECURITY above). */
  push(chunk: Buffer): void {
    if (this.state === State.Dead || chunk.length === 0) return;
    if (this.pos >= this.buf.length && this.spanLen === 0 && this.queueBytes === 0) {
      if (this.shortPath && this.state === State.Start && chunk.length <= 2) this.state = State.Bare;
      this.adopt();
      this.buf = chunk;
      this.pos = 0;
      this.scanned = 0;
    } else if (this.queueBytes === 0 && this.scanned >= this.buf.length) {
      // The rest of buf is the NUL-free start of an unfinished token, already checked
      // against its bound by next(): keep it in the span and parse the new chunk.
      this.toSpan(this.buf, this.pos);
      this.adopt();
      this.buf = chunk;
      this.pos = 0;
      this.scanned = 0;
    } else {
      this.queue.push(chunk);
      this.queueBytes += chunk.length;
    }
  }

  /** Whether bytes of an unfinished list or token are buffered or pending. */
  get idle(): boolean {
    return this.state === State.Start && this.buffered === 0;
  }

  /** Bytes of received input held and not yet consumed by an event (0 once dead). */
  get buffered(): number {
    return this.spanLen + (this.buf.length - this.pos) + this.queueBytes;
  }

  /** Memory in bytes that input not yet handed out in an event keeps alive (see LIMITS). */
  get held(): number {
    const chunk = this.state === State.Start && this.pos >= this.buf.length ? 0 : this.buf.length;
    return chunk + this.span.length + this.queueBytes + this.listOwned;
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
        if (this.spanLen + this.buf.length - this.pos > limit) return this.die(this.state === State.Value ? 'value' : 'name', limit);
        if (this.queueBytes === 0) return null;
        this.toSpan(this.buf, this.pos);
        this.adopt();
        this.buf = this.shiftQueue();
        this.pos = 0;
        this.scanned = 0;
        continue;
      }
      if (this.spanLen + nul - this.pos > limit) return this.die(this.state === State.Value ? 'value' : 'name', limit);
      const token = this.spanLen === 0 ? this.buf.subarray(this.pos, nul) : this.takeSpan(this.buf, this.pos, nul);
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
          this.listOwned += token.length;
          this.state = State.Value;
          break;
        case State.Value:
          this.attrs.push({ name: this.pendingName, value: token });
          // A value collected over chunks lives in its own memory (the span's capacity).
          if (token.buffer !== this.buf.buffer) this.listOwned += token.buffer.byteLength;
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
   * attributes. Between lists only; a list in progress is kept. The dropped bytes are zeroed.
   */
  dropBuffered(): void {
    if (this.state === State.BareWait) this.resetList();
    if (this.state !== State.Start) return;
    this.discard();
  }

  /** End of input: describe the unfinished list, or null if input ended between lists. */
  finish(): Truncation | null {
    let t: Truncation | null = null;
    if (this.state !== State.Dead) {
      const partial = this.gather();
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
      }
    }
    this.state = State.Dead;
    this.release();
    return t;
  }

  private resetList(): void {
    this.state = State.Start;
    this.bare = null;
    this.attrs = [];
    this.pendingName = '';
    this.listOwned = 0;
  }

  /*
   * adopt - the reader is about to let go of buf: copy the open list's values that still
   * point into it (and zero them there), so the chunk is not kept alive by them. A value is
   * adopted once at most (its copy is the reader's), so the cost stays linear.
   */
  private adopt(): void {
    if (this.attrs.length === 0 && this.bare === null) return;
    const chunk = this.buf.buffer;
    for (let i = 0; i < this.attrs.length; i++) {
      const v = this.attrs[i].value;
      if (v.buffer !== chunk) continue;
      const own = Buffer.allocUnsafeSlow(v.length);
      v.copy(own);
      v.fill(0);
      this.attrs[i] = { name: this.attrs[i].name, value: own };
      this.listOwned += v.length;
    }
    if (this.bare !== null && this.bare.buffer === chunk) this.bare = Buffer.from(this.bare);
  }

  private die(what: 'name' | 'value' | 'count', limit: number): ReadEvent {
    this.state = State.Dead;
    this.discard();
    // The attributes of the unfinished list were never handed out: nothing else sees them.
    for (const a of this.attrs) a.value.fill(0);
    this.attrs = [];
    return { type: 'limit', what, limit };
  }

  /* discard - drop and zero every unconsumed byte; consumed bytes (events) are left alone */
  private discard(): void {
    if (this.pos < this.buf.length) this.buf.fill(0, this.pos);
    if (this.spanLen > 0) this.span.fill(0, 0, this.spanLen);
    for (let i = this.queueHead; i < this.queue.length; i++) this.queue[i].fill(0);
    this.release();
  }

  /* release - forget all input without touching it */
  private release(): void {
    this.listOwned = 0;
    this.buf = EMPTY;
    this.pos = 0;
    this.scanned = 0;
    if (this.spanLen > 0) {
      this.span = EMPTY;
      this.spanLen = 0;
    }
    if (this.queue.length > 0) {
      this.queue.length = 0;
      this.queueHead = 0;
      this.queueBytes = 0;
    }
  }

  private shiftQueue(): Buffer {
    const chunk = this.queue[this.queueHead];
    this.queue[this.queueHead++] = EMPTY;
    this.queueBytes -= chunk.length;
    if (this.queueHead === this.queue.length) {
      this.queue.length = 0;
      this.queueHead = 0;
    }
    return chunk;
  }

  /* toSpan - move src[from..] into the span (copied once, then zeroed in the chunk) */
  private toSpan(src: Buffer, from: number): void {
    const n = src.length - from;
    if (n <= 0) return;
    const need = this.spanLen + n;
    if (need > this.span.length) {
      // Doubling keeps the total copy cost linear; the bound keeps the span within the limit
      // that next() checked (a token is never longer than its limit).
      const limit = Math.max(this.limits.nameLimit, this.limits.valueLimit);
      const grown = Buffer.allocUnsafeSlow(Math.max(need, Math.min(Math.max(2 * this.span.length, MIN_SPAN), limit)));
      this.span.copy(grown, 0, 0, this.spanLen);
      this.span.fill(0, 0, this.spanLen);
      this.span = grown;
    }
    src.copy(this.span, this.spanLen, from);
    src.fill(0, from);
    this.spanLen = need;
  }

  /* takeSpan - the span plus src[from, to) as one token, which keeps the span's memory */
  private takeSpan(src: Buffer, from: number, to: number): Buffer {
    const len = this.spanLen + (to - from);
    let token: Buffer;
    if (len <= this.span.length) {
      token = this.span.subarray(0, len);
    } else {
      token = Buffer.allocUnsafeSlow(len);
      this.span.copy(token, 0, 0, this.spanLen);
      this.span.fill(0, 0, this.spanLen);
    }
    src.copy(token, this.spanLen, from, to);
    src.fill(0, from, to);
    this.span = EMPTY;
    this.spanLen = 0;
    return token;
  }

  /* gather - every unconsumed byte as one Buffer (copied only when it is spread out) */
  private gather(): Buffer {
    if (this.spanLen === 0 && this.queueBytes === 0) return this.buf.subarray(this.pos);
    const out = Buffer.allocUnsafeSlow(this.buffered);
    let o = this.span.copy(out, 0, 0, this.spanLen);
    o += this.buf.copy(out, o, this.pos);
    for (let i = this.queueHead; i < this.queue.length; i++) o += this.queue[i].copy(out, o);
    this.discard();
    return out;
  }
}
