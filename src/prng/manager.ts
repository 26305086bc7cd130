/*
 * NAME
 *   prng/manager - tlsmgr's PRNG management: pool, external source, exchange file, timers
 * SYNOPSIS
 *   const prng = await PrngManager.preInit(config, deps)   before chroot / privilege drop
 *   await prng.postInit()                                  after it: reseed + exchange now, timers
 *   prng.seed(n): Buffer     prng.stir(extra?)     prng.beforeExit()     prng.close()
 *   prng.info(): PrngInfo    source name and whether open, exchange file path, last reseed and
 *                            exchange-file save times (never pool or seed bytes)
 * DESCRIPTION
 *   The PRNG half of tlsmgr.c (spec 4, scenarios 34-40):
 *   - preInit (tlsmgr_pre_init): instantiate the pool (CSPRNG, time ^ pid); open the source
 *     named by tls_random_source: `dev:<path>` (device), `egd:<path>` (EGD socket, connected
 *     with a 10 s timeout), any other text a regular file, empty: two warnings. A source that
 *     cannot be opened is a warning (device, EGD) or nothing (file), and is acted on at the
 *     first reseed. Then open the exchange file (as $mail_owner when root).
 *   - postInit (tlsmgr_post_init): periods clamped to 8421504 s; the reseed event runs at
 *     once (only with a non-empty source), then the exchange event; each re-arms itself after
 *     floor(period * r / 255) s with r a byte from the pool (prng/schedule.ts), or, when the
 *     pool cannot produce one, r = pid & 0xff (tlsmgr.c 3.7.21+ takes getpid() & 0xff when
 *     RAND_bytes() fails, there for the exchange timer only; here for both timers), and 255
 *     for a pid whose low byte is 0: an interval of 0 would rerun a failing event, and log
 *     its warning, on every event-loop turn for as long as the pool stays broken.
 *   - reseed event: device: one read of min(tls_random_bytes, 255); EGD: one command-1
 *     exchange; on failure "exit". File: read once (up to tls_random_bytes), warn if nothing
 *     came, then close it and forget the source (later reseeds do nothing). A source that
 *     could not be opened: "exiting to reopen external entropy source <source>", "exit".
 *     Bytes the source delivered but the pool could not take (its CSPRNG draw failed) are a
 *     warning, not a source failure: the pool is then failed and refuses seeds until it can
 *     reseed (prng/pool.ts), and the source stays as it is.
 *   - "exit": update the exchange file, then deps.exit(0) (the real one sleeps 1 s first,
 *     so that master(8) does not respawn in a tight loop).
 *   - exchange event: fstat link count 0 -> "PRNG exchange file was removed -- exiting to
 *     reopen", deps.exit(0) without writing; else the read-stir-write update.
 *   - seed(n): the pool's output, or the pool's error when it cannot produce all n bytes
 *     (the dispatcher answers that with ERR, never with bytes).
 *   - stir(): time (and optional session-cache bytes, never
 *     counted as entropy) as additional input. The dispatcher calls it before every request
 *     and the timer events here after each run; the time goes in once per event-loop turn,
 *     as tlsmgr_loop() does after every event.
 *   - beforeExit (tlsmgr_before_exit): update the exchange file, synchronously.
 * LIMITS
 *   Source reads are asynchronous and bounded by deps.ioTimeoutMs (10 s); the exchange file
 *   cycle is synchronous. Nothing here logs pool, seed, source or exchange-file bytes.
 * DIAGNOSTICS
 *   preInit throws FatalError when the exchange file cannot be opened. Timer-time failures
 *   of the exchange file go to deps.fatal (default msgFatal: "fatal: ...", exit 1), also
 *   when it is the pool that fails in the update: "cannot update PRNG exchange file <path>:
 *   <reason>" (the exit releases the file's lock, and master(8) restarts tlsmgr). Texts:
 *   "no entropy source specified with parameter tls_random_source", "encryption keys etc.
 *   may be predictable", "cannot open entropy device <path>: <err>", "cannot connect to EGD
 *   server <path>: <err>" (warnings); "cannot read from entropy device <path>: <err> --
 *   exiting to reopen", "lost connection to EGD server <path> -- exiting to reconnect",
 *   "exiting to reopen external entropy source <source>" (info); "cannot read from entropy
 *   file <source>: <err>", "PRNG exchange file was removed -- exiting to reopen", "cannot
 *   reseed the PRNG pool: <reason>" (warnings).
 * SEE ALSO
 *   tlsmgr/tlsmgr.c; prng/pool.ts, prng/exchange.ts, prng/schedule.ts, prng/sources/
 */

