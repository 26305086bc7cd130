/*
 * readonly-names - process_name and service_name cannot be renamed (Postfix 3.12 from snapshot
 * 20260508: multi_server.c re-enters both after the -o options; 3.7-3.11 already ignore
 * `-o service_name=`), through the real daemon, `node bin/tlsmgr` standalone:
 * - main.cf `process_name = evilmain`, `-o process_name=evil` and `-o service_name=evil`:
 *   $process_name and $service_name in syslog_name still expand to "tlsmgr", so the log tag
 *   is unchanged, and the socket is $queue_directory/private/tlsmgr, not .../evil;
 * - `-n tls2 -o service_name=evil`: the service is tls2 (socket private/tls2, and
 *   $service_name in the log tag), as master(8) names it.
 * Every wait is bounded and ends on its event (the "listening on" line, a reply, the exit).
 */

import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { instanceMailOwner, makeInstanceDirs, REPO } from '../../bench/daemon.js';
import { TlsmgrClient } from '../../src/client/client.js';
import { captureChild, type ChildOutput } from '../helpers/child.js';

const BIN = join(REPO, 'bin', 'tlsmgr');
const work = mkdtempSync(join(tmpdir(), 'tlsmgr-names-'));
chmodSync(work, 0o755); // a root daemon drops to mail_owner, who must reach the instance
const children: ChildProcess[] = [];
after(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  rmSync(work, { recursive: true, force: true });
});

interface Run {
  readonly dir: string;
  readonly child: ChildProcess;
  readonly stderr: () => string;
  readonly logged: ChildOutput['logged'];
}

function run(mainCf: string, args: string[]): Run {
  const dir = mkdtempSync(join(work, 'inst-'));
  makeInstanceDirs(dir);
  const owner = instanceMailOwner();
  writeFileSync(join(dir, 'etc/main.cf'),
    `queue_directory = ${dir}/queue\ndata_directory = ${dir}/data\nmail_owner = ${owner}\ncompatibility_level = 3.6\n${mainCf}`);
  const env: NodeJS.ProcessEnv = { ...process.env, MAIL_CONFIG: join(dir, 'etc') };
  delete env.GENERATION;
  const child = spawn(process.execPath, [BIN, ...args], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  children.push(child);
  const out = captureChild(child);
  return { dir, child, stderr: out.stderr, logged: out.logged };
}

/** Wait (bounded) until the daemon listens, on `socket`, and answers a seed there. */
async function serving(r: Run, socket: string): Promise<void> {
  const [, path] = await r.logged(/listening on (\S+)\n/, 15_000);
  assert.equal(path, socket, r.stderr());
  const c = await TlsmgrClient.connect(socket, { timeoutMs: 5000 });
  try {
    assert.equal((await c.seed(8)).status, 0);
  } finally {
    c.close();
  }
}

function stop(r: Run): Promise<number | string> {
  return new Promise((resolve) => {
    const t = setTimeout(() => {
      r.child.kill('SIGKILL');
      resolve('no exit within 5000 ms');
    }, 5000);
    r.child.once('exit', (code, signal) => {
      clearTimeout(t);
      resolve(code ?? signal ?? 'unknown');
    });
    r.child.kill('SIGTERM');
  });
}

const TAGGED = 'syslog_name=p-$process_name-s-$service_name';
const literal = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

test('main.cf and -o cannot rename process_name or service_name: same socket, same log tag', async () => {
  const r = run('process_name = evilmain\n', ['-o', 'process_name=evil', '-o', 'service_name=evil', '-o', TAGGED]);
  const socket = join(r.dir, 'queue', 'private', 'tlsmgr');
  try {
    await serving(r, socket);
    assert.equal(existsSync(join(r.dir, 'queue', 'private', 'evil')), false);
    assert.match(r.stderr(), new RegExp(` p-tlsmgr-s-tlsmgr/tlsmgr\\[${r.child.pid}\\]: listening on ${literal(socket)}\\n`));
    assert.doesNotMatch(r.stderr(), /evil/);
  } finally {
    assert.equal(await stop(r), 0, r.stderr());
  }
});

test('-n names the service; -o service_name= does not: socket private/tls2, $service_name = tls2', async () => {
  const r = run('', ['-n', 'tls2', '-o', 'service_name=evil', '-o', TAGGED]);
  const socket = join(r.dir, 'queue', 'private', 'tls2');
  try {
    await serving(r, socket);
    assert.equal(existsSync(join(r.dir, 'queue', 'private', 'evil')), false);
    assert.match(r.stderr(), new RegExp(` p-tlsmgr-s-tls2/tlsmgr\\[${r.child.pid}\\]: listening on ${literal(socket)}\\n`));
  } finally {
    assert.equal(await stop(r), 0, r.stderr());
  }
});
