/*
 * NAME
 *   tlsmgr-cf.test - a complete configuration with the extensions in tlsmgr.cf, checked by
 *   real Postfix 3.7 and served by our daemon
 *
 * DESCRIPTION
 *   On a Postfix instance built by test/helpers/postfix.ts (mode "ours"), tlsmgr.cf gets
 *   every extension loadConfig() reads (tlsmgr_connection_limit = 2, the others at their
 *   defaults) and main.cf none. Then:
 *     - the extension names are exactly the names loadConfig() reads that Postfix's own
 *       `postconf -d` does not know;
 *     - `postconf -c <dir> -n` prints no warning, and `postfix check` none either (a
 *       root-owned mode 0644 tlsmgr.cf in the config directory);
 *     - negative control: the same setting moved into main.cf makes that postconf warn
 *       "unused parameter";
 *     - our daemon, started standalone on the instance, logs no warning about either file
 *       and applies tlsmgr.cf's limit: two connections are greeted, a third is closed
 *       without a greeting and the log names "tlsmgr_connection_limit = 2" (default 8192).
 *
 * LIMITS
 *   Needs root and Debian's postfix (see test/helpers/postfix.ts); skipped with a loud
 *   message without them, except under CI=true where it fails. Every wait is bounded.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeCold } from '../helpers/cold.js';
import { greetedSocket, pollUntil, postfixAvailability, postfixCommand, runCommand, startOurTlsmgr, startPostfix,
  type PostfixInstance } from '../helpers/postfix.js';
import { DEFAULTS } from '../../src/config/load.js';
import { parseMainCf } from '../../src/config/maincf.js';
import { isExtensionName } from '../../src/config/tlsmgrcf.js';

const POSTCONF = '/usr/sbin/postconf';
const LIMIT = 2;
const EXTENSIONS = Object.keys(DEFAULTS).filter(isExtensionName);

/** tlsmgr.cf with every extension: tlsmgr_connection_limit = LIMIT, the others their defaults. */
function completeTlsmgrCf(): string {
  const lines = ['# tlsmgr(8) extensions, main.cf syntax (written by test/interop/tlsmgr-cf.test.ts)'];
  for (const name of EXTENSIONS) {
    const value = name === 'tlsmgr_connection_limit' ? String(LIMIT) : String(DEFAULTS[name as keyof typeof DEFAULTS]);
    lines.push(`${name} = ${value}`);
  }
  return `${lines.join('\n')}\n`;
}

/** Connect; the socket once the greeting arrived, or null when closed without it. */
function greeted(path: string, timeoutMs = 5_000): Promise<Socket | null> {
  return greetedSocket(path, timeoutMs);
}

function postconf(configDir: string, args: readonly string[]): ReturnType<typeof runCommand> {
  return runCommand(POSTCONF, ['-c', configDir, ...args], { timeoutMs: 20_000 });
}

