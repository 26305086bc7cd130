/*
 * NAME
 *   postfix-resume.test - real Postfix resumes TLS sessions through a tlsmgr daemon
 *
 * DESCRIPTION
 *   Runs Debian's Postfix 3.7 (smtpd, smtp) against a tlsmgr and checks in
 *   Postfix's own log that TLS sessions are resumed across processes, which
 *   only tlsmgr can make possible (spec section 7, scenario 46):
 *     1. TLS 1.2 session-id cache (lookup/update), openssl s_client;
 *     2. TLS 1.3 tickets (tktkey), openssl s_client;
 *     3. Postfix's smtp client relaying two messages, each on a new
 *        TCP+TLS connection (smtp cache lookup/update, sink smtpd tickets).
 *   The same three scenarios run in each variant:
 *     ours          our daemon (node bin/tlsmgr, standalone): the main suite;
 *     none          nothing serves private/tlsmgr: the negative control; the
 *                   same checks must find no resumption (they can fail);
 *     postfix       Postfix's own tlsmgr (-v): validates the harness itself;
 *     ours-nocache  our daemon with smtpd/smtp session cache timeouts 0:
 *                   TLS works but nothing may be resumed (spec 3.2, 2.8).
 *   TLSMGR_INTEROP_MODES (comma-separated, default all four) selects the
 *   variants; TLSMGR_INTEROP_BIN replaces <repo>/bin/tlsmgr;
 *   TLSMGR_INTEROP_KEEP=1 keeps each instance's directory (and maillog).
 *
 * LIMITS
 *   Needs root and /usr/sbin/postfix, openssl, swaks. Without them the suite
 *   is skipped with a loud message, except under CI=true where it fails.
 *   Each variant starts its own Postfix instance (about 2 s, and 2 s to
 *   stop); the negative control is the slowest part (every smtpd/smtp
 *   process spends about 1 s retrying the missing tlsmgr). About 30 s in all.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  postfixAvailability, startOurTlsmgr, startPostfix,
  type PostfixInstance, type TlsmgrMode,
} from '../helpers/postfix.js';
import {
  relayResumeProblems, runRelayResume, runStarttlsResume, starttlsResumeProblems, tlsmgrUnreachable,
} from './resume-scenarios.js';

/** What a variant must show: resumption, tlsmgr unreachable, or TLS without resumption. */
type Expect = 'resume' | 'unreachable' | 'no-resume';

interface Variant {
  name: string;
  tlsmgr: TlsmgrMode;
  expect: Expect;
  mainCf?: Readonly<Record<string, string>>;
}

const VARIANTS: readonly Variant[] = [
  { name: 'ours', tlsmgr: 'ours', expect: 'resume' },
  { name: 'none', tlsmgr: 'none', expect: 'unreachable' },
  { name: 'postfix', tlsmgr: 'postfix', expect: 'resume' },
  {
    name: 'ours-nocache', tlsmgr: 'ours', expect: 'no-resume',
    mainCf: { smtpd_tls_session_cache_timeout: '0', smtp_tls_session_cache_timeout: '0' },
  },
];

const wanted = (process.env.TLSMGR_INTEROP_MODES ?? VARIANTS.map((v) => v.name).join(','))
  .split(',').map((s) => s.trim()).filter((s) => s !== '');

const SETUP_TIMEOUT = 60_000;
const SCENARIO_TIMEOUT = 45_000;

/** Context for a failure message: the maillog tail, and our daemon's stderr. */
function context(inst: PostfixInstance | undefined, since = 0): string {
  if (!inst) return '(no Postfix instance)';
  let s = `\n--- maillog (${inst.maillogPath}) tail ---\n${inst.maillogTail(60, since)}`;
  if (inst.ours) s += `\n--- our tlsmgr stderr (tail) ---\n${inst.ours.stderr().split('\n').slice(-30).join('\n')}`;
  return s;
}

const REUSE = /Reusing old session|reloaded session/;

/**
 * judge - assert the outcome a variant expects. The negative variants run the
 * very same checks as the positive ones and require them to fail.
 */
function judge(expect: Expect, problems: string[], log: string, inst: PostfixInstance, since: number): void {
  switch (expect) {
    case 'resume':
      assert.deepEqual(problems, [], `no resumption through tlsmgr:\n- ${problems.join('\n- ')}\n` +
        `--- scenario log ---\n${log}${context(inst, since)}`);
      return;
    case 'unreachable':
      assert.ok(problems.length > 0, `resumption reported although nothing serves private/tlsmgr:\n${log}`);
      assert.ok(tlsmgrUnreachable(log).length > 0, `expected Postfix to warn that private/tlsmgr is unreachable:\n${log}`);
      assert.doesNotMatch(log, REUSE, 'a session was reused without tlsmgr');
      return;
    case 'no-resume':
      assert.ok(problems.length > 0, `resumption reported although session caching is off:\n${log}`);
      assert.deepEqual(tlsmgrUnreachable(log), [], `Postfix could not use tlsmgr${context(inst, since)}`);
      assert.doesNotMatch(log, REUSE, `a session was reused with session caching off${context(inst, since)}`);
      return;
  }
}

