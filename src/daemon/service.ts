/*
 * NAME
 *   daemon/service - compose the request path: PRNG, session caches, ticket keys, dispatcher
 * SYNOPSIS
 *   const service = await openService(config, { streamName, oneShot, owner })
 *   service.ctx                       what every listener serves connections with
 *   await service.postInit()          service.reload(fresh)          service.beforeExit()
 * DESCRIPTION
 *   The one place where the daemon's pieces are put together, as tlsmgr.c's
 *   tlsmgr_pre_init() does; it runs in the Daemon's pre-init phase, with root privileges
 *   and before the chroot:
 *   - the PRNG first: entropy source and exchange file (opened as $mail_owner when root);
 *   - the session caches (a file per cache, given to $mail_owner when root; redis:<file>
 *     through one Redis connection per file) and the ticket keys (shared through Redis when
 *     tlsmgr_tktkey_database says so, else a local ring);
 *   - the dispatcher and the connection context: input bounds, the stream name used in
 *     warnings, and one process-wide ConnectionGuard;
 *   - the metrics (metrics/): the dispatcher, the seed function and the ticket keys count
 *     into plain numbers (metrics/meter.ts) and a prom-client registry reads them and the
 *     caches, the guard and the Redis links on demand (metrics/registry.ts). The registry,
 *     with prom-client's process metrics, is made here, before the chroot, where
 *     node_modules and /proc are still reachable.
 *   A one-shot run (-S) keeps its caches in memory and its ticket keys local: it never
 *   touches (and empties) the files of a daemon that may be running, nor a cluster; it has
 *   no metrics registry (nobody could ask it).
 *   The result is the daemon's first part (daemon/part.ts): postInit() starts the timers
 *   (PRNG reseed and exchange update first, then the cache sweep; -S: the PRNG only),
 *   reload() applies a re-read main.cf's live settings (daemon/reload.ts), beforeExit()
 *   saves the exchange file and closes the PRNG, caches, ticket keys, Redis links and guard,
 *   in that order (tlsmgr_before_exit).
 *   $mail_owner comes resolved (master/passwd checkMailOwner): nothing here looks it up.
 * DIAGNOSTICS
 *   openService() throws FatalError (exchange file, cache database, Redis configuration or
 *   key file); the caches and Redis links opened before the failure are closed first.
 * SEE ALSO
 *   tlsmgr/tlsmgr.c tlsmgr_pre_init(), tlsmgr_post_init(), tlsmgr_before_exit()
 */

import { randomBytes } from 'node:crypto';
import { CacheTable } from '../cache/caches.js';
import { sharedByTypes, storeOpener } from '../cache/open.js';
import { ClusterMembers } from '../cluster/members.js';
import type { TlsmgrConfig } from '../config/types.js';
import { msgInfo, msgWarn } from '../log/msg.js';
import type { UserIds } from '../master/passwd.js';
import { PrngManager } from '../prng/manager.js';
import { MeteredDispatcher, MeteredTicketKeys, ServiceMeter } from '../metrics/meter.js';
import { TlsmgrMetrics } from '../metrics/registry.js';
import type { ConnectionContext } from '../server/connection.js';
import { ConnectionGuard, type GuardLimits } from '../server/guard.js';
import { TicketKeyRing } from '../tickets/keys.js';
import { openTicketKeys } from '../tickets/open.js';
import type { TicketKeySource } from '../tickets/shared.js';
import { systemClock } from '../util/clock.js';
import { Sealer } from '../util/seal.js';
import { pooledRandom } from './random-pool.js';
import { applyLive, type LiveSettings } from './reload.js';

export interface ServiceOptions {
  /** The stream name in warnings: "<service_name> socket", or "unknown_stream" for -S. */
  readonly streamName: string;
  /** -S: caches in memory, local ticket keys, no cache sweep. */
  readonly oneShot: boolean;
  /** $mail_owner, resolved once: owns the files a root daemon creates. */
  readonly owner: UserIds;
}