import type { TlsmgrConfig } from '../config/types.js';
import { FatalError, strerror } from '../util/errors.js';
import { msgFatal, msgInfo, msgVerbose, msgWarn } from '../log/msg.js';
import { errorReason } from '../util/printable.js';
import { ExchangeFile, type UserIds } from './exchange.js';
import { PrngPool, type PoolDeps } from './pool.js';
import { clampPeriod, nextInterval } from './schedule.js';
import { DevSource } from './sources/dev.js';
import { EgdSource } from './sources/egd.js';
import { FileSource } from './sources/file.js';
import { IO_TIMEOUT_MS, type EntropySource } from './sources/source.js';
import { realTimers, runAfter, type Cancel, type TimerApi } from '../util/timer.js';
import { sleepSync } from '../util/sleep.js';

export type PrngConfig = Pick<
  TlsmgrConfig,
  'tlsRandomSource' | 'tlsRandomBytes' | 'tlsRandomReseedPeriod' | 'tlsRandomPrngUpdatePeriod' | 'tlsRandomExchangeName' | 'dataDirectory' | 'mailOwner'
>;

export interface PrngDeps {
  /** $mail_owner's uid and gid (null: unknown); as root the exchange file is opened as this user. */
  readonly owner?: UserIds | null;
  readonly info?: (msg: string) => void;
  readonly warn?: (msg: string) => void;
  /** msg_fatal() for errors in timer events; must not return in production. */
  readonly fatal?: (msg: string) => void;
  /** The exit of the "exiting to reopen" paths; the default sleeps 1 s, then process.exit(). */
  readonly exit?: (code: number) => void;
  /** Bound on each source operation (default 10 s). */
  readonly ioTimeoutMs?: number;
  /** Bound on waiting for the exchange-file lock (default 10 s). */
  readonly lockTimeoutMs?: number;
  readonly timers?: TimerApi;
  readonly pool?: PoolDeps;
  /** Test hook: runs inside the exchange file's locked section. */
  readonly whileLocked?: () => void;
}

const DEV_PREF = 'dev:';
const EGD_PREF = 'egd:';

/** The real "exit": sleep 1 s so that master(8) does not respawn in a tight loop, exit. */
export function exitAfterSleep(code: number): void {
  sleepSync(1000);
  process.exit(code);
}

/** PrngManager.info(): times in ms since the epoch, null for never (since start). */
export interface PrngInfo {
  /** tls_random_source as configured. */
  readonly source: string;
  /** The source is open (a file source is read once, then closed). */
  readonly sourceOpen: boolean;
  readonly exchangeFile: string | null;
  readonly lastReseed: number | null;
  readonly lastExchangeSave: number | null;
}

export class PrngManager {
  private source: EntropySource | null;
  /** tls_random_source as in effect: emptied after a file source has been read once. */
  private sourceName: string;
  private reseedPeriod = 0;
  private exchangePeriod = 0;
  private cancelReseed: Cancel | null = null;
  private cancelExchange: Cancel | null = null;
  private stopped = false;
  private stirredThisTurn = false;
  /** Seconds chosen for the next run of each timer (tests and verbose logging). */
  lastReseedInterval: number | null = null;
  lastExchangeInterval: number | null = null;
  /** When (ms since the epoch) a source last delivered bytes, and the exchange file was last saved. */
  private reseededAt: number | null = null;
  private savedAt: number | null = null;

  private constructor(
    private readonly config: PrngConfig,
    private readonly deps: PrngDeps,
    readonly pool: PrngPool,
    source: EntropySource | null,
    readonly exchange: ExchangeFile | null,
  ) {
    this.source = source;
    this.sourceName = config.tlsRandomSource;
  }

