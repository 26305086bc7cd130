/*
 * NAME
 *   daemon/reload - what a re-read main.cf may change in a running standalone daemon (SIGHUP)
 * SYNOPSIS
 *   applyLive(fresh: TlsmgrConfig, live: LiveSettings): void
 *   needsRestart(current: TlsmgrConfig, fresh: TlsmgrConfig): string[]
 *   LIVE_FIELDS
 * DESCRIPTION
 *   `postfix reload` restarts a tlsmgr under master(8), emptying its caches. A standalone
 *   tlsmgr reloads on SIGHUP instead (Daemon.reload()) and keeps its caches and ticket keys.
 *   What can change in place is LIVE_FIELDS: the input bounds of the attr0 decoder and the
 *   protocol, the process-wide client bounds and ipc_timeout (applyLive() writes them into the
 *   objects the running service reads), and the syslog name in the log tag (cli/main's part).
 *   needsRestart() names every other changed parameter (cache databases, timeouts and limits,
 *   PRNG settings, directories, mail_owner), and the daemon warns that it needs a restart.
 *   Nothing is half-applied: the fresh configuration was fully validated by config/load
 *   before either is called.
 */

import type { TlsmgrConfig } from '../config/types.js';
import type { GuardLimits } from '../server/guard.js';

/** The objects the running service reads its live settings from (mutated in place). */
export interface LiveSettings {
  readonly limits: { nameLimit: number; valueLimit: number; countLimit: number };
  readonly scan: { cacheIdLimit: number; sessionLimit: number };
  readonly guard: GuardLimits;
}

/** Config fields applied in place; everything else needs a restart. */
export const LIVE_FIELDS: ReadonlySet<keyof TlsmgrConfig> = new Set<keyof TlsmgrConfig>([
  'attrNameLimit',
  'attrValueLimit',
  'attrCountLimit',
  'cacheIdLimit',
  'sessionLimit',
  'connectionLimit',
  'inputBufferLimit',
  'ipcTimeout',
  'syslogName',
  'configDirectory',
]);

/** Write the live fields of `fresh` into the running service's settings. */
export function applyLive(fresh: TlsmgrConfig, live: LiveSettings): void {
  live.limits.nameLimit = fresh.attrNameLimit;
  live.limits.valueLimit = fresh.attrValueLimit;
  live.limits.countLimit = fresh.attrCountLimit;
  live.scan.cacheIdLimit = fresh.cacheIdLimit;
  live.scan.sessionLimit = fresh.sessionLimit;
  live.guard.connectionLimit = fresh.connectionLimit;
  live.guard.inputBufferLimit = fresh.inputBufferLimit;
  live.guard.requestDeadline = fresh.ipcTimeout;
}

/** The names of the fields that changed and are not applied in place, in config order. */
export function needsRestart(current: TlsmgrConfig, fresh: TlsmgrConfig): string[] {
  const restart: string[] = [];
  for (const key of Object.keys(fresh) as Array<keyof TlsmgrConfig>) {
    if (LIVE_FIELDS.has(key)) continue;
    if (JSON.stringify(fresh[key]) !== JSON.stringify(current[key])) restart.push(key);
  }
  return restart;
}
