/*
 * NAME
 *   prng/sources/dev - an entropy device (`tls_random_source = dev:<path>`)
 * SYNOPSIS
 *   DevSource.open(path, { timeoutMs? }): DevSource      (throws the open error)
 *   source.read(len, feed): Promise<SourceResult>
 * DESCRIPTION
 *   tls_prng_dev_open() / tls_prng_dev_read() (spec 4.2, 4.3): the device is opened read-only
 *   before the privilege drop and kept open (it cannot be reopened from a chroot jail). Each
 *   read is ONE read() of min(len, 255) bytes with a timeout; whatever count > 0 it returns is
 *   fed to the pool. 0 (end of file) or an error is a failure, which the manager turns into
 *   "exiting to reopen". The descriptor is opened with O_NONBLOCK (see source.ts) and
 *   O_NOCTTY, so neither a FIFO without a writer nor a terminal can hang or capture the daemon.
 * DIAGNOSTICS
 *   open() throws the Node.js error (the caller logs "cannot open entropy device").
 *   read() resolves { count: 0, error: "Success" } at end of file, as Postfix's
 *   errno = 0 prints, and { count: -1, error } on a read error or timeout.
 * SEE ALSO
 *   tls/tls_prng_dev.c
 */

import { closeQuietly, IO_TIMEOUT_MS, openReadOnly, timedRead, type EntropySource, type SourceResult } from './source.js';
import { strerror } from '../../util/errors.js';

/** UCHAR_MAX: tls_prng_dev_read() reads into a 255-byte buffer. */
export const DEV_READ_MAX = 255;

export class DevSource implements EntropySource {
  readonly kind = 'dev' as const;
  private fd: number | null;

  private constructor(readonly path: string, fd: number, private readonly timeoutMs: number) {
    this.fd = fd;
  }

  static open(path: string, opts: { timeoutMs?: number } = {}): DevSource {
    const fd = openReadOnly(path);
    return new DevSource(path, fd, opts.timeoutMs ?? IO_TIMEOUT_MS);
  }

  async read(len: number, feed: (bytes: Buffer) => void): Promise<SourceResult> {
    if (this.fd === null) return { count: -1, error: 'Bad file descriptor' };
    const want = Math.min(Math.max(1, len), DEV_READ_MAX);
    const buf = Buffer.alloc(want);
    try {
      const count = await timedRead(this.fd, buf, want, null, this.timeoutMs);
      if (count <= 0) return { count: 0, error: strerror(null) };
      feed(buf.subarray(0, count));
      return { count, error: '' };
    } catch (err) {
      return { count: -1, error: strerror(err) };
    } finally {
      buf.fill(0);
    }
  }

  close(): void {
    this.fd = closeQuietly(this.fd);
  }
}
