/*
 * NAME
 *   cli/dev - run tlsmgr on embedded defaults, without Postfix (npm start)
 * DESCRIPTION
 *   Creates run/ in the checkout on first use: run/etc/main.cf (edit it freely; it is kept),
 *   run/queue/private for the socket and run/data for data files, then starts the daemon in
 *   the foreground with MAIL_CONFIG=run/etc, logging to the terminal. mail_owner is the
 *   current user, so no root is needed. Extra arguments are passed on (e.g. -v, -o a=b).
 */

import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FatalError } from '../errors.js';
import { msgFatal } from '../log/msg.js';
import { main } from './main.js';

const root = resolve(fileURLToPath(import.meta.url), '../../../..');
const runDir = join(root, 'run');
const etc = join(runDir, 'etc');
for (const d of [etc, join(runDir, 'queue', 'private'), join(runDir, 'data')]) mkdirSync(d, { recursive: true, mode: 0o700 });
const mainCf = join(etc, 'main.cf');
if (!existsSync(mainCf)) {
  writeFileSync(
    mainCf,
    [
      '# tlsmgr development instance, created by `npm start`. Postfix main.cf syntax.',
      `queue_directory = ${join(runDir, 'queue')}`,
      `data_directory = ${join(runDir, 'data')}`,
      `mail_owner = ${userInfo().username}`,
      'compatibility_level = 3.6',
      'smtpd_tls_session_cache_database = btree:${data_directory}/smtpd_scache',
      'smtp_tls_session_cache_database = btree:${data_directory}/smtp_scache',
      'smtpd_tls_session_cache_timeout = 3600s',
      'smtp_tls_session_cache_timeout = 3600s',
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
}
main(['-d', ...process.argv.slice(2)], { ...process.env, MAIL_CONFIG: etc }).catch((err: unknown) => {
  if (err instanceof FatalError) msgFatal(err.message);
  msgFatal(`unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
});
