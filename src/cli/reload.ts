/*
 * NAME
 *   cli/reload - apply a re-read main.cf to a running standalone daemon (SIGHUP)
 * SYNOPSIS
 *   applyReload(current: TlsmgrConfig, fresh: TlsmgrConfig, live: LiveSettings): string[]
 * DESCRIPTION
 *   `postfix reload` restarts a tlsmgr under master(8), emptying its caches. A standalone
 *   tlsmgr reloads on SIGHUP instead and keeps its caches and ticket keys: what can change in
 *   place is applied (input bounds of the attr0 decoder and the protocol, the process-wide
 *   client bounds and ipc_timeout, the syslog name in the log tag); every other changed parameter (cache databases, timeouts and limits, PRNG
 *   settings, directories, mail_owner) is returned by name, and the caller warns that it
 *   needs a restart. Nothing is half-applied: the fresh configuration was fully validated by
 *   config/load before this is called.
 */

import type { TlsmgrConfig } from '../config/types.js';
import type { GuardLimits } from '../server/guard.js';

/** The objects the running daemon reads its live settings from (mutated in place). */
export interface LiveSettings {
  readonly limits: { nameLimit: number; valueLimit: number; countLimit: number };
  readonly scan: { cacheIdLimit: number; sessionLimit: number };
  readonly guard: GuardLimits;
  readonly setSyslogName: (name: string) => void;
}

/** Config fields applied in place; everything else needs a restart. */
const LIVE_FIELDS = new Set<keyof TlsmgrConfig>([
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

/** Apply what can change in place; return the names of changed fields that need a restart. */
export function applyReload(current: TlsmgrConfig, fresh: TlsmgrConfig, live: LiveSettings): string[] {
  live.limits.nameLimit = fresh.attrNameLimit;
  live.limits.valueLimit = fresh.attrValueLimit;
  live.limits.countLimit = fresh.attrCountLimit;
  live.scan.cacheIdLimit = fresh.cacheIdLimit;
  live.scan.sessionLimit = fresh.sessionLimit;
  live.guard.connectionLimit = fresh.connectionLimit;
  live.guard.inputBufferLimit = fresh.inputBufferLimit;
  live.guard.requestDeadline = fresh.ipcTimeout;
  if (fresh.syslogName !== current.syslogName) live.setSyslogName(fresh.syslogName);
  const restart: string[] = [];
  for (const key of Object.keys(fresh) as Array<keyof TlsmgrConfig>) {
    if (LIVE_FIELDS.has(key)) continue;
    if (JSON.stringify(fresh[key]) !== JSON.stringify(current[key])) restart.push(key);
  }
  return restart;
}