function defineSuite(): void {
  describe('tlsmgr.cf with real Postfix', { concurrency: 1 }, () => {
    let inst: PostfixInstance | undefined;
    let setupError: unknown;
    const scratch = mkdtempSync(join(tmpdir(), 'tlsmgr-cf-control-'));
    const ready = (): PostfixInstance => {
      if (setupError !== undefined) throw setupError;
      assert.ok(inst, 'no Postfix instance');
      return inst;
    };

    before(async () => {
      try {
        inst = await startPostfix({ tlsmgr: 'ours' });
        const path = join(inst.configDir, 'tlsmgr.cf');
        writeCold(path, completeTlsmgrCf());
      } catch (err) {
        setupError = err;
      }
    }, { timeout: 60_000 });

    after(async () => {
      await inst?.stop();
      rmSync(scratch, { recursive: true, force: true });
    });

    test('the extensions are exactly the names loadConfig() reads that postconf -d does not know', async () => {
      const r = await postconf(ready().configDir, ['-d', ...Object.keys(DEFAULTS)]);
      assert.equal(r.code, 0, r.stderr);
      const unknown = [...r.stderr.matchAll(/warning: (\S+): unknown parameter/g)].map((m) => m[1]);
      const known = [...r.stdout.matchAll(/^(\S+) =/gm)].map((m) => m[1]);
      assert.deepEqual(unknown, EXTENSIONS);
      assert.deepEqual(known, Object.keys(DEFAULTS).filter((n) => !isExtensionName(n)));
    });

    test('postconf -n and postfix check print no warning with every extension in tlsmgr.cf', async () => {
      const i = ready();
      const main = parseMainCf(readFileSync(join(i.configDir, 'main.cf'), 'utf8'), 'main.cf');
      assert.deepEqual([...main.keys()].filter(isExtensionName), [], 'main.cf holds only Postfix parameters');
      const tlsmgrCf = parseMainCf(readFileSync(join(i.configDir, 'tlsmgr.cf'), 'utf8'), 'tlsmgr.cf');
      assert.deepEqual([...tlsmgrCf.keys()], EXTENSIONS);
      assert.equal(EXTENSIONS.length, 20);
      const st = statSync(join(i.configDir, 'tlsmgr.cf'));
      assert.equal(st.uid, 0);
      assert.equal(st.mode & 0o022, 0);

      const r = await postconf(i.configDir, ['-n']);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^queue_directory = /m, 'postconf -n read this main.cf');
      assert.doesNotMatch(r.stderr, /warning:/, r.stderr);
      const check = await postfixCommand(i, 'check');
      assert.equal(check.code, 0, check.stderr);
      assert.doesNotMatch(`${check.stdout}${check.stderr}`, /warning:/);
    });

    test('negative control: the same setting in main.cf makes postconf -n warn', async () => {
      const i = ready();
      copyFileSync(join(i.configDir, 'master.cf'), join(scratch, 'master.cf'));
      writeCold(join(scratch, 'main.cf'),
        `${readFileSync(join(i.configDir, 'main.cf'), 'utf8')}tlsmgr_connection_limit = ${LIMIT}\n`);
      writeCold(join(scratch, 'tlsmgr.cf'),
        completeTlsmgrCf().split('\n').filter((l) => !l.startsWith('tlsmgr_connection_limit ')).join('\n'));
      const r = await postconf(scratch, ['-n']);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, new RegExp(`warning: ${scratch}/main\\.cf: unused parameter: tlsmgr_connection_limit=${LIMIT}`));
      assert.equal(r.stderr.match(/warning:/g)?.length, 1, r.stderr);
    });

    test('our daemon applies tlsmgr.cf\'s tlsmgr_connection_limit and warns about neither file', { timeout: 60_000 }, async () => {
      const i = ready();
      const ours = await startOurTlsmgr(i);
      const held: Socket[] = [];
      try {
        // startOurTlsmgr()'s own probe connection may not be released yet: bounded retries.
        for (let n = 0; n < LIMIT; n++) {
          held.push(await pollUntil(() => greeted(i.tlsmgrSocketPath).then((s) => s ?? undefined),
            { timeoutMs: 5_000, intervalMs: 100, what: `greeting on connection ${n + 1}` }));
        }
        assert.equal(await greeted(i.tlsmgrSocketPath), null, `connection ${LIMIT + 1} is refused`);
        await pollUntil(() => (ours.stderr().includes(`connections reach tlsmgr_connection_limit = ${LIMIT} `) ? true : undefined),
          { timeoutMs: 5_000, intervalMs: 50, what: `the tlsmgr_connection_limit = ${LIMIT} warning\n${ours.stderr()}` });
        assert.doesNotMatch(ours.stderr(), /(main|tlsmgr)\.cf/, ours.stderr());
      } finally {
        for (const s of held) s.destroy();
      }
    });
  });
}

const avail = postfixAvailability();
if (!avail.ok) {
  if (process.env.CI === 'true') {
    test('tlsmgr.cf with real Postfix', () => {
      assert.fail(`CI=true but the real-Postfix tests cannot run: ${avail.reason}`);
    });
  } else {
    console.error(`\n${'*'.repeat(72)}\n*** SKIPPING the tlsmgr.cf real-Postfix tests: ${avail.reason}\n` +
      `*** (under CI=true this is a failure)\n${'*'.repeat(72)}\n`);
    test('tlsmgr.cf with real Postfix', { skip: avail.reason }, () => undefined);
  }
} else {
  defineSuite();
}
