/*
 * attr-reader.property - src/attr/reader.ts under fast-check (style.md 6.2): random byte
 * streams (NUL-heavy, and token soups of protocol words) with random limits, cut into random
 * chunks, with a random consumer (drains or not after a push; after a 'bare' event continues
 * or drops; after a list drops the buffered input or not). Properties:
 *   - the reader agrees, call by call, with a plain model that re-concatenates its whole
 *     tail on every push (the obvious quadratic reader): same events, same truncation record,
 *     same `buffered` and `idle` after every call; it never throws;
 *   - any chunking gives the events of one push (reader without the short path, a consumer
 *     that never drops input: the short path and the drop depend on the chunking by design);
 *   - limits hold: no token or list in an event exceeds its bound, and after a full drain the
 *     reader holds at most one token's bound of input;
 *   - events and the truncation record never change afterwards (the reader zeroes only bytes
 *     that it copied or dropped).
 */

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { Attr0Reader, type Attr, type AttrLimits, type ReadEvent, type Truncation } from '../../src/attr/reader.js';
import { checkProperty } from '../helpers/fuzz.js';

/* ---- the model: every push re-concatenates the unread tail (copies; independent of chunks) ---- */

type MState = 'start' | 'bare' | 'barewait' | 'name' | 'value' | 'dead';

class ModelReader {
  private buf = Buffer.alloc(0);
  private pos = 0;
  private state: MState = 'start';
  private bare: Buffer | null = null;
  private attrs: Attr[] = [];
  private pendingName = '';

  constructor(
    private readonly limits: AttrLimits,
    private readonly shortPath: boolean,
  ) {}

  push(chunk: Buffer): void {
    if (this.state === 'dead' || chunk.length === 0) return;
    if (this.pos >= this.buf.length) {
      if (this.shortPath && this.state === 'start' && chunk.length <= 2) this.state = 'bare';
      this.buf = Buffer.from(chunk);
    } else {
      this.buf = Buffer.concat([this.buf.subarray(this.pos), chunk]);
    }
    this.pos = 0;
  }

  get buffered(): number {
    return this.buf.length - this.pos;
  }

  get idle(): boolean {
    return this.state === 'start' && this.buffered === 0;
  }

  next(): ReadEvent | null {
    for (;;) {
      if (this.state === 'dead' || this.state === 'barewait') return null;
      const what = this.state === 'value' ? 'value' : 'name';
      const limit = what === 'value' ? this.limits.valueLimit : this.limits.nameLimit;
      const nul = this.buf.indexOf(0, this.pos);
      if ((nul < 0 ? this.buf.length : nul) - this.pos > limit) return this.die(what, limit);
      if (nul < 0) return null;
      const token = Buffer.from(this.buf.subarray(this.pos, nul));
      this.pos = nul + 1;
      if (this.state === 'bare') {
        this.bare = token;
        this.state = 'barewait';
        return { type: 'bare', name: token };
      }
      if (this.state === 'value') {
        this.attrs.push({ name: this.pendingName, value: token });
        if (this.attrs.length > this.limits.countLimit) return this.die('count', this.limits.countLimit);
        this.state = 'name';
      } else if (token.length === 0) {
        const ev: ReadEvent = { type: 'list', bare: this.bare, attrs: this.attrs };
        this.reset();
        return ev;
      } else {
        this.pendingName = token.toString('latin1');
        this.state = 'value';
      }
    }
  }

  bareContinue(): void {
    if (this.state === 'barewait') this.state = 'name';
  }

  dropBuffered(): void {
    if (this.state === 'barewait') this.reset();
    if (this.state !== 'start') return;
    this.buf = Buffer.alloc(0);
    this.pos = 0;
  }

  finish(): Truncation | null {
    const partial = Buffer.from(this.buf.subarray(this.pos));
    let t: Truncation | null = null;
    if (this.state === 'start' && partial.length > 0) t = { bare: null, attrs: [], where: 'name', partial, name: '' };
    if (this.state === 'bare') t = { bare: null, attrs: [], where: 'bare', partial, name: '' };
    if (this.state === 'barewait' || this.state === 'name') t = { bare: this.bare, attrs: this.attrs, where: 'name', partial, name: '' };
    if (this.state === 'value') t = { bare: this.bare, attrs: this.attrs, where: 'value', partial, name: this.pendingName };
    this.state = 'dead';
    this.buf = Buffer.alloc(0);
    this.pos = 0;
    return t;
  }