function defineVariant(v: Variant): void {
  // concurrency 1: the scenarios share one instance and cut its log by offsets.
  describe(`real Postfix, tlsmgr "${v.name}" (expect: ${v.expect})`, { concurrency: 1 }, () => {
    let inst: PostfixInstance | undefined;
    // A setup failure is kept and rethrown by every test: a failing before()
    // hook would only mark the tests "cancelled", hiding the reason
    // ("our daemon did not start: ...") in the suite's summary.
    let setupError: unknown;
    const ready = (): PostfixInstance => {
      if (setupError !== undefined) throw setupError;
      assert.ok(inst, 'no Postfix instance');
      return inst;
    };

    before(async () => {
      try {
        // Mode "postfix": -v makes the real tlsmgr log each request, so the
        // control run can also check the requests themselves.
        inst = await startPostfix({ tlsmgr: v.tlsmgr, tlsmgrVerbose: v.tlsmgr === 'postfix', mainCf: v.mainCf });
        if (v.tlsmgr === 'ours') {
          await startOurTlsmgr(inst, process.env.TLSMGR_INTEROP_BIN ? { bin: process.env.TLSMGR_INTEROP_BIN } : {});
        }
      } catch (err) {
        setupError = err;
      }
    }, { timeout: SETUP_TIMEOUT });

    after(async () => {
      await inst?.stop();
    }, { timeout: 30_000 });

    /** Our daemon must still run, and master(8) must not have run Postfix's own tlsmgr. */
    function checkOurs(i: PostfixInstance, log: string): void {
      if (!i.ours) return;
      assert.equal(i.ours.child.exitCode, null, `our daemon exited during the scenario${context(i)}`);
      assert.equal(i.ours.child.signalCode, null, `our daemon was killed during the scenario${context(i)}`);
      for (const m of log.matchAll(/postfix\/tlsmgr\[(\d+)\]/g)) {
        assert.equal(Number(m[1]), i.ours.pid, `a tlsmgr other than ours (pid ${m[1]}) logged: is master.cf wrong?`);
      }
    }

    test('1. TLS 1.2 session id: a second smtpd process resumes the session (lookup/update)',
      { timeout: SCENARIO_TIMEOUT }, async () => {
        const i = ready();
        const mark = i.logMark();
        const o = await runStarttlsResume(i, '1.2');
        judge(v.expect, starttlsResumeProblems(o), `${o.log}\n--- second s_client ---\n${o.second.output}`, i, mark);
        checkOurs(i, o.log);
        if (v.expect === 'no-resume') assert.ok(o.first.isNew, `TLS 1.2 handshake failed:\n${o.first.output}`);
        if (v.tlsmgr === 'postfix') {
          // Harness control: the real tlsmgr saw the update and the lookup.
          assert.match(o.log, /postfix\/tlsmgr\[\d+\]: put smtpd session id=/);
          assert.match(o.log, /postfix\/tlsmgr\[\d+\]: lookup smtpd session id=/);
        }
      });

    test('2. TLS 1.3 ticket: a second smtpd process decrypts it with the key from tlsmgr (tktkey)',
      { timeout: SCENARIO_TIMEOUT }, async () => {
        const i = ready();
        const mark = i.logMark();
        const o = await runStarttlsResume(i, '1.3');
        judge(v.expect, starttlsResumeProblems(o), `${o.log}\n--- second s_client ---\n${o.second.output}`, i, mark);
        checkOurs(i, o.log);
        if (v.expect === 'no-resume') assert.ok(o.first.isNew, `TLS 1.3 handshake failed:\n${o.first.output}`);
        if (v.tlsmgr === 'postfix') {
          // Two tktkey requests: empty name (issue, process 1), then by name (process 2).
          const n = o.log.match(/postfix\/tlsmgr\[\d+\]: input attribute value: tktkey$/gm)?.length ?? 0;
          assert.ok(n >= 2, `expected at least 2 tktkey requests in the real tlsmgr's log, saw ${n}`);
        }
      });

    test('3. smtp client: the second delivery reuses the session cached in tlsmgr',
      { timeout: SCENARIO_TIMEOUT }, async () => {
        const i = ready();
        const mark = i.logMark();
        const o = await runRelayResume(i);
        const log = o.first.log + o.second.log;
        judge(v.expect, relayResumeProblems(o), log, i, mark);
        checkOurs(i, log);
        if (v.expect === 'unreachable') {
          // smtp_tls_security_level = encrypt: without TLS nothing may leave.
          assert.notEqual(o.first.smtpStatus, 'sent');
          assert.notEqual(o.second.smtpStatus, 'sent');
        }
        if (v.expect === 'no-resume') {
          // TLS without caching still delivers.
          assert.equal(o.first.smtpStatus, 'sent', `first message not delivered${context(i, mark)}`);
          assert.equal(o.second.smtpStatus, 'sent', `second message not delivered${context(i, mark)}`);
        }
        if (v.tlsmgr === 'postfix') assert.match(o.second.log, /postfix\/tlsmgr\[\d+\]: lookup smtp session id=/);
      });
  });
}

const avail = postfixAvailability();
if (!avail.ok) {
  if (process.env.CI === 'true') {
    test('real Postfix interop', () => {
      assert.fail(`CI=true but the real-Postfix interop tests cannot run: ${avail.reason}`);
    });
  } else {
    console.error(`\n${'*'.repeat(72)}\n*** SKIPPING the real-Postfix interop tests: ${avail.reason}\n` +
      `*** (under CI=true this is a failure)\n${'*'.repeat(72)}\n`);
    test('real Postfix interop', { skip: avail.reason }, () => undefined);
  }
} else {
  const unknown = wanted.filter((w) => !VARIANTS.some((v) => v.name === w));
  if (unknown.length > 0 || wanted.length === 0) {
    throw new Error(`TLSMGR_INTEROP_MODES: unknown or empty (${unknown.join(', ')}); ` +
      `known: ${VARIANTS.map((v) => v.name).join(', ')}`);
  }
  // The variants are independent instances (own directories, ports and
  // maillogs) and mostly wait on timers: run them side by side.
  describe('real Postfix interop', { concurrency: true }, () => {
    for (const v of VARIANTS) if (wanted.includes(v.name)) defineVariant(v);
  });
}
