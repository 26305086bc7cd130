/*
 * NAME
 *   server/dispatch - serve one typed tlsmgr request: seed, policy, lookup, update, delete, tktkey
 * SYNOPSIS
 *   const d = new Dispatcher(deps); d.handle(req: Request): Buffer
 * DESCRIPTION
 *   The request branches of tlsmgr.c tlsmgr_service() (spec 2.3-2.8), after the scan:
 *   - seed: size 1..255 -> that many random bytes; else `bogus seed length` and FAIL;
 *   - policy/lookup/update/delete: the cache type must be smtpd, smtp or lmtp (`bogus cache
 *     type`, FAIL); policy answers for disabled types too; the others FAIL on a disabled type;
 *     lookup hit OK / miss ERR; update always OK; delete OK if it existed, else ERR;
 *   - tktkey: keyname empty or 16 bytes (else `invalid session ticket key name length`,
 *     FAIL); the smtpd timeout drives the keys (<= 0: ERR); an unknown name: ERR with the name
 *     echoed, as Postfix 3.7 does.
 *   Replies are encoded here; FAIL replies always carry empty data. The clear session of a
 *   lookup hit and of an update is wiped once the reply is encoded (the store keeps only
 *   sealed records, cache/seal.ts).
 * DIAGNOSTICS
 *   Warnings through deps.warn, with peer text made printable and cut to 100 characters.
 * SEE ALSO
 *   tlsmgr/tlsmgr.c tlsmgr_service(), tlsmgr_key()
 */

import type { CacheTable } from '../cache/caches.js';
import type { TlsScache } from '../cache/scache.js';
import type { Clock } from '../clock.js';
import { CACHE_TYPES, type CacheType } from '../config/types.js';
import { printable } from '../log/printable.js';
import { REQ, SEED_MAX, STAT, TICKET } from '../protocol/names.js';
import type { Request } from '../protocol/requests.js';
import { encodeResponse, failResponse } from '../protocol/responses.js';
import type { TicketKeyRing } from '../tickets/keys.js';

export interface DispatchDeps {
  readonly caches: CacheTable;
  readonly tickets: TicketKeyRing;
  /** Seed bytes (the PRNG pool). */
  readonly seed: (n: number) => Buffer;
  /** Called before each request: mixes the time into the PRNG pool (tlsmgr_loop's RAND_seed). */
  readonly stir?: () => void;
  readonly clock: Clock;
  readonly warn: (msg: string) => void;
}

const EMPTY = Buffer.alloc(0);

function isCacheType(t: string): t is CacheType {
  return (CACHE_TYPES as readonly string[]).includes(t);
}

export class Dispatcher {
  constructor(private readonly deps: DispatchDeps) {}

  handle(req: Request): Buffer {
    this.deps.stir?.();
    switch (req.request) {
      case REQ.SEED:
        return this.seed(req.size);
      case REQ.POLICY: {
        if (!this.knownType(req.cacheType, req.request)) return failResponse(req.request);
        const type = req.cacheType as CacheType;
        const cachable = this.deps.caches.get(type) ? 1 : 0;
        return encodeResponse({ request: req.request, status: STAT.OK, cachable, timeout: this.deps.caches.timeout(type) });
      }
      case REQ.LOOKUP: {
        const cache = this.cacheFor(req.cacheType, req.request);
        if (cache === null) return failResponse(req.request);
        const session = cache.lookup(req.cacheId);
        if (session === null) return encodeResponse({ request: req.request, status: STAT.ERR, session: EMPTY });
        const reply = encodeResponse({ request: req.request, status: STAT.OK, session });
        session.fill(0); // the cache opened it for this reply only: do not leave a secret behind
        return reply;
      }
      case REQ.UPDATE: {
        const cache = this.cacheFor(req.cacheType, req.request);
        if (cache === null) return failResponse(req.request);
        cache.update(req.cacheId, req.session);
        req.session.fill(0); // decoded for this request only; the cache keeps a sealed copy
        return encodeResponse({ request: req.request, status: STAT.OK });
      }
      case REQ.DELETE: {
        const cache = this.cacheFor(req.cacheType, req.request);
        if (cache === null) return failResponse(req.request);
        return encodeResponse({ request: req.request, status: cache.delete(req.cacheId) ? STAT.OK : STAT.ERR });
      }
      case REQ.TKTKEY:
        return this.tktkey(req.keyname);
    }
  }

  private seed(size: number): Buffer {
    if (size <= 0 || size > SEED_MAX) {
      this.deps.warn(`bogus seed length "${size}" in "seed" request`);
      return failResponse(REQ.SEED);
    }
    return encodeResponse({ request: REQ.SEED, status: STAT.OK, seed: this.deps.seed(size) });
  }

  private tktkey(keyname: Buffer): Buffer {
    if (keyname.length !== 0 && keyname.length !== TICKET.NAMELEN) {
      this.deps.warn(`invalid session ticket key name length: ${keyname.length}`);
      return failResponse(REQ.TKTKEY);
    }
    const timeout = this.deps.caches.timeout('smtpd');
    const r = this.deps.tickets.key(keyname.length ? keyname : null, this.deps.clock.now(), timeout);
    if (r.status === 'ok') return encodeResponse({ request: REQ.TKTKEY, status: STAT.OK, keybuf: r.key.record });
    // Postfix 3.7 echoes the name it could not find (spec 2.8); clients ignore keybuf on ERR.
    return encodeResponse({ request: REQ.TKTKEY, status: STAT.ERR, keybuf: r.status === 'nokey' ? keyname : EMPTY });
  }

  private knownType(t: string, request: string): boolean {
    if (isCacheType(t)) return true;
    this.deps.warn(`bogus cache type "${printable(t)}" in "${request}" request`);
    return false;
  }

  private cacheFor(t: string, request: string): TlsScache | null {
    if (!this.knownType(t, request)) return null;
    return this.deps.caches.get(t as CacheType) ?? null;
  }
}
