/*
 * NAME
 *   prng/sources/file - a regular file as entropy source (`tls_random_source = <path>`)
 * SYNOPSIS
 *   FileSource.open(path, { timeoutMs? }): FileSource     (throws the open error)
 *   source.read(len, feed): Promise<SourceResult>
 * DESCRIPTION
 *   tls_prng_file_open() / tls_prng_file_read() (spec 4.2-4.4): opened read-only before the
 *   privilege drop. A read starts at offset 0 and reads up to `len` bytes (tls_random_bytes,
 *   no 255 cap here) in chunks of at most 8192, feeding every chunk, and stops early at end
 *   of file. The manager reads it once and then closes and forgets it. O_NONBLOCK keeps a
 *   FIFO named here from hanging the open; each chunk read has the 10 s timeout.
 * DIAGNOSTICS
 *   open() throws (Postfix says nothing about it; the first reseed then exits to reopen).
 *   read() resolves { count: total, error } with error "Success" for an empty file
 *   (Postfix sets errno = 0 first), and { count: -1, error } when a read fails or the
 *   file cannot be positioned (a pipe: "Illegal seek").
 * SEE ALSO
 *   tls/tls_prng_file.c
 */

import { closeQuietly, IO_TIMEOUT_MS, openReadOnly, timedRead, type EntropySource, type SourceResult } from './source.js';
import { strerror } from '../../util/errors.js';

/** tls_prng_file_read()'s buffer size. */
export const FILE_CHUNK = 8192;

export class FileSource implements EntropySource {
  readonly kind = 'file' as const;
  private fd: number | null;

  private constructor(readonly path: string, fd: number, private readonly timeoutMs: number) {
    this.fd = fd;
  }

  static open(path: string, opts: { timeoutMs?: number } = {}): FileSource {
    const fd = openReadOnly(path);
    return new FileSource(path, fd, opts.timeoutMs ?? IO_TIMEOUT_MS);
  }

  async read(len: number, feed: (bytes: Buffer) => void): Promise<SourceResult> {
    if (this.fd === null) return { count: -1, error: 'Bad file descriptor' };
    const buf = Buffer.alloc(Math.min(Math.max(0, len), FILE_CHUNK));
    let total = 0;
    try {
      // Positional reads from 0: the lseek(fd, 0, SEEK_SET) of the C code, and the same
      // ESPIPE failure for something that cannot seek.
      while (total < len) {
        const count = await timedRead(this.fd, buf, Math.min(len - total, FILE_CHUNK), total, this.timeoutMs);
        if (count === 0) break;
        feed(buf.subarray(0, count));
        total += count;
      }
    } catch (err) {
      return { count: -1, error: strerror(err) };
    } finally {
      buf.fill(0);
    }
    return { count: total, error: total > 0 ? '' : strerror(null) };
  }

  close(): void {
    this.fd = closeQuietly(this.fd);
  }
}