  /** tlsmgr_pre_init(): pool, source and exchange file, while still privileged. */
  static async preInit(config: PrngConfig, deps: PrngDeps = {}): Promise<PrngManager> {
    const warn = deps.warn ?? msgWarn;
    const timeoutMs = deps.ioTimeoutMs ?? IO_TIMEOUT_MS;
    const pool = PrngPool.create(deps.pool);
    const name = config.tlsRandomSource;
    let source: EntropySource | null = null;
    if (name === '') {
      warn('no entropy source specified with parameter tls_random_source');
      warn('encryption keys etc. may be predictable');
    } else if (name.startsWith(DEV_PREF)) {
      const path = name.slice(DEV_PREF.length);
      try {
        source = DevSource.open(path, { timeoutMs });
      } catch (err) {
        warn(`cannot open entropy device ${path}: ${strerror(err)}`);
      }
    } else if (name.startsWith(EGD_PREF)) {
      const path = name.slice(EGD_PREF.length);
      try {
        source = await EgdSource.connect(path, { timeoutMs, info: deps.info ?? msgInfo });
      } catch (err) {
        warn(`cannot connect to EGD server ${path}: ${strerror(err)}`);
      }
    } else {
      try {
        source = FileSource.open(name, { timeoutMs });
      } catch {
        // Silent in Postfix as well: the first reseed reports it ("exiting to reopen").
      }
    }
    let exchange: ExchangeFile | null = null;
    if (config.tlsRandomExchangeName !== '') {
      try {
        exchange = ExchangeFile.open(config.tlsRandomExchangeName, {
          owner: deps.owner ?? null,
          mailOwner: config.mailOwner,
          dataDirectory: config.dataDirectory,
          warn,
          lockTimeoutMs: deps.lockTimeoutMs,
          whileLocked: deps.whileLocked,
        });
      } catch (err) {
        source?.close();
        throw err;
      }
    }
    return new PrngManager(config, deps, pool, source, exchange);
  }

  /** tlsmgr_post_init(): reseed and exchange-file update now, then on their timers. */
  async postInit(): Promise<void> {
    if (this.sourceName !== '') {
      this.reseedPeriod = clampPeriod(this.config.tlsRandomReseedPeriod);
      await this.reseedEvent();
    }
    if (this.exchange !== null && !this.stopped) {
      this.exchangePeriod = clampPeriod(this.config.tlsRandomPrngUpdatePeriod);
      this.exchangeEvent();
    }
  }

  /** Bytes for a "seed" reply: exactly n of them, or the pool's error. */
  seed(n: number): Buffer {
    return this.pool.generate(n);
  }

  /**
   * Mix the time of day (and optional non-entropy data) into the pool. The time goes in once
   * per event-loop turn, as tlsmgr_loop() does: the requests one turn serves are microseconds
   * apart, and each time stir costs the next seed eight more HMACs (a Generate with additional
   * input), which per request would more than halve the daemon's seed throughput.
   */
  stir(extra?: Buffer): void {
    if (extra !== undefined) {
      this.pool.stir(extra);
      return;
    }
    if (this.stirredThisTurn) return;
    this.stirredThisTurn = true;
    this.pool.stir();
    setImmediate(() => {
      this.stirredThisTurn = false;
    }).unref();
  }

  /** What tlsmgr-ctl status shows: the source's name and times, never pool or seed bytes. */
  info(): PrngInfo {
    return {
      source: this.config.tlsRandomSource,
      sourceOpen: this.source !== null,
      exchangeFile: this.exchange?.path ?? null,
      lastReseed: this.reseededAt,
      lastExchangeSave: this.savedAt,
    };
  }

  /** tlsmgr_before_exit(): save the pool into the exchange file. */
  beforeExit(): void {
    if (this.exchange === null || this.stopped) return;
    this.guard(() => this.exchange?.update(this.pool));
  }

  /** Stop the timers and close the source and the exchange file. */
  close(): void {
    this.stopTimers();
    this.stopped = true;
    this.source?.close();
    this.source = null;
    this.exchange?.close();
  }