  private reset(): void {
    this.state = 'start';
    this.bare = null;
    this.attrs = [];
    this.pendingName = '';
  }

  private die(what: 'name' | 'value' | 'count', limit: number): ReadEvent {
    this.state = 'dead';
    this.buf = Buffer.alloc(0);
    this.pos = 0;
    this.attrs = [];
    return { type: 'limit', what, limit };
  }
}

/* ---- serialization for comparison ---- */

const hex = (b: Buffer): string => b.toString('hex');
const attrsText = (attrs: readonly Attr[]): string => attrs.map((a) => `${JSON.stringify(a.name)}=${hex(a.value)}`).join(',');

function serEvent(ev: ReadEvent): string {
  switch (ev.type) {
    case 'list':
      return `list bare=${ev.bare === null ? '-' : hex(ev.bare)} [${attrsText(ev.attrs)}]`;
    case 'bare':
      return `bare ${hex(ev.name)}`;
    case 'limit':
      return `limit ${ev.what} ${ev.limit}`;
  }
}

function serTrunc(t: Truncation | null): string {
  if (t === null) return 'end';
  return `end ${t.where} partial=${hex(t.partial)} name=${JSON.stringify(t.name)} bare=${t.bare === null ? '-' : hex(t.bare)} [${attrsText(t.attrs)}]`;
}

/* ---- generators ---- */

const WORDS = ['request', 'seed', 'update', 'lookup', 'session', 'cache_id', 'size', 'W', 'x', ''];
const token = fc.oneof(
  fc.constantFrom(...WORDS),
  fc.string({ unit: 'binary-ascii', maxLength: 24 }).map((s) => s.replace(/\0/g, '')),
);
const stream = fc
  .oneof(
    // NUL-heavy random bytes
    fc.array(fc.oneof(fc.constant(0), fc.constant(0x41), fc.integer({ min: 0, max: 255 })), { maxLength: 160 }).map((a) => Buffer.from(a)),
    // token soups, mostly well framed, with a random tail
    fc.tuple(fc.array(token, { maxLength: 24 }), fc.string({ unit: 'binary-ascii', maxLength: 6 })).map(([ts, tail]) =>
      Buffer.from(ts.map((s) => `${s}\0`).join('') + tail, 'latin1'),
    ),
  );
const limitsArb: fc.Arbitrary<AttrLimits> = fc.record({
  nameLimit: fc.oneof(fc.integer({ min: 0, max: 12 }), fc.constant(256)),
  valueLimit: fc.oneof(fc.integer({ min: 0, max: 40 }), fc.constant(4096)),
  countLimit: fc.oneof(fc.integer({ min: 0, max: 5 }), fc.constant(32)),
});

/** Cut points as chunk lengths (1.. bytes), cycled over the stream. */
const chunkLengths = fc.array(fc.oneof(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 64 })), { minLength: 1, maxLength: 40 });

function chunk(buf: Buffer, lengths: readonly number[]): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0, i = 0; at < buf.length; i++) {
    const n = lengths[i % lengths.length];
    out.push(Buffer.from(buf.subarray(at, at + n))); // fresh memory: the reader may zero it
    at += n;
  }
  return out;
}

/** A consumer decision stream: cycled booleans. */
function decider(bits: readonly boolean[]): () => boolean {
  let i = 0;
  return () => (bits.length === 0 ? true : bits[i++ % bits.length]);
}

/* ---- properties ---- */

