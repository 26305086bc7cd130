/*
 * NAME
 *   util/errors - error classes with stable codes, and strerror() texts
 * SYNOPSIS
 *   class TlsmgrError, FatalError     strerror(err): string
 * DESCRIPTION
 *   FatalError carries a Postfix-worded message for msg_fatal(): the CLI logs it as
 *   "fatal: <message>" and exits 1. Library code throws it instead of exiting so that it can
 *   be tested; only the CLI edge turns it into a process exit. Callers branch on `code`.
 *   strerror() is Postfix's %m: the glibc text for a Node.js system error's code (the code
 *   itself for one not in the table). An engine error that is not a system error goes to a
 *   log line through util/printable.ts errorReason() instead.
 * SEE ALSO
 *   util/msg.c (msg_fatal).
 */

export type TlsmgrErrorCode =
  | 'TLSMGR_FATAL' // configuration or startup error: log "fatal:" and exit 1
  | 'TLSMGR_STORE'; // a session-cache storage engine failed (cache/store.ts StoreError)

export class TlsmgrError extends Error {
  readonly code: TlsmgrErrorCode;
  constructor(code: TlsmgrErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = 'TlsmgrError';
  }
}

/** A condition Postfix reports with msg_fatal(); `message` is the text after "fatal: ". */
export class FatalError extends TlsmgrError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('TLSMGR_FATAL', message, options);
    this.name = 'FatalError';
  }
}

/** strerror() texts (glibc) for the errors that opening, reading or writing a file or socket can give. */
const STRERROR: Readonly<Record<string, string>> = {
  ENOENT: 'No such file or directory',
  EACCES: 'Permission denied',
  EPERM: 'Operation not permitted',
  EISDIR: 'Is a directory',
  ENOTDIR: 'Not a directory',
  ELOOP: 'Too many levels of symbolic links',
  ENAMETOOLONG: 'File name too long',
  EMFILE: 'Too many open files',
  ENFILE: 'Too many open files in system',
  EIO: 'Input/output error',
  ENOMEM: 'Cannot allocate memory',
  ENXIO: 'No such device or address',
  EOVERFLOW: 'Value too large for defined data type',
  // Sockets, devices and writes (the PRNG sources and the exchange file, prng/).
  EAGAIN: 'Resource temporarily unavailable',
  EWOULDBLOCK: 'Resource temporarily unavailable',
  EBADF: 'Bad file descriptor',
  EINVAL: 'Invalid argument',
  ESPIPE: 'Illegal seek',
  ENOSPC: 'No space left on device',
  EDQUOT: 'Disk quota exceeded',
  EFBIG: 'File too large',
  EROFS: 'Read-only file system',
  ENODEV: 'No such device',
  EPIPE: 'Broken pipe',
  ETIMEDOUT: 'Connection timed out',
  ECONNREFUSED: 'Connection refused',
  ECONNRESET: 'Connection reset by peer',
  ENOTSOCK: 'Socket operation on non-socket',
  EPROTOTYPE: 'Protocol wrong type for socket',
};

/** The %m text for a Node.js system error. */
export function strerror(err: unknown): string {
  // errno 0 (a read that found nothing, no error object) prints "Success" in glibc.
  if (err === null || err === undefined) return 'Success';
  const code = (err as NodeJS.ErrnoException | null)?.code;
  if (code !== undefined && Object.hasOwn(STRERROR, code)) return STRERROR[code];
  return code ?? String(err);
}
