/*
 * NAME
 *   client/client - tlsmgr client over the UNIX socket (the tls_mgr.c analogue)
 * SYNOPSIS
 *   const c = await TlsmgrClient.connect(path, { timeoutMs })
 *   c.seed(n) c.policy(type) c.lookup(type, id) c.update(type, id, session) c.delete(type, id)
 *   c.tktkey(name) c.close()
 * DESCRIPTION
 *   Speaks exactly as Postfix's clients do (spec 6): checks the greeting once per connection,
 *   then strict request/reply, one request in flight; each request goes out in one write.
 *   Statuses come back as signed numbers (0 OK, -1 ERR, -2 FAIL). Cache ids are strings whose
 *   characters are bytes (latin1), as Postfix's ids are byte strings.
 * DIAGNOSTICS
 *   Rejects with an Error on a wrong greeting, a malformed reply, a closed connection or a
 *   timeout; the connection is then unusable.
 * SEE ALSO
 *   tls/tls_mgr.c, util/attr_clnt.c
 */

import { createConnection, type Socket } from 'node:net';
import { Attr0Reader, type Attr } from '../attr/reader.js';
import { base64Decode } from '../attr/base64.js';
import { parseAttrInt } from '../attr/number.js';
import { Attr0Writer } from '../attr/writer.js';
import { ATTR, PROTO_TLSMGR, REQ } from '../protocol/names.js';

export interface ClientOptions {
  /** Per-request timeout in milliseconds (default 10000). */
  readonly timeoutMs?: number;
}

const EMPTY = Buffer.alloc(0);

export class TlsmgrClient {
  private readonly reader = new Attr0Reader({ nameLimit: 256, valueLimit: 4 << 20, countLimit: 16 }, false);
  private waiting: { resolve: (a: Attr[]) => void; reject: (e: Error) => void } | null = null;
  private failed: Error | null = null;
  /*
   * One timer per connection, re-armed for each request (refresh()) rather than a new
   * setTimeout() per request: a busy client makes no timer garbage. When it fires with no
   * request in flight it does nothing; unref()'d, it never keeps a process alive.
   */
  private readonly timer: NodeJS.Timeout;

  private constructor(
    private readonly sock: Socket,
    timeoutMs: number,
  ) {
    sock.on('data', (chunk: Buffer) => {
      this.reader.push(chunk);
      for (let ev = this.reader.next(); ev !== null; ev = this.reader.next()) {
        if (ev.type === 'list') this.settle(null, ev.attrs);
        else this.settle(new Error(`tlsmgr client: bad reply framing (${ev.type})`));
      }
    });
    sock.on('error', (err) => this.settle(err));
    sock.on('close', () => {
      this.settle(new Error('tlsmgr client: connection closed'));
      clearTimeout(this.timer);
    });
    this.timer = setTimeout(() => {
      if (this.waiting !== null) this.settle(new Error('tlsmgr client: timeout'));
    }, timeoutMs).unref();
  }

  static async connect(path: string, opts: ClientOptions = {}): Promise<TlsmgrClient> {
    const sock = createConnection(path);
    await new Promise<void>((resolve, reject) => {
      sock.once('connect', resolve);
      sock.once('error', reject);
    });
    const c = new TlsmgrClient(sock, opts.timeoutMs ?? 10000);
    const greeting = await c.receive();
    if (greeting.length !== 1 || greeting[0].name !== ATTR.PROTO || greeting[0].value.toString('latin1') !== PROTO_TLSMGR) {
      c.close();
      throw new Error('tlsmgr client: unexpected protocol greeting');
    }
    return c;
  }

  async seed(size: number): Promise<{ status: number; seed: Buffer }> {
    const r = await this.request(new Attr0Writer().str(ATTR.REQUEST, REQ.SEED).int(ATTR.SIZE, size).end());
    return { status: intOf(r, ATTR.STATUS), seed: dataOf(r, ATTR.SEED) };
  }

  async policy(cacheType: string): Promise<{ status: number; cachable: number; timeout: number }> {
    const r = await this.request(new Attr0Writer().str(ATTR.REQUEST, REQ.POLICY).str(ATTR.CACHE_TYPE, cacheType).end());
    return { status: intOf(r, ATTR.STATUS), cachable: intOf(r, ATTR.CACHABLE), timeout: intOf(r, ATTR.TIMEOUT) };
  }

  async lookup(cacheType: string, cacheId: string): Promise<{ status: number; session: Buffer }> {
    const r = await this.request(
      new Attr0Writer().str(ATTR.REQUEST, REQ.LOOKUP).str(ATTR.CACHE_TYPE, cacheType).str(ATTR.CACHE_ID, cacheId).end(),
    );
    return { status: intOf(r, ATTR.STATUS), session: dataOf(r, ATTR.SESSION) };
  }

  async update(cacheType: string, cacheId: string, session: Uint8Array): Promise<number> {
    const w = new Attr0Writer().str(ATTR.REQUEST, REQ.UPDATE).str(ATTR.CACHE_TYPE, cacheType).str(ATTR.CACHE_ID, cacheId);
    return intOf(await this.request(w.data(ATTR.SESSION, session).end()), ATTR.STATUS);
  }

  async delete(cacheType: string, cacheId: string): Promise<number> {
    const w = new Attr0Writer().str(ATTR.REQUEST, REQ.DELETE).str(ATTR.CACHE_TYPE, cacheType).str(ATTR.CACHE_ID, cacheId);
    return intOf(await this.request(w.end()), ATTR.STATUS);
  }

  async tktkey(keyname: Uint8Array = EMPTY): Promise<{ status: number; keybuf: Buffer }> {
    const r = await this.request(new Attr0Writer().str(ATTR.REQUEST, REQ.TKTKEY).data(ATTR.KEYNAME, keyname).end());
    return { status: intOf(r, ATTR.STATUS), keybuf: dataOf(r, ATTR.KEYBUF) };
  }

  /** Send raw request bytes in one write and return the reply's attributes. */
  request(bytes: Buffer): Promise<Attr[]> {
    const p = this.receive();
    this.sock.write(bytes);
    return p;
  }

  close(): void {
    this.sock.destroy();
  }

  private receive(): Promise<Attr[]> {
    if (this.failed) return Promise.reject(this.failed);
    if (this.waiting) return Promise.reject(new Error('tlsmgr client: a request is already in flight'));
    return new Promise((resolve, reject) => {
      this.timer.refresh();
      this.waiting = { resolve, reject };
    });
  }

  private settle(err: Error | null, attrs?: Attr[]): void {
    const w = this.waiting;
    if (err) {
      this.failed ??= err;
      this.sock.destroy();
    }
    if (w === null) return;
    this.waiting = null;
    if (err) w.reject(err);
    else w.resolve(attrs ?? []);
  }
}

function find(attrs: readonly Attr[], name: string): Buffer {
  const a = attrs.find((x) => x.name === name);
  if (a === undefined) throw new Error(`tlsmgr client: reply without ${name}`);
  return a.value;
}

function intOf(attrs: readonly Attr[], name: string): number {
  const v = find(attrs, name);
  const n = parseAttrInt(v, 0, v.length);
  if (n === null) throw new Error(`tlsmgr client: malformed ${name} in reply`);
  return n;
}

function dataOf(attrs: readonly Attr[], name: string): Buffer {
  const v = find(attrs, name);
  const d = base64Decode(v, 0, v.length);
  if (d === null) throw new Error(`tlsmgr client: malformed ${name} in reply`);
  return d;
}
