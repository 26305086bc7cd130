/*
 * NAME
 *   cluster-resume.test - two real Postfix hosts resume each other's TLS sessions through
 *   one redis-server (cluster mode, redis: session caches and shared ticket keys)
 *
 * DESCRIPTION
 *   Two throw-away Postfix 3.7 instances play two hosts behind a load balancer: A listens
 *   on 127.0.0.1, B on 127.0.0.2 (explicit master.cf listeners: Postfix refuses
 *   inet_interfaces = 127.0.0.2, not an interface address), both on the same resume port,
 *   and both smtpd services are named just "<port>" (-n; real hosts all say "smtp"), so
 *   smtpd's TLS 1.2 cache_id ("<hex id>&s=<service>&l=<OpenSSL version>") is the same on
 *   both. Each runs its own tlsmgr (ours, standalone); both main.cf name the same
 *   redis:<cf> for smtpd_tls_session_cache_database and smtp_tls_session_cache_database
 *   (one cf file, one 0600 key file, one redis-server), so ticket keys are shared too
 *   (tlsmgr_tktkey_database empty). The certificates differ per instance: resumption
 *   does not send them again. Checked, in order:
 *     1. a TLS 1.2 session (s_client -tls1_2 -no_ticket -sess_out) made on A is resumed
 *        on B (-sess_in): s_client prints "Reused,", A's smtpd logged "save session ID
 *        to smtpd cache", B's smtpd (a fresh process) "reloaded session ID from smtpd
 *        cache" and "Reusing old session"; Redis holds a tlsmgr:scache:smtpd: entry;
 *     2. a TLS 1.3 ticket issued on A is resumed on B: "Reused,", and B's smtpd logs
 *        "Decrypting session ticket, key expiration: T" with the T of A's "Issuing
 *        session ticket, key expiration: T"; that key is the slot key stored in Redis
 *        (tlsmgr:tktkey:<half>:<T/half - 1>);
 *     3. Redis stopped (negative control and degraded mode): the same TLS 1.2 check
 *        finds no resumption on B (a full handshake after a missed lookup), which shows
 *        the checks above can fail; mail still goes through over TLS on both hosts
 *        (swaks --tls to the resume port, 250, smtpd "TLS connection established", relayed
 *        to the sink over TLS); both daemons keep running and each logs the rate-limited
 *        "... -- serving without Redis" warning (at most one per kind in the outage);
 *     4. Redis started again on the same port: both daemons reconnect (bounded poll on
 *        CLIENT LIST, then their "connection ready again" line) and a TLS 1.2 session
 *        from A resumes on B again, and one from B on A.
 *   TLS 1.3 during the outage is only reported: a daemon that already holds the current
 *   slot key keeps using it (keys never change), so whether a ticket resumes across hosts
 *   then depends on whether the slot changed during the outage.
 *
 * LIMITS
 *   Needs root, Debian's postfix, openssl, swaks and redis-server, Linux (127.0.0.2 on lo).
 *   Without Postfix the suite is skipped with a loud message, without redis-server
 *   skipped; under CI=true either is a failure. About 12 s: two instances start and stop
 *   (2-3 s each, side by side), every scenario is a few s_client or swaks runs. Every wait
 *   is bounded in time and in count.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test, type TestContext } from 'node:test';
import { RELAY_DOMAIN, commonFreePort, pollUntil, postfixAvailability, sendMail, startOurTlsmgr, startPostfix, type PostfixInstance, type SClientResult } from '../helpers/postfix.js';
import { skipWithoutRedis, startRedis, writeClusterFiles, type RedisServer } from '../helpers/redis.js';
import { RESUME_TAG, crossHostResumeProblems, parseMaillog, runCrossHostResume, tlsmgrUnreachable, type CrossHostObservation } from './resume-scenarios.js';

const ADDRESS_A = '127.0.0.1';
const ADDRESS_B = '127.0.0.2';
const SETUP_TIMEOUT = 60_000;
const SCENARIO_TIMEOUT = 45_000;
/** Half of smtpd_tls_session_cache_timeout (3600 s, the default): the ticket-key slot length. */
const SLOT_HALF = 1800;
const WITHOUT_REDIS = /warning: redis .* -- serving without Redis/;

