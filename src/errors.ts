/*
 * NAME
 *   errors - error classes with stable codes
 * DESCRIPTION
 *   FatalError carries a Postfix-worded message for msg_fatal(): the CLI logs it as
 *   "fatal: <message>" and exits 1. Library code throws it instead of exiting so that it can
 *   be tested; only the CLI edge turns it into a process exit. Callers branch on `code`.
 * SEE ALSO
 *   util/msg.c (msg_fatal).
 */

export type TlsmgrErrorCode =
  | 'TLSMGR_FATAL' // configuration or startup error: log "fatal:" and exit 1
  | 'TLSMGR_LIMIT' // peer input over a configured bound
  | 'TLSMGR_PROTOCOL' // peer input that breaks attr0 framing
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
