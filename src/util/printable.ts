/*
 * NAME
 *   util/printable - make peer text safe for a log line
 * SYNOPSIS
 *   printable(text: string, max?: number): string
 *   errorReason(err: unknown, max?: number): string
 * DESCRIPTION
 *   Replaces every character outside printable ASCII with `?` (as Postfix's logging shows
 *   non-printable bytes) and cuts the text to `max` characters (Postfix's `%.100s`), so that a
 *   peer can neither forge log lines nor flood them.
 *   errorReason() is the one way an engine error (SQLite, Redis, a handler) reaches a log line:
 *   its code and message only, never the error's other fields (a Redis ReplyError carries the
 *   command and its arguments, which may be a sealed record), made printable and cut to `max`.
 *   The engines' messages name the failure, not the values bound to the statement or command;
 *   the cut bounds what a message could carry all the same. Anything thrown that is not an
 *   Error gives only its type.
 */

export function printable(text: string, max = 100): string {
  const cut = text.length > max ? text.slice(0, max) : text;
  return cut.replace(/[^\x20-\x7e]/g, '?');
}

export function errorReason(err: unknown, max = 160): string {
  if (!(err instanceof Error)) return `non-Error value (${typeof err})`;
  const code = (err as NodeJS.ErrnoException).code;
  return printable(typeof code === 'string' && code !== '' ? `${code}: ${err.message}` : err.message, max);
}