  /** tlsmgr_reseed_event(). */
  private async reseedEvent(): Promise<void> {
    this.cancelReseed = null;
    if (this.stopped) return;
    const src = this.source;
    let poolError: unknown = null;
    // The source did its part even when the pool cannot take the bytes: not a source failure.
    const feed = (b: Buffer): void => {
      try {
        this.pool.addEntropy(b);
      } catch (err) {
        poolError ??= err;
      }
    };
    if (this.sourceName !== '') {
      let mustExit = false;
      if (src === null) {
        (this.deps.info ?? msgInfo)(`exiting to reopen external entropy source ${this.sourceName}`);
        mustExit = true;
      } else if (src.kind === 'dev') {
        const r = await src.read(this.config.tlsRandomBytes, feed);
        if (r.count <= 0) {
          (this.deps.info ?? msgInfo)(`cannot read from entropy device ${src.path}: ${r.error} -- exiting to reopen`);
          mustExit = true;
        } else {
          msgVerbose(1, `read ${r.count} bytes from entropy device ${src.path}`);
          this.reseededAt = Date.now();
        }
      } else if (src.kind === 'egd') {
        const r = await src.read(this.config.tlsRandomBytes, feed);
        if (r.count <= 0) {
          (this.deps.info ?? msgInfo)(`lost connection to EGD server ${src.path} -- exiting to reconnect`);
          mustExit = true;
        } else {
          msgVerbose(1, `got ${r.count} bytes from EGD server ${src.path}`);
          this.reseededAt = Date.now();
        }
      } else {
        const r = await src.read(this.config.tlsRandomBytes, feed);
        if (r.count <= 0) (this.deps.warn ?? msgWarn)(`cannot read from entropy file ${this.sourceName}: ${r.error}`);
        else {
          msgVerbose(1, `read ${r.count} bytes from entropy file ${src.path}`);
          this.reseededAt = Date.now();
        }
        src.close();
        this.source = null;
        this.sourceName = '';
      }
      if (poolError !== null) (this.deps.warn ?? msgWarn)(`cannot reseed the PRNG pool: ${errorReason(poolError)}`);
      if (this.stopped) return;
      if (mustExit) {
        // Save the pool before going: the exchange file is what survives the restart.
        if (this.exchange !== null) this.guard(() => this.exchange?.update(this.pool));
        if (this.stopped) return; // that save was fatal
        this.stopTimers();
        this.stopped = true;
        (this.deps.exit ?? exitAfterSleep)(0);
        return;
      }
    }
    const next = nextInterval(this.reseedPeriod, this.timerByte());
    this.lastReseedInterval = next;
    this.cancelReseed = runAfter(next, () => void this.reseedEvent(), this.deps.timers ?? realTimers);
  }

  /** tlsmgr_prng_exch_event(). */
  private exchangeEvent(): void {
    this.cancelExchange = null;
    const exch = this.exchange;
    if (exch === null || this.stopped) return;
    msgVerbose(1, 'tlsmgr_prng_exch_event: update PRNG exchange file');
    const ok = this.guard(() => {
      if (exch.removed()) {
        (this.deps.warn ?? msgWarn)('PRNG exchange file was removed -- exiting to reopen');
        return false;
      }
      exch.update(this.pool);
      this.savedAt = Date.now();
      return true;
    });
    if (ok !== true) {
      if (ok === false) {
        this.stopTimers();
        this.stopped = true;
        (this.deps.exit ?? exitAfterSleep)(0);
      }
      return;
    }
    const next = nextInterval(this.exchangePeriod, this.timerByte());
    this.lastExchangeInterval = next;
    this.cancelExchange = runAfter(next, () => this.exchangeEvent(), this.deps.timers ?? realTimers);
  }

  /*
   * timerByte - r for the next timer interval, after the time stir of the event: the pool's
   * byte, or, when the pool cannot produce one, pid & 0xff but never 0 (see the header).
   */
  private timerByte(): number {
    try {
      this.pool.stir();
      return this.pool.randomByte();
    } catch {
      return (process.pid & 0xff) || 0xff;
    }
  }

  /**
   * Run an exchange-file step; a failure goes to deps.fatal (msg_fatal) and yields undefined.
   * A FatalError keeps its Postfix text; anything else (the pool failing inside the update)
   * is named as an update failure: exiting releases the file's lock, which a thrown error
   * in a timer would leave to a crash.
   */
  private guard<T>(fn: () => T): T | undefined {
    try {
      return fn();
    } catch (err) {
      this.stopTimers();
      this.stopped = true;
      const path = this.exchange?.path ?? this.config.tlsRandomExchangeName;
      (this.deps.fatal ?? msgFatal)(err instanceof FatalError ? err.message : `cannot update PRNG exchange file ${path}: ${errorReason(err)}`);
      return undefined;
    }
  }

  private stopTimers(): void {
    this.cancelReseed?.();
    this.cancelExchange?.();
    this.cancelReseed = null;
    this.cancelExchange = null;
  }
}
