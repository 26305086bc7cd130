/*
 * NAME
 *   daemon/metrics-http - GET /metrics for Prometheus, when tlsmgr_metrics_listen is set
 * SYNOPSIS
 *   parts: [metricsPart()]                 (cli/main.ts)
 *   METRICS_PATH, METRICS_HEADER_LIMIT, METRICS_CONNECTION_LIMIT, METRICS_REQUEST_TIMEOUT_MS
 * DESCRIPTION
 *   A Daemon part (daemon/part.ts). With tlsmgr_metrics_listen = host:port (tlsmgr.cf;
 *   config/load.ts parseListenAddress()), preInit opens an HTTP listener there, with root
 *   privileges and before the chroot and privilege drop (a port under 1024 is possible);
 *   nothing it serves needs the file system afterwards. Empty (the default): no listener.
 *   Not for -S. A loopback address (127.0.0.1:<port>, [::1]:<port>) is the recommendation:
 *   the metrics are counters, but nothing authenticates the scraper.
 *   Requests:
 *     GET or HEAD /metrics (a query string is ignored)
 *                          200, Content-Type: prom-client's registry.contentType
 *                          ("text/plain; version=0.0.4; charset=utf-8"), the text
 *                          exposition of metrics/registry.ts (the same text as
 *                          tlsmgr-ctl metrics);
 *     another method on /metrics   405, Allow: GET, HEAD;
 *     any other path               404.
 *   beforeExit closes the listener and its connections.
 *   A change of tlsmgr_metrics_listen on reload (SIGHUP) takes effect only after a restart:
 *   the daemon says so (daemon/reload.ts, it is not in LIVE_FIELDS), as the listener was
 *   opened before the chroot and privilege drop.
 * LIMITS
 *   Request headers of at most METRICS_HEADER_LIMIT (4096) bytes (Node's 431 past it); at
 *   most METRICS_CONNECTION_LIMIT (4) connections at once (more are closed at once); the
 *   headers must arrive within METRICS_HEADERS_TIMEOUT_MS (5 s) and the whole request
 *   within METRICS_REQUEST_TIMEOUT_MS (10 s); an idle kept-alive connection is closed after
 *   METRICS_KEEPALIVE_MS (5 s). A request body is not read. One exposition is made per
 *   METRICS_MIN_INTERVAL_MS (100 ms) at most; a request within it waits: a client on the host
 *   that asks in a loop takes about 1% of the daemon's thread, not all of it.
 * DIAGNOSTICS
 *   A listener that cannot be opened is not fatal, as for the control socket: "warning:
 *   metrics listener <host>:<port>: <reason> -- GET /metrics is not served; tlsmgr-ctl
 *   metrics still is" (not an address of this host, a name that does not resolve), and the
 *   daemon serves Postfix without it. An address in use (the daemon before a `postfix
 *   reload` may not have let go of it yet) is tried again every METRICS_BIND_RETRY_MS (1 s),
 *   METRICS_BIND_RETRIES (30) times, on the address the name resolved to: "warning: ... --
 *   trying again every second for 30 s; GET /metrics is not served meanwhile", then "metrics
 *   listener <host>:<port>: bound after <n> retries", or the warning above. A port under
 *   1024 cannot be bound again after the privilege drop (the last warning says EACCES).
 *   Not fatal: under master(8) a fatal error would
 *   be a respawn loop for the sake of monitoring. A bad value of tlsmgr_metrics_listen is
 *   fatal at start (config/load.ts), as Postfix's bad parameter values are.
 *   A metrics text that cannot be made is a 500 and "warning: metrics listener: <reason>".
 * SEE ALSO
 *   metrics/registry.ts, daemon/control.ts, daemon/part.ts
 */

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { ListenAddress } from '../config/types.js';
import { msgInfo, msgVerbose, msgWarn } from '../log/msg.js';
import type { TlsmgrMetrics } from '../metrics/registry.js';
import { errorReason } from '../util/printable.js';
import type { DaemonControl, DaemonPart } from './part.js';

export const METRICS_PATH = '/metrics';
export const METRICS_HEADER_LIMIT = 4096;
export const METRICS_CONNECTION_LIMIT = 4;
export const METRICS_HEADERS_TIMEOUT_MS = 5_000;
export const METRICS_REQUEST_TIMEOUT_MS = 10_000;
export const METRICS_KEEPALIVE_MS = 5_000;
/** GET /metrics renders at most once per this interval (a scraper asks every 15 s or so). */
export const METRICS_MIN_INTERVAL_MS = 100;
/** An address in use is tried again this often, this many times (the old daemon of a reload may hold it). */
export const METRICS_BIND_RETRY_MS = 1_000;
export const METRICS_BIND_RETRIES = 30;

/** "host:port", "[v6]:port" */
export function formatListenAddress(a: ListenAddress): string {
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}

