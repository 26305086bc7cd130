/*
 * NAME
 *   cluster/open - turn redis: database settings into shared caches and shared ticket keys
 * SYNOPSIS
 *   const cluster = new ClusterLinks(deps)
 *   cluster.openCache                    CacheDeps.openCache: a RemoteScache for redis:<cf>
 *   cluster.ticketKeys(config, fallback): TicketKeySource
 *   cluster.statsLines(): string[]       cluster.close()
 * DESCRIPTION
 *   One Redis connection and one set of cluster keys per configuration file, however many
 *   caches name it: smtpd, smtp and lmtp may all use redis:/etc/postfix/tlsmgr-redis.cf
 *   (their keys carry the cache type). Files are read on first use, at start, before chroot
 *   and privilege drop: the configuration (cluster/config.ts; with a password it must be
 *   owned by root or $mail_owner, mode 0600 or 0640) and its key_file (cluster/keyfile.ts),
 *   which must be mode 0600 or 0400.
 *   Ticket keys are shared when tlsmgr_tktkey_database says so:
 *     ""              (default) through smtpd's session cache database when it is redis:,
 *                     else local keys as Postfix;
 *     redis:<file>    through that Redis configuration;
 *     none            local keys only.
 * DIAGNOSTICS
 *   FatalError for a bad configuration or key file, and for another tlsmgr_tktkey_database
 *   value. Connection problems are never fatal: the daemon starts and serves without Redis
 *   until it can connect.
 */

import type { CommonCacheOptions } from '../cache/caches.js';
import { RemoteScache } from '../cache/rscache.js';
import type { SessionCache } from '../cache/session-cache.js';
import type { Clock } from '../util/clock.js';
import type { CacheType, TlsmgrConfig } from '../config/types.js';
import { FatalError } from '../util/errors.js';
import type { TicketKeyRing } from '../tickets/keys.js';
import { SharedTicketKeys, type TicketKeySource } from '../tickets/shared.js';
import { readRedisConfig, redact } from './config.js';
import { readClusterKeys, type ClusterKeys } from './keyfile.js';
import { RedisLink } from './link.js';

export const REDIS_TYPE = 'redis';

export interface ClusterDeps {
  readonly clock: Clock;
  readonly warn: (msg: string) => void;
  readonly info?: (msg: string) => void;
  /** Cryptographically random bytes (nonces, new ticket keys). */
  readonly random: (n: number) => Buffer;
  /** $mail_owner: may own a configuration file that holds a password (besides root). */
  readonly mailOwner?: string;
}

interface Member {
  readonly link: RedisLink;
  readonly keys: ClusterKeys;
}

/** The configuration file of a "redis:<file>" dict, or undefined for another type. */
export function redisFile(dict: string): string | undefined {
  if (!dict.startsWith(`${REDIS_TYPE}:`)) return undefined;
  return dict.slice(REDIS_TYPE.length + 1);
}

export class ClusterLinks {
  private readonly members = new Map<string, Member>();

  constructor(private readonly deps: ClusterDeps) {}

  /** The member for a configuration file, opened on first use. */
  member(file: string, param: string): Member {
    if (file === '') throw new FatalError(`${param}: missing file name in "${REDIS_TYPE}:"`);
    const have = this.members.get(file);
    if (have !== undefined) return have;
    const config = readRedisConfig(file, this.deps.warn, { mailOwner: this.deps.mailOwner });
    let keys: ClusterKeys;
    try {
      keys = readClusterKeys(config.keyFile, this.deps.random);
    } catch (err) {
      // key_file's value is in the message: a continuation line may have joined the password to it.
      if (err instanceof FatalError && config.password !== '') throw new FatalError(redact(err.message, config.password));
      throw err;
    }
    const link = RedisLink.open(config, this.deps);
    const m = { link, keys };
    this.members.set(file, m);
    return m;
  }

  /** CacheDeps.openCache: a shared cache for redis:<file>, undefined for other types. */
  readonly openCache = (cacheType: CacheType, dict: string, common: CommonCacheOptions): SessionCache | undefined => {
    const file = redisFile(dict);
    if (file === undefined) return undefined;
    const m = this.member(file, `${cacheType}_tls_session_cache_database`);
    return new RemoteScache({
      cacheType,
      dictName: dict,
      link: m.link,
      sealer: m.keys.sealer,
      idKeys: m.keys.idKeys,
      ...common,
    });
  };

  /** The ticket-key source tlsmgr_tktkey_database asks for (spec 2.8 keys, maybe shared). */
  ticketKeys(config: TlsmgrConfig, fallback: TicketKeyRing): TicketKeySource {
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
    const m = this.member(file, param);
    return new SharedTicketKeys({
      link: m.link,
      sealer: m.keys.sealer,
      random: this.deps.random,
      fallback,
      clock: this.deps.clock,
      warn: this.deps.warn,
    });
  }

  /** One statistics line per Redis connection. */
  statsLines(): string[] {
    return [...this.members.values()].map((m) => m.link.statsLine());
  }

  close(): void {
    for (const m of this.members.values()) m.link.close();
    this.members.clear();
  }
}