export interface Service {
  readonly ctx: ConnectionContext;
  readonly caches: CacheTable;
  readonly tickets: TicketKeySource;
  readonly prng: PrngManager;
  readonly cluster: ClusterMembers;
  /** The plain counters of the request path. */
  readonly meter: ServiceMeter;
  /** The Prometheus metrics (none for -S). */
  readonly metrics: TlsmgrMetrics | undefined;
  /** Timers, after chroot and privilege drop (tlsmgr_post_init). */
  postInit(): Promise<void>;
  /** Apply the live settings of a re-read main.cf. */
  reload(fresh: TlsmgrConfig): void;
  /** Save the exchange file, release everything (tlsmgr_before_exit). */
  beforeExit(): void;
}

export async function openService(config: TlsmgrConfig, opts: ServiceOptions): Promise<Service> {
  const { owner, oneShot } = opts;
  // tlsmgr_pre_init() order: entropy source and PRNG exchange file first, then the caches.
  const prng = await PrngManager.preInit(config, { owner });
  // The seal nonces come from pooled CSPRNG output: one randomBytes() trip per 4 KiB, not per update.
  const random = pooledRandom();
  const sealer = Sealer.fresh(random);
  // redis: caches and shared ticket keys (cluster mode); -S stays local, like its caches.
  const cluster = new ClusterMembers({ clock: systemClock, warn: msgWarn, info: msgInfo, random, mailOwner: config.mailOwner });
  const openStore = oneShot ? undefined : storeOpener({ mailOwner: config.mailOwner, lookupUser: () => owner, members: cluster, redirect: { dataDirectory: config.dataDirectory, warn: msgWarn } });
  const meter = new ServiceMeter();
  let caches: CacheTable | undefined;
  let local: TicketKeyRing;
  let tickets: TicketKeySource;
  try {
    caches = new CacheTable(config, {
      clock: systemClock,
      warn: msgWarn,
      info: msgInfo,
      openStore,
      sharedByTypes,
      sealer,
      statsLines: () => cluster.statsLines(),
    });
    local = new TicketKeyRing(randomBytes);
    const source = oneShot ? local : openTicketKeys(config, local, { members: cluster, random, clock: systemClock, warn: msgWarn, info: msgInfo });
    tickets = new MeteredTicketKeys(source, meter);
  } catch (err) {
    caches?.close();
    cluster.close();
    throw err;
  }
  const dispatcher = new MeteredDispatcher(
    { caches, tickets, seed: meter.countSeed((n) => prng.seed(n)), stir: () => prng.stir(), clock: systemClock, warn: msgWarn },
    meter,
  );
  // Objects the connections read on every request: a reload writes into them (reload.ts).
  const limits = { nameLimit: config.attrNameLimit, valueLimit: config.attrValueLimit, countLimit: config.attrCountLimit };
  const scan = { path: opts.streamName, cacheIdLimit: config.cacheIdLimit, sessionLimit: config.sessionLimit, warn: msgWarn };
  const guardLimits: GuardLimits = {
    connectionLimit: config.connectionLimit,
    inputBufferLimit: config.inputBufferLimit,
    requestDeadline: config.ipcTimeout,
  };
  const live: LiveSettings = { limits, scan, guard: guardLimits };
  const guard = new ConnectionGuard(guardLimits, { warn: msgWarn, where: opts.streamName });
  const ctx: ConnectionContext = { dispatcher, limits, scan, guard };
  const ring = local;
  const metrics = oneShot
    ? undefined
    : new TlsmgrMetrics({
        caches,
        meter,
        ticketKeysCreated: () => ring.created,
        connections: () => guard.open,
        links: () => cluster.links(),
      });
  return {
    ctx,
    caches,
    tickets,
    prng,
    cluster,
    meter,
    metrics,
    async postInit() {
      await prng.postInit();
      if (!oneShot) caches.startCleanup();
    },
    reload(fresh) {
      applyLive(fresh, live);
    },
    beforeExit() {
      prng.beforeExit();
      prng.close();
      caches.close();
      tickets.clear();
      cluster.close();
      ctx.guard?.stop();
    },
  };
}
