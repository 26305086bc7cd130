/*
 * NAME
 *   bench/postfix-tlsmgr - run Postfix's real tlsmgr(8) under a fake master, for the benchmarks
 * SYNOPSIS
 *   postfixTlsmgrAvailable(): string | null      (null when usable, else why not)
 *   startPostfixTlsmgr({ mainCf? }): Promise<RunningDaemon>
 * DESCRIPTION
 *   Plays master(8) as test/integration/master.test.ts does: a scratch instance (etc/main.cf,
 *   queue and data directories in a temp dir, data owned by mail_owner "postfix"), a UNIX
 *   listener made here and passed as fd 6, the status channel a socketpair on fd 5 (spawn's
 *   stdio 'pipe') that is kept open for the daemon's life, GENERATION in the environment and
 *   argv `tlsmgr -l -t unix -u`. The smtpd cache is btree:${data_directory}/smtpd_scache, as
 *   on a stock Debian install. Resolves once the listener answers with the greeting. stop()
 *   sends SIGTERM (SIGKILL after 5 s), closes our end of fd 5 and removes the directory.
 * LIMITS
 *   Needs root (tlsmgr opens its files as root and then drops to mail_owner) and
 *   /usr/lib/postfix/sbin/tlsmgr. Waits at most 15 s for the greeting.
 */

import { spawn } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { lookupUser } from '../src/master/passwd.js';
import { serving, writeInstanceMainCf, type RunningDaemon } from './daemon.js';

export const POSTFIX_TLSMGR = '/usr/lib/postfix/sbin/tlsmgr';
const MAIL_OWNER = 'postfix';

/** null when Postfix's tlsmgr can be run here, else the reason it cannot. */
export function postfixTlsmgrAvailable(): string | null {
  if (!existsSync(POSTFIX_TLSMGR)) return `${POSTFIX_TLSMGR} not installed`;
  if (process.getuid?.() !== 0) return 'not running as root';
  if (lookupUser(MAIL_OWNER) === null) return `no "${MAIL_OWNER}" user`;
  return null;
}

export async function startPostfixTlsmgr(opts: { mainCf?: Record<string, string> } = {}): Promise<RunningDaemon> {
  const why = postfixTlsmgrAvailable();
  if (why !== null) throw new Error(`cannot run Postfix's tlsmgr: ${why}`);
  const owner = lookupUser(MAIL_OWNER);
  const dir = mkdtempSync(join(tmpdir(), 'pf-tlsmgr-'));
  chmodSync(dir, 0o755);
  for (const d of ['etc', 'queue/private', 'data']) mkdirSync(join(dir, d), { recursive: true, mode: 0o755 });
  if (owner !== null) chownSync(join(dir, 'data'), owner.uid, owner.gid);
  writeInstanceMainCf(dir, { mail_owner: MAIL_OWNER, maillog_file: '', ...opts.mainCf });

  // The listener master would create; the child inherits it as fd 6.
  const socket = join(dir, 'queue/private/tlsmgr');
  const srv: Server = createServer((s) => s.destroy());
  await new Promise<void>((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(socket, () => resolve());
  });
  const fd = (srv as unknown as { _handle: { fd: number } })._handle.fd;
  const proc = spawn(POSTFIX_TLSMGR, ['-l', '-t', 'unix', '-u'], {
    argv0: 'tlsmgr',
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', MAIL_CONFIG: join(dir, 'etc'), GENERATION: '17' },
    stdio: ['ignore', 'ignore', 'pipe', 'ignore', 'ignore', 'pipe', fd],
  });
  // Node unlinks a UNIX server's path on close: move it aside, close our copy, move it back.
  renameSync(socket, `${socket}.aside`);
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  renameSync(`${socket}.aside`, socket);
  const status = (proc.stdio as unknown as (Socket | null)[])[5];
  status?.on('data', () => undefined); // drain the TAKEN/AVAIL records
  status?.on('error', () => undefined);
  const cleanup = (): void => {
    status?.destroy();
    rmSync(dir, { recursive: true, force: true });
  };
  return serving(proc, { dir, socket, what: 'Postfix tlsmgr', cleanup });
}
