/*
 * NAME
 *   prng/sources/egd - an EGD server on a UNIX-domain stream socket (`egd:<path>`)
 * SYNOPSIS
 *   await EgdSource.connect(path, { timeoutMs?, info? }): EgdSource   (rejects on failure)
 *   source.read(len, feed): Promise<SourceResult>
 * DESCRIPTION
 *   tls_prng_egd_open() / tls_prng_egd_read() (spec 4.2, 4.3; notes/ecosystem.md "EGD"):
 *   connected before the privilege drop, with a 10 s connect timeout, and kept connected.
 *   One read is EGD command 1 ("get entropy, non-blocking"):
 *     1. send 0x01, n with n = min(len, 255);
 *     2. receive one byte k, the number of bytes that follow (k may be less than n);
 *     3. k = 0 is a failure ("reports zero bytes available");
 *     4. receive exactly k bytes and feed them to the pool.
 *   Every step has the 10 s timeout. Unlike Postfix's single read(), the k bytes may arrive
 *   in several segments. Bytes left over from an earlier answer are dropped before a new
 *   command: they cannot be the answer to it.
 * DIAGNOSTICS
 *   connect() rejects with the Node.js error (ETIMEDOUT after the timeout); the caller logs
 *   "cannot connect to EGD server". read() logs through opts.info, as tls_prng_egd_read()
 *   does with msg_info(): "cannot write to EGD server <path>: <err>", "cannot read from EGD
 *   server <path>: <err>", "EGD server <path> reports zero bytes available", "cannot read <k>
 *   bytes from EGD server <path>: <err>"; then resolves { count: -1 }. A server that closes
 *   the connection gives the error text "unexpected end-of-input" (Postfix prints a stale errno).
 * SEE ALSO
 *   tls/tls_prng_egd.c, util/unix_connect.c
 */

import { createConnection, type Socket } from 'node:net';
import { IO_TIMEOUT_MS, timeoutError, type EntropySource, type SourceResult } from './source.js';
import { strerror } from '../../util/errors.js';

/** EGD command 1: read entropy without blocking (the only one Postfix uses). */
export const EGD_CMD_READ_NONBLOCK = 0x01;
/** UCHAR_MAX: one EGD request asks for at most 255 bytes. */
export const EGD_READ_MAX = 255;

export interface EgdOptions {
  readonly timeoutMs?: number;
  /** msg_info(); default: silent. */
  readonly info?: (msg: string) => void;
}

interface Waiter {
  readonly n: number;
  readonly resolve: (b: Buffer) => void;
  readonly reject: (e: Error) => void;
}

const EOF_ERROR = 'unexpected end-of-input';

export class EgdSource implements EntropySource {
  readonly kind = 'egd' as const;
  private chunks: Buffer[] = [];
  private buffered = 0;
  private waiter: Waiter | null = null;
  private failure: Error | null = null;

  private constructor(readonly path: string, private readonly sock: Socket, private readonly timeoutMs: number, private readonly info: (m: string) => void) {
    sock.on('data', (c: Buffer) => {
      this.chunks.push(c);
      this.buffered += c.length;
      this.wake();
    });
    sock.on('end', () => this.fail(Object.assign(new Error(EOF_ERROR), { eof: true })));
    sock.on('error', (err) => this.fail(err));
    sock.on('close', () => this.fail(Object.assign(new Error(EOF_ERROR), { eof: true })));
    // The connection alone must not keep a process alive; a read in progress has its timer.
    sock.unref();
  }

  static connect(path: string, opts: EgdOptions = {}): Promise<EgdSource> {
    const timeoutMs = opts.timeoutMs ?? IO_TIMEOUT_MS;
    return new Promise((resolve, reject) => {
      const sock = createConnection(path);
      const timer = setTimeout(() => {
        sock.destroy();
        reject(timeoutError());
      }, timeoutMs);
      sock.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      sock.once('connect', () => {
        clearTimeout(timer);
        sock.removeAllListeners('error');
        resolve(new EgdSource(path, sock, timeoutMs, opts.info ?? ((): void => undefined)));
      });
    });
  }

  async read(len: number, feed: (bytes: Buffer) => void): Promise<SourceResult> {
    // Stale bytes of an earlier answer would be taken for this one's count.
    this.chunks = [];
    this.buffered = 0;
    const n = Math.min(Math.max(1, len), EGD_READ_MAX);
    try {
      await this.write(Buffer.from([EGD_CMD_READ_NONBLOCK, n]));
    } catch (err) {
      return this.failed(`cannot write to EGD server ${this.path}: ${this.text(err)}`, err);
    }
    let k: number;
    try {
      k = (await this.take(1))[0];
    } catch (err) {
      return this.failed(`cannot read from EGD server ${this.path}: ${this.text(err)}`, err);
    }
    if (k === 0) {
      this.info(`EGD server ${this.path} reports zero bytes available`);
      return { count: -1, error: 'zero bytes available' };
    }
    let bytes: Buffer;
    try {
      bytes = await this.take(k);
    } catch (err) {
      return this.failed(`cannot read ${k} bytes from EGD server ${this.path}: ${this.text(err)}`, err);
    }
    feed(bytes);
    bytes.fill(0);
    return { count: k, error: '' };
  }

  close(): void {
    this.fail(new Error('closed'));
    this.sock.destroy();
  }

  private failed(msg: string, err: unknown): SourceResult {
    this.info(msg);
    return { count: -1, error: this.text(err) };
  }

  private text(err: unknown): string {
    return (err as { eof?: boolean }).eof === true ? EOF_ERROR : strerror(err);
  }

  private write(b: Buffer): Promise<void> {
    if (this.failure !== null) return Promise.reject(this.failure);
    return this.bounded(
      new Promise<void>((resolve, reject) => {
        this.sock.write(b, (err) => (err ? reject(err) : resolve()));
      }),
    );
  }

  /** Exactly n bytes, within the timeout. */
  private take(n: number): Promise<Buffer> {
    return this.bounded(
      new Promise<Buffer>((resolve, reject) => {
        this.waiter = { n, resolve, reject };
        this.wake();
      }),
    );
  }

  private bounded<T>(p: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const t = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        this.waiter = null;
        reject(timeoutError());
      }, this.timeoutMs);
    });
    return Promise.race([p, t]).finally(() => clearTimeout(timer));
  }

  private wake(): void {
    const w = this.waiter;
    if (w === null) return;
    if (this.buffered >= w.n) {
      const all = Buffer.concat(this.chunks);
      this.chunks = all.length > w.n ? [all.subarray(w.n)] : [];
      this.buffered = all.length - w.n;
      this.waiter = null;
      w.resolve(all.subarray(0, w.n));
    } else if (this.failure !== null) {
      this.waiter = null;
      w.reject(this.failure);
    }
  }

  private fail(err: Error): void {
    this.failure ??= err;
    this.wake();
  }
}
