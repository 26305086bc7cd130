/*
 * NAME
 *   prng/sources/source - what the three external entropy sources share
 * SYNOPSIS
 *   interface EntropySource { kind, path, read(len, feed), close() }
 *   timedRead(fd, buf, len, position, timeoutMs): Promise<number>
 *   IO_TIMEOUT_MS
 * DESCRIPTION
 *   A source is opened before the privilege drop and read afterwards (tlsmgr_pre_init's
 *   security note). read() resolves to { count, error }: count > 0 bytes were fed to the
 *   pool, otherwise `error` is the text Postfix's "%m" would print. read() never rejects.
 *
 *   timedRead() is Postfix's timed_read() for a descriptor opened with O_NONBLOCK: a read
 *   that would block (EAGAIN) is retried every POLL_MS until the deadline, then fails with
 *   ETIMEDOUT ("Connection timed out", as read_wait() sets it). Node has no poll(2) on a plain
 *   descriptor, and a blocking read parked in libuv's thread pool can be neither cancelled
 *   nor survived: process.exit() waits for the pool's threads, so one stuck read() on a
 *   stalled device would hang the daemon for good, including its exit path.
 * LIMITS
 *   A device that ignores O_NONBLOCK and blocks anyway still ties up a pool thread.
 * SEE ALSO
 *   tls/tls_prng_src.h, util/timed_read.c, util/read_wait.c
 */

import { closeSync, constants, openSync, read } from 'node:fs';

/** TLS_MGR_TIMEOUT: every source operation is bounded by 10 s. */
export const IO_TIMEOUT_MS = 10_000;
/** Retry interval for a read that would block. */
const POLL_MS = 20;

export interface SourceResult {
  /** Bytes fed to the pool (> 0 on success); 0 or -1 on failure, as the C functions return. */
  readonly count: number;
  /** The "%m" text when count <= 0. */
  readonly error: string;
}

export interface EntropySource {
  readonly kind: 'dev' | 'egd' | 'file';
  readonly path: string;
  read(len: number, feed: (bytes: Buffer) => void): Promise<SourceResult>;
  close(): void;
}

export function timeoutError(): NodeJS.ErrnoException {
  return Object.assign(new Error('Connection timed out'), { code: 'ETIMEDOUT' });
}

function readOnce(fd: number, buf: Buffer, len: number, position: number | null): Promise<number> {
  return new Promise((resolve, reject) => {
    read(fd, buf, 0, len, position, (err, n) => (err ? reject(err) : resolve(n)));
  });
}

export async function timedRead(fd: number, buf: Buffer, len: number, position: number | null, timeoutMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await readOnce(fd, buf, len, position);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'EAGAIN' && code !== 'EWOULDBLOCK' && code !== 'EINTR') throw err;
    }
    const left = deadline - Date.now();
    if (left <= 0) throw timeoutError();
    await new Promise((r) => setTimeout(r, Math.min(POLL_MS, left)));
  }
}

/** Open an entropy source read-only and non-blocking (a stuck blocking read would also stop exit). */
export function openReadOnly(path: string): number {
  return openSync(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
}

/** Close a descriptor, ignoring errors (nothing is lost by a failing close here); returns null. */
export function closeQuietly(fd: number | null): null {
  if (fd !== null) {
    try {
      closeSync(fd);
    } catch {
      /* nothing to save */
    }
  }
  return null;
}
