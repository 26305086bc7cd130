/*
 * NAME
 *   ctl/control - tlsmgr-ctl's client of the daemon's control socket
 * SYNOPSIS
 *   controlPathFor(configDir): string
 *   askDaemon(path, request, timeoutMs?): Promise<Record<string, unknown>>
 * DESCRIPTION
 *   controlPathFor() reads main.cf and tlsmgr.cf of config_dir with the daemon's own loader
 *   (config/load.ts) for $queue_directory, and names the control socket in it
 *   ($queue_directory/private/tlsmgr-control, daemon/control.ts).
 *   askDaemon() connects, writes one JSON request line, reads one JSON reply line (the
 *   protocol is in daemon/control.ts and daemon/control-answers.ts) and closes. A reply
 *   {"ok":false,"error":...} becomes a CtlError with the daemon's error text.
 * LIMITS
 *   The whole exchange has timeoutMs (default 5 s); a reply line is at most 1 MiB.
 * DIAGNOSTICS
 *   CtlError: "no tlsmgr answers on <path> (<reason>)" (nothing listening: not running, or
 *   another queue directory), "permission denied on <path> -- run as root or mail_owner",
 *   "no answer from tlsmgr on <path> within <n> ms", "bad reply from tlsmgr on <path>",
 *   "tlsmgr: <error>" (the daemon refused the request).
 * SEE ALSO
 *   daemon/control.ts, ctl/ping.ts, ctl/status.ts, ctl/flush.ts, ctl/keys.ts
 */

import { createConnection } from 'node:net';
import { loadConfig } from '../config/load.js';
import { controlSocketPath } from '../daemon/control.js';
import type { ControlRequest } from '../daemon/control-answers.js';
import { errorReason } from '../util/printable.js';
import { CtlError } from './command.js';

const REPLY_LIMIT = 1 << 20;
export const DEFAULT_TIMEOUT_MS = 5000;

/** The control socket of the instance whose configuration is in configDir. */
export function controlPathFor(configDir: string): string {
  const { config } = loadConfig({ configDir, overrides: [], warn: () => undefined });
  return controlSocketPath(config.queueDirectory);
}

export function askDaemon(path: string, request: ControlRequest, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const sock = createConnection(path);
    let got = Buffer.alloc(0);
    let settled = false;
    const finish = (err: CtlError | null, value?: Record<string, unknown>): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      if (err !== null) reject(err);
      else resolve(value ?? {});
    };
    const timer = setTimeout(() => finish(new CtlError(`no answer from tlsmgr on ${path} within ${timeoutMs} ms`)), timeoutMs);
    sock.once('connect', () => {
      sock.write(`${JSON.stringify(request)}\n`);
    });
    sock.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EACCES' || err.code === 'EPERM') finish(new CtlError(`permission denied on ${path} -- run as root or mail_owner`));
      else finish(new CtlError(`no tlsmgr answers on ${path} (${errorReason(err)})`));
    });
    sock.on('data', (chunk: Buffer) => {
      got = Buffer.concat([got, chunk]);
      const nl = got.indexOf(10);
      if (nl < 0) {
        if (got.length > REPLY_LIMIT) finish(new CtlError(`bad reply from tlsmgr on ${path}: longer than ${REPLY_LIMIT} bytes`));
        return;
      }
      let reply: unknown;
      try {
        reply = JSON.parse(got.subarray(0, nl).toString('utf8'));
      } catch {
        finish(new CtlError(`bad reply from tlsmgr on ${path}: not JSON`));
        return;
      }
      if (typeof reply !== 'object' || reply === null || Array.isArray(reply)) {
        finish(new CtlError(`bad reply from tlsmgr on ${path}: not an object`));
        return;
      }
      const r = reply as Record<string, unknown>;
      if (r.ok !== true) finish(new CtlError(`tlsmgr: ${typeof r.error === 'string' ? r.error : 'request failed'}`));
      else finish(null, r);
    });
    sock.on('end', () => finish(new CtlError(`bad reply from tlsmgr on ${path}: connection closed without a reply`)));
  });
}
