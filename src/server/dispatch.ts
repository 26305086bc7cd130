/*
 * NAME
 *   server/dispatch - serve one typed tlsmgr request: seed, policy, lookup, update, delete, tktkey
 * SYNOPSIS
 *   const d = new Dispatcher(deps); d.handle(req: Request): Buffer | Promise<Buffer>
 * DESCRIPTION
 *   The request branches of tlsmgr.c tlsmgr_service() (spec 2.3-2.8), after the scan:
 *   - seed: size 1..255 -> that many random bytes; else `bogus seed length` and FAIL. When
 *     the bytes cannot be produced (deps.seed throws, or returns anything but exactly `size`
 *     bytes): ERR with an empty seed, as tlsmgr.c 3.7.21+ answers a RAND_bytes() failure,
 *     never bytes: Postfix clients mix whatever seed data comes back into their PRNG and
 *     disable TLS on a non-OK status. The seed bytes are wiped once the reply is encoded;
 *   - policy/lookup/update/delete: the cache type must be smtpd, smtp or lmtp (`bogus cache
 *     type`, FAIL); policy answers for disabled types too; the others FAIL on a disabled type;
 *     lookup hit OK / miss ERR; update always OK; delete OK if it existed, else ERR;
 *   - tktkey: keyname empty or 16 bytes (else `invalid session ticket key name length`,
 *     FAIL); the smtpd timeout drives the keys (<= 0: ERR); an unknown name: ERR with the name
 *     echoed, as Postfix 3.7 does.
 *   Before each request deps.stir mixes the time into the pool; a stir that throws is a
 *   warning and the request is served all the same (Postfix's RAND_seed() cannot fail).
 *   Replies are encoded here; FAIL replies always carry empty data. The clear session of a
 *   lookup hit and of an update is wiped once the reply is encoded (the store keeps only
 *   sealed records, util/seal.ts).
 *   A local cache and the local key ring answer at once and handle() returns the reply; a
 *   shared (Redis) cache or key ring may answer later, and then handle() returns a promise
 *   of the reply, which never rejects (cache/session-cache.ts).
 * DIAGNOSTICS
 *   Warnings through deps.warn, with peer text made printable and cut to 100 characters;
 *   "cannot generate <n> seed bytes: <reason>" and "cannot stir the PRNG pool: <reason>"
 *   name the error only (util/printable.ts errorReason), never bytes. Postfix logs nothing
 *   for a failed seed.
 * SEE ALSO
 *   tlsmgr/tlsmgr.c tlsmgr_service(), tlsmgr_key()
 */

import type { CacheTable } from '../cache/caches.js';
import type { SessionCache } from '../cache/session-cache.js';
import type { Clock } from '../util/clock.js';
import { CACHE_TYPES, type CacheType } from '../config/types.js';
import { errorReason, printable } from '../util/printable.js';
import { REQ, SEED_MAX, STAT } from '../protocol/names.js';
import type { Request } from '../protocol/requests.js';
import { encodeResponse, failResponse } from '../protocol/responses.js';
import type { TicketKeyResult } from '../tickets/keys.js';
import type { TicketKeySource } from '../tickets/shared.js';
import { then, type Maybe } from '../util/maybe.js';
import { TICKET } from '../util/tktkey.js';

export interface DispatchDeps {
  readonly caches: CacheTable;
  readonly tickets: TicketKeySource;
  /** Seed bytes (the PRNG pool). */
  readonly seed: (n: number) => Buffer;
  /** Called before each request: mixes the time into the PRNG pool (tlsmgr_loop's RAND_seed). */
  readonly stir?: () => void;
  readonly clock: Clock;
  readonly warn: (msg: string) => void;
}

const EMPTY = Buffer.alloc(0);
const UPDATE_OK = encodeResponse({ request: REQ.UPDATE, status: STAT.OK });
const SEED_ERR = encodeResponse({ request: REQ.SEED, status: STAT.ERR, seed: EMPTY });

