/*
 * NAME
 *   log/printable - make peer text safe for a log line
 * SYNOPSIS
 *   printable(text: string, max?: number): string
 * DESCRIPTION
 *   Replaces every character outside printable ASCII with `?` (as Postfix's logging shows
 *   non-printable bytes) and cuts the text to `max` characters (Postfix's `%.100s`), so that a
 *   peer can neither forge log lines nor flood them.
 */

export function printable(text: string, max = 100): string {
  const cut = text.length > max ? text.slice(0, max) : text;
  return cut.replace(/[^\x20-\x7e]/g, '?');
}
