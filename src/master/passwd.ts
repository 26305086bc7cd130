/*
 * NAME
 *   master/passwd - look up $mail_owner's uid and gid
 * SYNOPSIS
 *   lookupUser(name: string): { uid: number; gid: number } | null
 * DESCRIPTION
 *   Node has no getpwnam(); this reads /etc/passwd (where Debian's postfix package creates its
 *   user) and falls back to `id -u`/`id -g`, which also sees NSS sources.
 */

import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

export function lookupUser(name: string): { uid: number; gid: number } | null {
  try {
    for (const line of readFileSync('/etc/passwd', 'latin1').split('\n')) {
      const f = line.split(':');
      if (f.length >= 4 && f[0] === name) return { uid: Number(f[2]), gid: Number(f[3]) };
    }
  } catch {
    /* fall through to id(1) */
  }
  try {
    const opts = { encoding: 'latin1' as const, stdio: ['ignore', 'pipe', 'ignore'] as ('ignore' | 'pipe')[] };
    const uid = Number(execFileSync('id', ['-u', name], opts).trim());
    const gid = Number(execFileSync('id', ['-g', name], opts).trim());
    return Number.isInteger(uid) && Number.isInteger(gid) ? { uid, gid } : null;
  } catch {
    return null;
  }
}