function lookupReply(session: Buffer | null): Buffer {
  if (session === null) return encodeResponse({ request: REQ.LOOKUP, status: STAT.ERR, session: EMPTY });
  const reply = encodeResponse({ request: REQ.LOOKUP, status: STAT.OK, session });
  session.fill(0); // the cache opened it for this reply only: do not leave a secret behind
  return reply;
}

function deleteReply(existed: boolean): Buffer {
  return encodeResponse({ request: REQ.DELETE, status: existed ? STAT.OK : STAT.ERR });
}

function tktkeyReply(r: TicketKeyResult, keyname: Buffer): Buffer {
  if (r.status === 'ok') return encodeResponse({ request: REQ.TKTKEY, status: STAT.OK, keybuf: r.key.record });
  // Postfix 3.7 echoes the name it could not find (spec 2.8); clients ignore keybuf on ERR.
  return encodeResponse({ request: REQ.TKTKEY, status: STAT.ERR, keybuf: r.status === 'nokey' ? keyname : EMPTY });
}

function isCacheType(t: string): t is CacheType {
  return (CACHE_TYPES as readonly string[]).includes(t);
}

export class Dispatcher {
  constructor(private readonly deps: DispatchDeps) {}

  handle(req: Request): Maybe<Buffer> {
    this.stir();
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
        return then(cache.lookup(req.cacheId), lookupReply);
      }
      case REQ.UPDATE: {
        // The session was decoded for this request only: wiped whatever happens (the cache
        // has sealed its own copy by the time update() returns, also for a remote store).
        try {
          const cache = this.cacheFor(req.cacheType, req.request);
          if (cache === null) return failResponse(req.request);
          return then(cache.update(req.cacheId, req.session), () => UPDATE_OK);
        } finally {
          req.session.fill(0);
        }
      }
      case REQ.DELETE: {
        const cache = this.cacheFor(req.cacheType, req.request);
        if (cache === null) return failResponse(req.request);
        return then(cache.delete(req.cacheId), deleteReply);
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
    let bytes: Buffer;
    try {
      bytes = this.deps.seed(size);
    } catch (err) {
      this.deps.warn(`cannot generate ${size} seed bytes: ${errorReason(err)}`);
      return SEED_ERR;
    }
    if (!Buffer.isBuffer(bytes) || bytes.length !== size) {
      const got = Buffer.isBuffer(bytes) ? `${bytes.length} bytes` : typeof bytes;
      if (Buffer.isBuffer(bytes)) bytes.fill(0);
      this.deps.warn(`cannot generate ${size} seed bytes: the PRNG returned ${got}`);
      return SEED_ERR;
    }
    const reply = encodeResponse({ request: REQ.SEED, status: STAT.OK, seed: bytes });
    bytes.fill(0); // produced for this reply only: do not leave it behind
    return reply;
  }

  /* stir - the time into the pool before a request; losing one stir loses nothing secret */
  private stir(): void {
    try {
      this.deps.stir?.();
    } catch (err) {
      this.deps.warn(`cannot stir the PRNG pool: ${errorReason(err)}`);
    }
  }

  private tktkey(keyname: Buffer): Maybe<Buffer> {
    if (keyname.length !== 0 && keyname.length !== TICKET.NAMELEN) {
      this.deps.warn(`invalid session ticket key name length: ${keyname.length}`);
      return failResponse(REQ.TKTKEY);
    }
    const timeout = this.deps.caches.timeout('smtpd');
    const r = this.deps.tickets.key(keyname.length ? keyname : null, this.deps.clock.now(), timeout);
    return then(r, (res) => tktkeyReply(res, keyname));
  }

  private knownType(t: string, request: string): boolean {
    if (isCacheType(t)) return true;
    this.deps.warn(`bogus cache type "${printable(t)}" in "${request}" request`);
    return false;
  }

  private cacheFor(t: string, request: string): SessionCache | null {
    if (!this.knownType(t, request)) return null;
    return this.deps.caches.get(t as CacheType) ?? null;
  }
}
