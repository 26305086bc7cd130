/*
 * NAME
 *   bench/daemon - start our tlsmgr as a real process on a scratch instance directory
 * SYNOPSIS
 *   startDaemon({ mainCf?: Record<string,string>, args?, nodeArgs?, bin? }): Promise<RunningDaemon>
 *   serving(proc, { dir, socket, what, cleanup }): Promise<RunningDaemon>   (any server process)
 * DESCRIPTION
 *   Makes a temp dir with etc/main.cf (queue and data directories inside it, mail_owner = the
 *   current user, as root "postfix" or "nobody": instanceMailOwner(), makeInstanceDirs()),
 *   spawns `node bin/tlsmgr` with MAIL_CONFIG pointing there and
 *   waits until its socket answers with the greeting. stop() sends SIGTERM (SIGKILL after 5 s)
 *   and removes the directory. Used by the benchmarks and the integration tests. The node
 *   options of bin/tlsmgr's #! line (`#!/usr/bin/env -S node <options>`) are passed as master
 *   running the file would, then nodeArgs (e.g. --cpu-prof --cpu-prof-dir=DIR for profiling).
 *   bin (default this checkout's bin/tlsmgr) runs another build, e.g. an older commit's
 *   worktree, to compare against.
 * LIMITS
 *   Waits at most 15 s for the socket.
 */

import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TlsmgrClient } from '../src/client/client.js';
import { lookupUser } from '../src/master/passwd.js';

export const REPO = resolve(fileURLToPath(import.meta.url), '../../..');

/** The node options on the #! line of `bin` (`#!/usr/bin/env -S node <options>`), else none. */
export function shebangNodeArgs(bin: string): string[] {
  const first = readFileSync(bin, 'latin1').split('\n', 1)[0];
  const m = /^#!\S*\benv -S node\s+(.+)$/.exec(first);
  return m ? m[1].trim().split(/\s+/) : [];
}

/**
 * instanceMailOwner - mail_owner of a scratch instance: the current user; as root Debian's
 * "postfix" (else "nobody"), since tlsmgr, as Postfix, refuses a mail_owner with user ID 0.
 */
export function instanceMailOwner(): string {
  if (process.getuid?.() !== 0) return userInfo().username;
  return lookupUser('postfix') !== null ? 'postfix' : 'nobody';
}

/**
 * makeInstanceDirs - <dir>/etc, queue/private and data. As root, laid out as `postfix check`
 * leaves them: dir, etc and queue searchable (a root daemon drops to mail_owner and re-reads
 * main.cf on SIGHUP), data and queue/private owned by mail_owner (the PRNG exchange file is
 * opened, and the socket bound, as it).
 */
export function makeInstanceDirs(dir: string): void {
  const root = process.getuid?.() === 0;
  for (const d of ['etc', 'queue/private', 'data']) mkdirSync(join(dir, d), { recursive: true, mode: 0o700 });
  if (!root) return;
  for (const d of ['.', 'etc', 'queue']) chmodSync(join(dir, d), 0o755);
  const owner = lookupUser(instanceMailOwner());
  // private/ is mail_owner's, as in a real queue: the daemon binds its socket as mail_owner.
  if (owner !== null) for (const d of ['data', 'queue/private']) chownSync(join(dir, d), owner.uid, owner.gid);
}

/**
 * writeInstanceMainCf - <dir>/etc/main.cf of a scratch instance: queue and data directories
 * inside dir, compatibility level 3.6, btree: session caches in the data directory, then
 * `params` (which win).
 */
export function writeInstanceMainCf(dir: string, params: Readonly<Record<string, string>>): void {
  const all: Record<string, string> = {
    queue_directory: join(dir, 'queue'),
    data_directory: join(dir, 'data'),
    compatibility_level: '3.6',
    smtpd_tls_session_cache_database: 'btree:${data_directory}/smtpd_scache',
    smtp_tls_session_cache_database: 'btree:${data_directory}/smtp_scache',
    ...params,
  };
  writeFileSync(join(dir, 'etc/main.cf'), Object.entries(all).map(([k, v]) => `${k} = ${v}\n`).join(''));
}

export interface RunningDaemon {
  readonly dir: string;
  readonly socket: string;
  readonly proc: ChildProcess;
  readonly stderr: () => string;
  stop(): Promise<number | null>;
}

export async function startDaemon(
  opts: { mainCf?: Record<string, string>; args?: string[]; nodeArgs?: string[]; bin?: string } = {},
): Promise<RunningDaemon> {
  const dir = mkdtempSync(join(tmpdir(), 'tlsmgr-'));
  makeInstanceDirs(dir);
  writeInstanceMainCf(dir, { mail_owner: instanceMailOwner(), ...opts.mainCf });
  const socket = join(dir, 'queue/private/tlsmgr');
  const bin = opts.bin ?? join(REPO, 'bin/tlsmgr');
  const proc = spawn(process.execPath, [...shebangNodeArgs(bin), ...(opts.nodeArgs ?? []), bin, ...(opts.args ?? [])], {
    env: { ...process.env, MAIL_CONFIG: join(dir, 'etc') },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  return serving(proc, { dir, socket, what: 'tlsmgr', cleanup: () => rmSync(dir, { recursive: true, force: true }) });
}

/**
 * serving - wait (15 s at most) until the server `proc` started answers on `socket`, and give
 * its RunningDaemon; when it exits or does not answer in time, kill it, clean up and throw
 * "<what> did not start: <its stderr>". stop(): SIGTERM, SIGKILL 5 s later, cleanup.
 */
export async function serving(proc: ChildProcess, o: { dir: string; socket: string; what: string; cleanup: () => void }): Promise<RunningDaemon> {
  let err = '';
  proc.stderr?.on('data', (c: Buffer) => (err += c.toString()));
  const exited = new Promise<number | null>((res) => proc.once('exit', (code) => res(code)));
  const deadline = Date.now() + 15000;
  for (;;) {
    try {
      (await TlsmgrClient.connect(o.socket, { timeoutMs: 2000 })).close();
      break;
    } catch {
      if (Date.now() > deadline || proc.exitCode !== null) {
        proc.kill('SIGKILL');
        o.cleanup();
        throw new Error(`${o.what} did not start: ${err}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return {
    dir: o.dir,
    socket: o.socket,
    proc,
    stderr: () => err,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill('SIGTERM');
        const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(t);
      }
      o.cleanup();
      return proc.exitCode;
    },
  };
}