let redis: RedisServer | undefined;
let dir: string | undefined;
let a: PostfixInstance | undefined;
let b: PostfixInstance | undefined;
// A setup failure is kept and rethrown by every test (a failing before() hook would only
// mark them "cancelled", hiding the reason).
let setupError: unknown;

function ready(): { a: PostfixInstance; b: PostfixInstance; redis: RedisServer } {
  if (setupError !== undefined) throw setupError;
  assert.ok(a && b && redis, 'setup did not finish');
  return { a, b, redis };
}

/** Our daemon's stderr (its log in standalone mode). */
function daemonLog(i: PostfixInstance): string {
  return i.ours?.stderr() ?? '';
}

/** Context for a failure message: both maillog tails and both daemons' logs. */
function context(since: { a?: number; b?: number } = {}): string {
  let s = '';
  for (const [name, i, mark] of [['A', a, since.a], ['B', b, since.b]] as const) {
    if (!i) continue;
    s += `\n--- maillog of ${name} (${i.maillogPath}) tail ---\n${i.maillogTail(40, mark ?? 0)}`;
    s += `\n--- our tlsmgr of ${name}, stderr tail ---\n${daemonLog(i).split('\n').slice(-20).join('\n')}`;
  }
  return s;
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** The "New, ..." or "Reused, ..." line s_client printed. */
function sessionLine(r: SClientResult): string {
  return /^(New|Reused), .*$/m.exec(r.output)?.[0] ?? '(no New/Reused line)';
}

function observationText(o: CrossHostObservation): string {
  return `--- log of A ---\n${o.logA}\n--- log of B ---\n${o.logB}\n--- s_client to B ---\n${o.second.output}`;
}

/** Both of our daemons still run (no exit, no signal). */
function checkDaemonsAlive(): void {
  for (const [name, i] of [['A', a], ['B', b]] as const) {
    assert.ok(i?.ours, `instance ${name} has no daemon of ours`);
    assert.equal(i.ours.child.exitCode, null, `our tlsmgr of ${name} exited${context()}`);
    assert.equal(i.ours.child.signalCode, null, `our tlsmgr of ${name} was killed${context()}`);
  }
}

/** Redis clients named "tlsmgr" (ioredis connectionName): the daemons' links. */
async function tlsmgrClients(r: RedisServer): Promise<number> {
  const list = await r.command('CLIENT', 'LIST').catch(() => null);
  if (!Buffer.isBuffer(list)) return 0;
  return list.toString('latin1').split('\n').filter((l) => / name=tlsmgr /.test(` ${l} `)).length;
}

function report(t: TestContext, o: CrossHostObservation, ms: number): void {
  t.diagnostic(`s_client to A ${o.hostA}: ${sessionLine(o.first)}`);
  t.diagnostic(`s_client to B ${o.hostB}: ${sessionLine(o.second)} (${ms} ms for both runs)`);
}

/** Send one message with STARTTLS to the resume port of i; it is relayed (TLS) to the sink. */
async function deliverWithTls(t: TestContext, name: string, i: PostfixInstance): Promise<void> {
  const mark = i.logMark();
  const rcpt = `redis-down-${name}-${Date.now()}@${RELAY_DOMAIN}`;
  const r = await sendMail({ host: i.address, port: i.resumePort, tls: true, to: rcpt, timeoutMs: 20_000 });
  // swaks marks lines sent and received under TLS with ~> and <~.
  const queued = /^<~ +(250 .*queued as .*)$/m.exec(r.stdout);
  assert.ok(queued, `swaks --tls to ${name}: no 250 "queued as" under TLS:\n${r.stdout}${r.stderr}`);
  t.diagnostic(`swaks --tls to ${name} ${i.address}:${i.resumePort}: ${queued[1]}`);
  const est = await i.waitForLog(new RegExp(`${escapeRe(RESUME_TAG)}\\[\\d+\\]: \\S+ TLS connection established from .*`),
    { since: mark, timeoutMs: 10_000 });
  t.diagnostic(`${name}: ${est[0]}`);
  const sent = await i.waitForLog(new RegExp(`postfix/smtp\\[\\d+\\]: \\w+: to=<${escapeRe(rcpt)}>, .*status=(\\w+)`),
    { since: mark, timeoutMs: 20_000 });
  assert.equal(sent[1], 'sent', `${name}: relaying <${rcpt}> to the sink: ${sent[0]}${context()}`);
  assert.match(i.readMaillog(mark), /postfix\/smtp\[\d+\]: (Verified|Trusted|Untrusted|Anonymous) TLS connection established to /,
    `${name}: the relay to the sink did not use TLS`);
  assert.deepEqual(tlsmgrUnreachable(i.readMaillog(mark)), [], `${name}: Postfix could not use tlsmgr`);
}

function defineSuite(): void {
  describe('cluster: two Postfix hosts share TLS sessions and ticket keys through Redis', { concurrency: 1 }, () => {
    before(async () => {
      try {
        dir = mkdtempSync(join(tmpdir(), 'tlsmgr-cluster-'));
        redis = await startRedis();
        const { cf } = writeClusterFiles(dir, redis, { via: 'tcp', timeout: '200ms' });
        const port = await commonFreePort([ADDRESS_A, ADDRESS_B]);
        const mainCf = {
          smtpd_tls_session_cache_database: `redis:${cf}`,
          smtp_tls_session_cache_database: `redis:${cf}`,
          // Postfix's default, spelt out: it sets the ticket-key slot length (SLOT_HALF).
          smtpd_tls_session_cache_timeout: `${2 * SLOT_HALF}s`,
        };
        const started = await Promise.allSettled([ADDRESS_A, ADDRESS_B].map((address) => startPostfix({
          tlsmgr: 'ours', address, resumePort: port, resumeServiceName: String(port), mainCf,
        })));
        if (started[0].status === 'fulfilled') a = started[0].value;
        if (started[1].status === 'fulfilled') b = started[1].value;
        for (const s of started) if (s.status === 'rejected') throw s.reason;
        assert.ok(a && b);
        await Promise.all([startOurTlsmgr(a), startOurTlsmgr(b)]);
        // Both links connected before anything is asked of them (ioredis connects in the background).
        const r = redis;
        await pollUntil(async () => ((await tlsmgrClients(r)) >= 2 ? true : undefined),
          { timeoutMs: 10_000, intervalMs: 100, what: `two "tlsmgr" clients in CLIENT LIST of redis-server :${r.port}` });
      } catch (err) {
        setupError = err;
      }
    }, { timeout: SETUP_TIMEOUT });

    after(async () => {
      await Promise.allSettled([a?.stop(), b?.stop()]);
      await redis?.destroy();
      if (dir) rmSync(dir, { recursive: true, force: true });
    }, { timeout: 60_000 });

    test('1. TLS 1.2: a session made on A is resumed on B through the shared smtpd cache', { timeout: SCENARIO_TIMEOUT }, async (t) => {
      const { a: A, b: B, redis: r } = ready();
      const t0 = Date.now();
      const o = await runCrossHostResume(A, B, '1.2');
      report(t, o, Date.now() - t0);
      const problems = crossHostResumeProblems(o);
      assert.deepEqual(problems, [], `no resumption across hosts:\n- ${problems.join('\n- ')}\n${observationText(o)}${context()}`);
      const saved = /: save session (\S+) to smtpd cache$/m.exec(o.logA);
      t.diagnostic(`A: save session ${saved?.[1] ?? '?'} to smtpd cache`);
      assert.ok(saved?.[1].includes(`&s=${A.resumeService}`), `cache_id does not name the service "${A.resumeService}"`);
      assert.equal(A.resumeService, B.resumeService);
      for (const re of [/reloaded session \S+ from smtpd cache$/m, /Reusing old session$/m]) {
        t.diagnostic(`B: ${re.exec(o.logB)?.[0] ?? '?'}`);
      }
      const keys = [...(await r.dump()).keys()];
      assert.ok(keys.some((k) => k.startsWith('tlsmgr:scache:smtpd:')), `no smtpd cache entry in Redis: ${keys.join(' ')}`);
      checkDaemonsAlive();
    });

    test('2. TLS 1.3: a ticket issued on A is decrypted on B with the same key (shared ticket keys)', { timeout: SCENARIO_TIMEOUT }, async (t) => {
      const { a: A, b: B, redis: r } = ready();
      const t0 = Date.now();
      const o = await runCrossHostResume(A, B, '1.3');
      report(t, o, Date.now() - t0);
      const problems = crossHostResumeProblems(o);
      assert.deepEqual(problems, [], `no resumption across hosts:\n- ${problems.join('\n- ')}\n${observationText(o)}${context()}`);
      const issued = /Issuing session ticket, key expiration: (\d+)$/m.exec(o.logA);
      const decrypted = /Decrypting session ticket, key expiration: (\d+)$/m.exec(o.logB);
      t.diagnostic(`A: ${issued?.[0] ?? '?'}`);
      t.diagnostic(`B: ${decrypted?.[0] ?? '?'}`);
      assert.ok(issued && decrypted);
      const T = Number(issued[1]);
      assert.equal(Number(decrypted[1]), T);
      // The key is the group's key of a slot: tout = (slot + 1) * half, stored in Redis.
      assert.equal(T % SLOT_HALF, 0, `key expiration ${T} is not the end of a ${SLOT_HALF} s slot`);
      const slotKey = `tlsmgr:tktkey:${SLOT_HALF}:${T / SLOT_HALF - 1}`;
      const keys = [...(await r.dump()).keys()];
      assert.ok(keys.includes(slotKey), `no ${slotKey} in Redis: ${keys.join(' ')}`);
      t.diagnostic(`Redis holds ${slotKey} (T - now = ${T - Math.floor(Date.now() / 1000)} s)`);
      checkDaemonsAlive();
    });

    test('3. Redis stopped: no resumption across hosts (negative control), mail still flows over TLS, daemons warn and live on',
      { timeout: SCENARIO_TIMEOUT }, async (t) => {
        const { a: A, b: B, redis: r } = ready();
        const errMark = { a: daemonLog(A).length, b: daemonLog(B).length };
        const t0 = Date.now();
        await r.stop();
        // Each link notices (the connection closes, reconnection is refused) and says so.
        await pollUntil(() => (WITHOUT_REDIS.test(daemonLog(A).slice(errMark.a)) && WITHOUT_REDIS.test(daemonLog(B).slice(errMark.b))
          ? true : undefined), { timeoutMs: 10_000, what: `"serving without Redis" from both daemons${context()}` });
        t.diagnostic(`Redis stopped; both daemons warned within ${Date.now() - t0} ms`);

        const o = await runCrossHostResume(A, B, '1.2');
        report(t, o, Date.now() - t0);
        const problems = crossHostResumeProblems(o);
        assert.ok(problems.length > 0, `resumption across hosts reported with Redis stopped:\n${observationText(o)}`);
        t.diagnostic(`negative control: ${problems.length} missing piece(s) of evidence, e.g. ${problems[0]}`);
        assert.ok(o.first.isNew, `TLS 1.2 handshake with A failed:\n${o.first.output}`);
        assert.ok(o.second.isNew && !o.second.reused, `B did not do a full handshake:\n${o.second.output}`);
        assert.match(o.logA, /: save session \S+ to smtpd cache$/m, 'A did not try to save the session');
        assert.match(o.logB, /: looking up session \S+ in smtpd cache$/m, 'B did not look the session up (so the control proves nothing)');
        assert.doesNotMatch(o.logB, /reloaded session|Reusing old session/, 'B resumed a session with Redis stopped');
        assert.deepEqual(tlsmgrUnreachable(o.logA + o.logB), [], `Postfix could not reach tlsmgr itself${context()}`);

        // TLS 1.3 in the outage: reported only (see the header).
        const o13 = await runCrossHostResume(A, B, '1.3');
        t.diagnostic(`TLS 1.3 in the outage (not judged): A ${sessionLine(o13.first)}; B ${sessionLine(o13.second)}; ` +
          `A ${/Issuing session ticket, key expiration: \d+/.exec(o13.logA)?.[0] ?? '(no ticket issued)'}; ` +
          `B ${/Decrypting session ticket, key expiration: \d+/.exec(o13.logB)?.[0] ?? '(no ticket decrypted)'}`);

        // Mail flows over TLS on both hosts: smtpd with STARTTLS, and the relay to the sink.
        await Promise.all([deliverWithTls(t, 'A', A), deliverWithTls(t, 'B', B)]);

        checkDaemonsAlive();
        for (const [name, i, mark] of [['A', A, errMark.a], ['B', B, errMark.b]] as const) {
          const lines = daemonLog(i).slice(mark).split('\n').filter((l) => WITHOUT_REDIS.test(l));
          t.diagnostic(`our tlsmgr of ${name}: ${lines.length} "serving without Redis" line(s) in ${Date.now() - t0} ms; first: ${lines[0]}`);
          // One per kind (unavailable, timeout, error) per minute: the outage is shorter than that.
          assert.ok(lines.length >= 1 && lines.length <= 3, `${name}: ${lines.length} warnings, not rate-limited:\n${lines.join('\n')}`);
        }
      });

    test('4. Redis started again: both daemons reconnect and TLS 1.2 sessions are shared again', { timeout: SCENARIO_TIMEOUT }, async (t) => {
      const { a: A, b: B, redis: r } = ready();
      const errMark = { a: daemonLog(A).length, b: daemonLog(B).length };
      const t0 = Date.now();
      await r.start();
      await pollUntil(async () => ((await tlsmgrClients(r)) >= 2 ? true : undefined),
        { timeoutMs: 15_000, intervalMs: 100, what: `both daemons to reconnect to redis-server :${r.port}${context()}` });
      t.diagnostic(`Redis started again; both daemons connected within ${Date.now() - t0} ms`);
      const READY_AGAIN = /connection ready again -- sharing resumes/;
      await pollUntil(() => (READY_AGAIN.test(daemonLog(A).slice(errMark.a)) && READY_AGAIN.test(daemonLog(B).slice(errMark.b))
        ? true : undefined), { timeoutMs: 5_000, what: `"connection ready again" from both daemons${context()}` });

      const o = await runCrossHostResume(A, B, '1.2');
      report(t, o, Date.now() - t0);
      const problems = crossHostResumeProblems(o);
      assert.deepEqual(problems, [], `no resumption A -> B after Redis came back:\n- ${problems.join('\n- ')}\n${observationText(o)}${context()}`);
      const back = await runCrossHostResume(B, A, '1.2');
      t.diagnostic(`B -> A: ${sessionLine(back.first)} / ${sessionLine(back.second)}`);
      const backProblems = crossHostResumeProblems(back);
      assert.deepEqual(backProblems, [], `no resumption B -> A after Redis came back:\n- ${backProblems.join('\n- ')}\n${observationText(back)}${context()}`);
      checkDaemonsAlive();
      const smtpd = parseMaillog(o.logB).filter((l) => l.tag === RESUME_TAG && /reloaded session/.test(l.text));
      t.diagnostic(`B: ${smtpd[0]?.text ?? '?'}`);
    });
  });
}

const avail = postfixAvailability();
const noRedis = skipWithoutRedis();
if (!avail.ok) {
  if (process.env.CI === 'true') {
    test('cluster interop (real Postfix + Redis)', () => {
      assert.fail(`CI=true but the real-Postfix interop tests cannot run: ${avail.reason}`);
    });
  } else {
    console.error(`\n${'*'.repeat(72)}\n*** SKIPPING the real-Postfix cluster tests: ${avail.reason}\n` +
      `*** (under CI=true this is a failure)\n${'*'.repeat(72)}\n`);
    test('cluster interop (real Postfix + Redis)', { skip: avail.reason }, () => undefined);
  }
} else if (noRedis !== false) {
  console.error(`\n*** SKIPPING the real-Postfix cluster tests: ${noRedis} (under CI=true this is a failure)\n`);
  test('cluster interop (real Postfix + Redis)', { skip: noRedis }, () => undefined);
} else {
  defineSuite();
}
