/*
 * NAME
 *   tickets/open - the session-ticket key source tlsmgr_tktkey_database asks for
 * SYNOPSIS
 *   openTicketKeys(config, fallback, deps): TicketKeySource
 * DESCRIPTION
 *   Ticket keys (spec 2.8) are shared by a Redis group when tlsmgr_tktkey_database says so:
 *     ""              (default) through smtpd's session cache database when it is redis:,
 *                     else local keys as Postfix;
 *     redis:<file>    through that Redis configuration;
 *     none            local keys only.
 *   Shared keys (tickets/shared.ts) use the connection and cluster key of the file's member
 *   (cluster/members.ts), the same as the caches that name it, and fall back to `fallback`,
 *   the local ring, which is also the source when nothing is shared. deps.info gets the
 *   lines of a rotate or revoke made by another member of the group.
 * DIAGNOSTICS
 *   FatalError for another tlsmgr_tktkey_database value, and those of ClusterMembers.member().
 */

import type { Clock } from '../util/clock.js';
import type { TlsmgrConfig } from '../config/types.js';
import { FatalError } from '../util/errors.js';
import { redisFile, type ClusterMembers } from '../cluster/members.js';
import type { TicketKeyRing } from './keys.js';
import { SharedTicketKeys, type TicketKeySource } from './shared.js';

export interface TicketKeysDeps {
  readonly members: ClusterMembers;
  /** Cryptographically random bytes (new ticket keys). */
  readonly random: (n: number) => Buffer;
  readonly clock: Clock;
  readonly warn: (msg: string) => void;
  /** Where a rotate or revoke made by another member of the group is reported. */
  readonly info?: (msg: string) => void;
}

export function openTicketKeys(config: TlsmgrConfig, fallback: TicketKeyRing, deps: TicketKeysDeps): TicketKeySource {
  const param = 'tlsmgr_tktkey_database';
  const v = config.tktkeyDatabase;
  let file: string | undefined;
  if (v === '') file = redisFile(config.cache.smtpd.database);
  else if (v === 'none') file = undefined;
  else {
    file = redisFile(v);
    if (file === undefined) throw new FatalError(`${param} = ${v}: use redis:<file>, none, or leave it empty`);
  }
  if (file === undefined) return fallback;
  const m = deps.members.member(file, param);
  return new SharedTicketKeys({
    link: m.link,
    sealer: m.keys.sealer,
    random: deps.random,
    fallback,
    clock: deps.clock,
    warn: deps.warn,
    info: deps.info,
  });
}