test('the reader agrees call by call with the re-concatenating model, and never throws', (t) => {
  const prop = fc.property(
    stream, limitsArb, fc.boolean(), chunkLengths, fc.array(fc.boolean(), { maxLength: 16 }), fc.array(fc.boolean(), { maxLength: 16 }),
    (bytes, limits, shortPath, lengths, drainBits, choiceBits) => {
      const reader = new Attr0Reader(limits, shortPath);
      const model = new ModelReader(limits, shortPath);
      const drain = decider(drainBits);
      const choose = decider(choiceBits);
      const log: string[] = [];
      const kept: Array<[ReadEvent, string]> = [];
      const step = (): void => {
        for (;;) {
          const ev = reader.next();
          const mev = model.next();
          assert.equal(ev === null ? 'null' : serEvent(ev), mev === null ? 'null' : serEvent(mev), log.join('\n'));
          assert.equal(reader.buffered, model.buffered, `buffered after ${log.join(' | ')}`);
          if (ev === null) return;
          log.push(serEvent(ev));
          kept.push([ev, serEvent(ev)]);
          if (ev.type === 'bare' || ev.type === 'list') {
            const act = choose();
            if (ev.type === 'bare' && act) {
              reader.bareContinue();
              model.bareContinue();
            } else if (ev.type === 'bare' || act) {
              reader.dropBuffered();
              model.dropBuffered();
            }
            assert.equal(reader.buffered, model.buffered, 'buffered after the decision');
          }
        }
      };
      for (const c of chunk(bytes, lengths)) {
        reader.push(c);
        model.push(Buffer.from(c));
        log.push(`push ${c.length}`);
        assert.equal(reader.buffered, model.buffered, 'buffered after push');
        assert.equal(reader.idle, model.idle, 'idle after push');
        if (drain()) step();
        assert.equal(reader.idle, model.idle, 'idle');
      }
      if (drain()) step();
      const tr = reader.finish();
      assert.equal(serTrunc(tr), serTrunc(model.finish()), log.join('\n'));
      assert.equal(reader.buffered, 0);
      const trText = serTrunc(tr);
      // Nothing handed out was written afterwards.
      for (const [ev, text] of kept) assert.equal(serEvent(ev), text, 'an event changed after it was returned');
      assert.equal(serTrunc(tr), trText);
    },
  );
  checkProperty(t, prop, 300);
});

test('any chunking gives the events of one push (no short path, nothing dropped)', (t) => {
  const run = (chunks: readonly Buffer[], limits: AttrLimits, drainBits: readonly boolean[]): string[] => {
    const r = new Attr0Reader(limits, false);
    const drain = decider(drainBits);
    const out: string[] = [];
    const step = (): void => {
      for (let ev = r.next(); ev !== null; ev = r.next()) out.push(serEvent(ev));
    };
    for (const c of chunks) {
      r.push(c);
      if (drain()) step();
    }
    step();
    out.push(serTrunc(r.finish()));
    return out;
  };
  const prop = fc.property(stream, limitsArb, chunkLengths, fc.array(fc.boolean(), { maxLength: 8 }), (bytes, limits, lengths, drainBits) => {
    assert.deepEqual(run(chunk(bytes, lengths), limits, drainBits), run([Buffer.from(bytes)], limits, []));
  });
  checkProperty(t, prop, 300);
});

test('limits hold: events within their bounds, and a drained reader holds at most one bound', (t) => {
  const prop = fc.property(stream, limitsArb, fc.boolean(), chunkLengths, (bytes, limits, shortPath, lengths) => {
    const r = new Attr0Reader(limits, shortPath);
    const bound = Math.max(limits.nameLimit, limits.valueLimit);
    for (const c of chunk(bytes, lengths)) {
      r.push(c);
      for (let ev = r.next(); ev !== null; ev = r.next()) {
        if (ev.type === 'bare') {
          assert.ok(ev.name.length <= limits.nameLimit);
          r.bareContinue();
        } else if (ev.type === 'list') {
          assert.ok(ev.attrs.length <= limits.countLimit, 'count');
          for (const a of ev.attrs) assert.ok(a.name.length <= limits.nameLimit && a.value.length <= limits.valueLimit, 'token length');
          if (ev.bare !== null) assert.ok(ev.bare.length <= limits.nameLimit);
        }
      }
      assert.ok(r.buffered <= bound, `holds ${r.buffered} bytes with bounds ${bound}`);
    }
  });
  checkProperty(t, prop, 300);
});