/* plain - a short text/plain answer */
function plain(res: ServerResponse, status: number, text: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

/* serveMetrics - one HTTP request */
function serveMetrics(req: IncomingMessage, res: ServerResponse, metrics: TlsmgrMetrics, turn: () => Promise<void>): void {
  const url = req.url ?? '';
  const q = url.indexOf('?');
  const path = q < 0 ? url : url.slice(0, q);
  if (path !== METRICS_PATH) {
    plain(res, 404, 'not found: only GET /metrics is served here\n');
    return;
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    plain(res, 405, 'method not allowed: use GET\n', { Allow: 'GET, HEAD' });
    return;
  }
  turn().then(() => metrics.text()).then(
    (text) => {
      res.writeHead(200, { 'Content-Type': metrics.contentType, 'Content-Length': Buffer.byteLength(text) });
      res.end(text);
    },
    (err: unknown) => {
      msgWarn(`metrics listener: ${errorReason(err)}`);
      if (!res.headersSent) plain(res, 500, 'metrics are not available\n');
      else res.destroy();
    },
  );
}

/*
 * throttle - at most one exposition per METRICS_MIN_INTERVAL_MS: a render costs about a
 * millisecond of the daemon's one thread, and anyone on the host may reach the port. A
 * request within the interval waits its turn (at most METRICS_CONNECTION_LIMIT wait).
 */
function throttle(): () => Promise<void> {
  let nextAt = 0;
  return () => {
    const now = performance.now();
    const at = Math.max(now, nextAt);
    nextAt = at + METRICS_MIN_INTERVAL_MS;
    return at <= now ? Promise.resolve() : new Promise((resolve) => setTimeout(resolve, at - now).unref());
  };
}

/* listen - resolves once listening, rejects with the bind error */
function listen(server: Server, at: ListenAddress): Promise<void> {
  return new Promise((resolve, reject) => {
    const failed = (err: Error): void => reject(err);
    server.once('error', failed);
    server.listen({ host: at.host, port: at.port, exclusive: true }, () => {
      server.off('error', failed);
      resolve();
    });
  });
}

/*
 * bindLater - try `at` again every second, METRICS_BIND_RETRIES times at most, while the
 * address is in use; then `listening()`, or a last warning. Returns a cancel function.
 */
function bindLater(s: Server, at: ListenAddress, where: string, listening: () => void): () => void {
  let tries = 0;
  let timer: NodeJS.Timeout | undefined;
  const attempt = (): void => {
    timer = undefined;
    tries++;
    listen(s, at).then(
      () => {
        msgInfo(`metrics listener ${where}: bound after ${tries} ${tries === 1 ? 'retry' : 'retries'}`);
        listening();
      },
      (err: unknown) => {
        if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE' && tries < METRICS_BIND_RETRIES) {
          timer = setTimeout(attempt, METRICS_BIND_RETRY_MS);
          timer.unref();
          return;
        }
        msgWarn(`metrics listener ${where}: ${errorReason(err)} -- GET /metrics is not served; tlsmgr-ctl metrics still is`);
      },
    );
  };
  timer = setTimeout(attempt, METRICS_BIND_RETRY_MS);
  timer.unref();
  return () => {
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
    tries = METRICS_BIND_RETRIES;
  };
}

export interface MetricsPart extends DaemonPart {
  /** The bound address once listening (the port the system gave for port 0), else null. */
  readonly address: ListenAddress | null;
}

export function metricsPart(): MetricsPart {
  let server: Server | undefined;
  let address: ListenAddress | null = null;
  let retry: (() => void) | undefined;
  return {
    get address() {
      return address;
    },
    async preInit(d: DaemonControl) {
      const at = d.config.metricsListen;
      const metrics = d.service.metrics;
      if (d.mode === 'stdio' || at === null || metrics === undefined) return;
      const turn = throttle();
      const s = createServer({ maxHeaderSize: METRICS_HEADER_LIMIT }, (req, res) => serveMetrics(req, res, metrics, turn));
      s.maxConnections = METRICS_CONNECTION_LIMIT;
      s.headersTimeout = METRICS_HEADERS_TIMEOUT_MS;
      s.requestTimeout = METRICS_REQUEST_TIMEOUT_MS;
      s.keepAliveTimeout = METRICS_KEEPALIVE_MS;
      const where = formatListenAddress(at);
      const listening = (): void => {
        // Errors after listening (none expected) must not end the daemon.
        s.on('error', (err) => msgWarn(`metrics listener ${where}: ${errorReason(err)}`));
        const bound = s.address();
        address = typeof bound === 'object' && bound !== null ? { host: bound.address, port: bound.port } : at;
        server = s;
        msgVerbose(1, `metrics listener http://${formatListenAddress(address)}${METRICS_PATH}`);
      };
      try {
        await listen(s, at);
      } catch (err) {
        const resolved = (err as { address?: unknown }).address;
        if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || typeof resolved !== 'string') {
          msgWarn(`metrics listener ${where}: ${errorReason(err)} -- GET /metrics is not served; tlsmgr-ctl metrics still is`);
          return;
        }
        // The daemon before a `postfix reload` may still hold the port for a moment: try again,
        // on the address already resolved (no name lookup inside the chroot).
        msgWarn(`metrics listener ${where}: ${errorReason(err)} -- trying again every second for ${METRICS_BIND_RETRIES} s; GET /metrics is not served meanwhile`);
        retry = bindLater(s, { host: resolved, port: at.port }, where, listening);
        return;
      }
      listening();
    },
    beforeExit() {
      retry?.();
      retry = undefined;
      if (server === undefined) return;
      server.close();
      server.closeAllConnections();
      server = undefined;
      address = null;
    },
  };
}
