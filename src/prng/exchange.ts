/*
 * NAME
 *   prng/exchange - the PRNG exchange file (tls_random_exchange_name)
 * SYNOPSIS
 *   ExchangeFile.open(name, opts): ExchangeFile        (before the privilege drop)
 *   exch.update(pool)     read, stir, write: 1024 bytes at offset 0 under an exclusive flock
 *   exch.removed(): boolean                            exch.close()
 * DESCRIPTION
 *   tls_prng_exch_open() / tls_prng_exch_update() (spec 4.5):
 *   - open: O_RDWR|O_CREAT, mode 0600, no O_TRUNC, with the effective uid/gid (and the group
 *     list) switched to $mail_owner when running as root, as tlsmgr_pre_init() does around
 *     SAVE_AND_SET_EUGID: the file is created owned by mail_owner, and a mail_owner-writable
 *     directory cannot trick root into opening, say, a symlink to a system file. The name is
 *     first passed through data_redirect_file() (master/redirect.ts): a parent directory that exists and is not
 *     owned by mail_owner sends the file to $data_directory (two warnings).
 *   - update: flock(LOCK_EX) (real flock(2) through fs-ext, so Postfix's own tlsmgr and this
 *     one exclude each other on a shared file), read up to 1024 bytes at offset 0 and, if any,
 *     feed them to the pool (other processes may have added entropy), generate 1024 bytes,
 *     write them at offset 0 (a longer file keeps its tail; a short one grows), unlock.
 *   - removed(): fstat link count 0, i.e. the file was deleted under us.
 *   The lock is taken with LOCK_NB and retried every 10 ms for up to lockTimeoutMs (10 s):
 *   Postfix blocks without bound, which would freeze the daemon's only thread for as long as
 *   another process holds the lock.
 * LIMITS
 *   Synchronous (it also runs in exit paths); the whole cycle is a few small system calls.
 *   opts.whileLocked is a test hook: it runs with the lock held, after the write.
 * DIAGNOSTICS
 *   FatalError, all in Postfix's words: "tls_prng_exch_open: cannot open PRNG exchange file
 *   <path>: <err>", "cannot lock|seek|read|write|unlock PRNG exchange file <path>: <err>",
 *   "cannot fstat() the PRNG exchange file: <err>". Redirect warnings go to opts.warn.
 * SEE ALSO
 *   tls/tls_prng_exch.c, global/data_redirect.c, util/set_eugid.c, util/myflock.c
 */

import { constants, fstatSync, openSync, readSync, writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { FatalError, strerror } from '../util/errors.js';
import { closeQuietly } from './sources/source.js';
import { asEffectiveUser, type UserIds } from '../master/eugid.js';
import { dataRedirectFile } from '../master/redirect.js';
import { sleepSync } from '../util/sleep.js';

/** TLS_PRNG_EXCH_SIZE. */
export const EXCH_SIZE = 1024;
export const LOCK_TIMEOUT_MS = 10_000;
const LOCK_RETRY_MS = 10;

interface FsExt {
  flockSync(fd: number, flags: 'ex' | 'exnb' | 'sh' | 'shnb' | 'un'): void;
}
const require = createRequire(import.meta.url);
const fsExt = require('fs-ext') as FsExt;

/** What update() needs from the pool. */
export interface ExchangePool {
  addEntropy(bytes: Buffer): void;
  generate(n: number): Buffer;
}

export type { UserIds };

export interface ExchangeOpenOptions {
  /** $mail_owner's ids; with root privileges the file is opened as this user. */
  readonly owner: UserIds | null;
  readonly mailOwner: string;
  readonly dataDirectory: string;
  readonly warn: (msg: string) => void;
  readonly lockTimeoutMs?: number;
  /** Test hook: runs with the lock held, right after the write. */
  readonly whileLocked?: () => void;
}

export class ExchangeFile {
  private fd: number | null;

  private constructor(readonly path: string, fd: number, private readonly lockTimeoutMs: number, private readonly whileLocked?: () => void) {
    this.fd = fd;
  }

  static open(name: string, o: ExchangeOpenOptions): ExchangeFile {
    const open = (): ExchangeFile => {
      const path = dataRedirectFile(name, { ownerUid: o.owner?.uid ?? null, mailOwner: o.mailOwner, dataDirectory: o.dataDirectory, warn: o.warn });
      let fd: number;
      try {
        fd = openSync(path, constants.O_RDWR | constants.O_CREAT | constants.O_NOCTTY, 0o600);
      } catch (err) {
        throw new FatalError(`tls_prng_exch_open: cannot open PRNG exchange file ${path}: ${strerror(err)}`, { cause: err });
      }
      return new ExchangeFile(path, fd, o.lockTimeoutMs ?? LOCK_TIMEOUT_MS, o.whileLocked);
    };
    return asEffectiveUser(o.owner, open);
  }

  /** The read-stir-write cycle of tls_prng_exch_update(). */
  update(pool: ExchangePool): void {
    const fd = this.descriptor();
    this.lock(fd);
    const buf = Buffer.alloc(EXCH_SIZE);
    try {
      let count: number;
      try {
        count = readSync(fd, buf, 0, EXCH_SIZE, 0);
      } catch (err) {
        throw this.fatal('read', err);
      }
      if (count > 0) pool.addEntropy(buf.subarray(0, count));
      const fresh = pool.generate(EXCH_SIZE);
      let written: number;
      try {
        written = writeSync(fd, fresh, 0, EXCH_SIZE, 0);
      } catch (err) {
        throw this.fatal('write', err);
      } finally {
        fresh.fill(0);
      }
      if (written !== EXCH_SIZE) throw this.fatal('write', Object.assign(new Error('short write'), { code: 'EIO' }));
      this.whileLocked?.();
    } finally {
      buf.fill(0);
    }
    try {
      fsExt.flockSync(fd, 'un');
    } catch (err) {
      throw this.fatal('unlock', err);
    }
  }

  /** True when the file has been removed (link count 0). */
  removed(): boolean {
    try {
      return fstatSync(this.descriptor()).nlink === 0;
    } catch (err) {
      throw new FatalError(`cannot fstat() the PRNG exchange file: ${strerror(err)}`, { cause: err });
    }
  }

  close(): void {
    this.fd = closeQuietly(this.fd);
  }

  private descriptor(): number {
    if (this.fd === null) throw new FatalError(`PRNG exchange file ${this.path} is closed`);
    return this.fd;
  }

  private lock(fd: number): void {
    const deadline = Date.now() + this.lockTimeoutMs;
    for (;;) {
      try {
        fsExt.flockSync(fd, 'exnb');
        return;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if ((code !== 'EAGAIN' && code !== 'EWOULDBLOCK' && code !== 'EINTR') || Date.now() >= deadline) throw this.fatal('lock', err);
      }
      sleepSync(LOCK_RETRY_MS);
    }
  }

  private fatal(op: 'lock' | 'read' | 'write' | 'unlock', err: unknown): FatalError {
    return new FatalError(`cannot ${op} PRNG exchange file ${this.path}: ${strerror(err)}`, { cause: err });
  }
}
