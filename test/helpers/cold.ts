/*
 * cold - write a file and date it 60 s back.
 * Postfix re-reads a main.cf modified within the last second, sleeping 300 ms per try
 * (mail_conf.c), so a freshly written main.cf costs postconf about 2 s; an old mtime avoids it.
 */

import { utimesSync, writeFileSync } from 'node:fs';

export function writeCold(path: string, text: string): void {
  writeFileSync(path, text);
  const t = Date.now() / 1000 - 60;
  utimesSync(path, t, t);
}
