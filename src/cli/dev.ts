/*
 * NAME
 *   cli/dev - run tlsmgr on embedded defaults, without Postfix (npm start)
 * DESCRIPTION
 *   Creates run/ in the checkout on first use: run/etc/main.cf (edit it freely; it is kept),
 *   run/queue/private for the socket and run/data for data files, then starts the daemon in
 *   the foreground with MAIL_CONFIG=run/etc, logging to the terminal. Extra arguments are
 *   passed on (e.g. -v, -o a=b).
 *   mail_owner is the current user, so no root is needed. As root it is Debian's "postfix"
 *   (else "nobody"), since tlsmgr, as Postfix, refuses a mail_owner with user ID 0: the
 *   daemon drops to that user, who gets run/queue/private and run/data (as `postfix check`
 *   lays out a queue) and must be able to reach them. When the checkout is not reachable
 *   for it (a checkout under /root, say), the instance is made in a fresh directory under
 *   the system's temporary directory instead, and its path is printed.
 * DIAGNOSTICS
 *   The daemon's own fatal errors; "no user postfix or nobody" as root without either.
 */

import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FatalError } from '../util/errors.js';
import { msgFatal, msgInfo } from '../log/msg.js';
import { lookupUser } from '../master/passwd.js';
import { main } from './main.js';

const isRoot = process.getuid?.() === 0;
const ownerName = isRoot ? (lookupUser('postfix') !== null ? 'postfix' : 'nobody') : userInfo().username;
const owner = isRoot ? lookupUser(ownerName) : null;
if (isRoot && owner === null) msgFatal('npm start as root needs a user postfix or nobody to run as');

/* reachable - whether the owner can enter dir (run as that user: every parent must let it through) */
function reachable(dir: string): boolean {
  if (owner === null) return true;
  const r = spawnSync('/bin/sh', ['-c', 'cd "$1"', 'sh', dir], { uid: owner.uid, gid: owner.gid, stdio: 'ignore', timeout: 5000 });
  return r.status === 0;
}

const checkout = resolve(fileURLToPath(import.meta.url), '../../../..');
let runDir = join(checkout, 'run');
mkdirSync(runDir, { recursive: true, mode: 0o755 });
if (isRoot) {
  chmodSync(runDir, 0o755);
  if (!reachable(runDir)) {
    runDir = mkdtempSync(join(tmpdir(), 'tlsmgr-run-'));
    chmodSync(runDir, 0o755);
    msgInfo(`${ownerName} cannot reach ${checkout}: the instance is in ${runDir}`);
  }
}
const etc = join(runDir, 'etc');
for (const d of [etc, join(runDir, 'queue', 'private'), join(runDir, 'data')]) mkdirSync(d, { recursive: true, mode: 0o700 });
if (owner !== null) {
  for (const d of [etc, join(runDir, 'queue')]) chmodSync(d, 0o755);
  for (const d of [join(runDir, 'queue', 'private'), join(runDir, 'data')]) chownSync(d, owner.uid, owner.gid);
}
const mainCf = join(etc, 'main.cf');
if (!existsSync(mainCf)) {
  writeFileSync(
    mainCf,
    [
      '# tlsmgr development instance, created by `npm start`. Postfix main.cf syntax.',
      `queue_directory = ${join(runDir, 'queue')}`,
      `data_directory = ${join(runDir, 'data')}`,
      `mail_owner = ${ownerName}`,
      'compatibility_level = 3.6',
      'smtpd_tls_session_cache_database = btree:${data_directory}/smtpd_scache',
      'smtp_tls_session_cache_database = btree:${data_directory}/smtp_scache',
      'smtpd_tls_session_cache_timeout = 3600s',
      'smtp_tls_session_cache_timeout = 3600s',
      '',
    ].join('\n'),
    { mode: 0o644 },
  );
}
main(['-d', ...process.argv.slice(2)], { ...process.env, MAIL_CONFIG: etc }).catch((err: unknown) => {
  if (err instanceof FatalError) msgFatal(err.message);
  msgFatal(`unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
});
