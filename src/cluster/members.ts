/*
 * NAME
 *   cluster/members - this daemon's membership of Redis groups: one connection and one set
 *   of cluster keys per redis: configuration file
 * SYNOPSIS
 *   const members = new ClusterMembers(deps)
 *   members.member(file, param): ClusterMember        { link, keys }, opened on first use
 *   members.statsLines(): string[]                    members.close()
 *   members.links(): { source, connected, counters }[] what tlsmgr-ctl status shows
 *   redisFile(dict): string | undefined               REDIS_TYPE
 * DESCRIPTION
 *   However many users name one configuration file -- the smtpd, smtp and lmtp caches
 *   (cache/open.ts, whose keys carry the cache type) and the shared ticket keys
 *   (tickets/open.ts) may all say redis:/etc/postfix/tlsmgr-redis.cf -- there is one Redis
 *   connection (cluster/link.ts) and one cluster key ring (cluster/keyfile.ts) for it.
 *   Files are read on first use, at start, before chroot and privilege drop: the
 *   configuration (cluster/config.ts; with a password it must be owned by root or
 *   $mail_owner, mode 0600 or 0640) and its key_file, which must be mode 0600 or 0400.
 * DIAGNOSTICS
 *   FatalError for a bad configuration or key file (a password that a continuation line
 *   joined to key_file's value is cut out of the key file's message), and for "redis:"
 *   without a file name. Connection problems are never fatal: the daemon starts and serves
 *   without Redis until it can connect.
 */

import type { Clock } from '../util/clock.js';
import { FatalError } from '../util/errors.js';
import { readRedisConfig, redact } from './config.js';
import { readClusterKeys, type ClusterKeys } from './keyfile.js';
import { RedisLink, type LinkCounters } from './link.js';

/** One Redis connection as tlsmgr-ctl status shows it. */
export interface LinkInfo {
  /** The redis: configuration file. */
  readonly source: string;
  readonly connected: boolean;
  readonly counters: Readonly<LinkCounters>;
}

/** The map type of a Redis group's table: redis:<configuration file>. */
export const REDIS_TYPE = 'redis';

/** The configuration file of a "redis:<file>" dict, or undefined for another type. */
export function redisFile(dict: string): string | undefined {
  if (!dict.startsWith(`${REDIS_TYPE}:`)) return undefined;
  return dict.slice(REDIS_TYPE.length + 1);
}

export interface ClusterDeps {
  readonly clock: Clock;
  readonly warn: (msg: string) => void;
  readonly info?: (msg: string) => void;
  /** Cryptographically random bytes (seal nonces). */
  readonly random: (n: number) => Buffer;
  /** $mail_owner: may own a configuration file that holds a password (besides root). */
  readonly mailOwner?: string;
}

export interface ClusterMember {
  readonly link: RedisLink;
  readonly keys: ClusterKeys;
}

export class ClusterMembers {
  private readonly members = new Map<string, ClusterMember>();

  constructor(private readonly deps: ClusterDeps) {}

  /** The member for a configuration file, opened on first use; `param` names the setting. */
  member(file: string, param: string): ClusterMember {
    if (file === '') throw new FatalError(`${param}: missing file name in "${REDIS_TYPE}:"`);
    const have = this.members.get(file);
    if (have !== undefined) return have;
    const config = readRedisConfig(file, this.deps.warn, { mailOwner: this.deps.mailOwner });
    let keys: ClusterKeys;
    try {
      keys = readClusterKeys(config.keyFile, this.deps.random, { mailOwner: this.deps.mailOwner });
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

  /** One statistics line per Redis connection. */
  statsLines(): string[] {
    return [...this.members.values()].map((m) => m.link.statsLine());
  }

  /** Each Redis connection's state and counters (no address beyond the file, no password). */
  links(): LinkInfo[] {
    return [...this.members.values()].map((m) => ({ source: m.link.config.source, connected: m.link.ready, counters: { ...m.link.counters } }));
  }

  close(): void {
    for (const m of this.members.values()) m.link.close();
    this.members.clear();
  }
}
