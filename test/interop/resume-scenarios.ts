/*
 * NAME
 *   resume-scenarios - drive real Postfix through TLS resumption and judge its log
 *
 * SYNOPSIS
 *   runStarttlsResume(instance, '1.2' | '1.3'): Promise<StarttlsObservation>
 *   starttlsResumeProblems(observation): string[]
 *   runCrossHostResume(a, b, '1.2' | '1.3'): Promise<CrossHostObservation>
 *   crossHostResumeProblems(observation): string[]
 *   runRelayResume(instance): Promise<RelayObservation>
 *   relayResumeProblems(observation): string[]
 *   tlsmgrUnreachable(log): string[]
 *
 * DESCRIPTION
 *   The run* functions only act and record (s_client output, maillog slices,
 *   smtpd pids); they throw only when the harness itself breaks. The *Problems
 *   functions list every piece of evidence of resumption *through tlsmgr* that
 *   is missing; an empty list is a pass. The positive suites require an empty
 *   list; the negative control (nothing serves private/tlsmgr) requires a
 *   non-empty one, which shows these checks can fail.
 *
 *   What counts as evidence (spec 6.5, section 7 scenario 46):
 *   - STARTTLS, TLS 1.2 session id: process A logs "save session ID to smtpd
 *     cache" (update), a *different* process B logs "looking up session ID in
 *     smtpd cache", "reloaded session ID from smtpd cache" (lookup OK) and
 *     "Reusing old session"; s_client prints "New," then "Reused,".
 *   - STARTTLS, TLS 1.3 ticket: A logs "Issuing session ticket, key
 *     expiration: T" (tktkey, empty name), B logs "Decrypting session ticket,
 *     key expiration: T" with the same T and "Reusing old session (RFC 5077
 *     session ticket)". B is a fresh process with an empty key cache, so the
 *     key (and its expiry T) can only have come from tlsmgr (tktkey by name).
 *   - across hosts (two instances, one shared cache): the same evidence, the
 *     first connection's lines in instance A's log and the second's in B's;
 *     for TLS 1.2 both smtpd services must have the same master.cf name (the
 *     cache_id ends in "&s=<service>"), so the looked-up id is the saved one.
 *   - smtp client: the second delivery logs "reloaded session S from smtp
 *     cache" and "Reusing old session". Postfix's client has no in-process
 *     session store: the session was returned by tlsmgr's lookup. The sink
 *     smtpd of the second delivery (a fresh process) decrypts the ticket as
 *     above.
 *
 * LIMITS
 *   Relies on Postfix 3.7 log texts at smtpd_tls_loglevel = smtp_tls_loglevel
 *   = 2. Each scenario needs its own log slice (logMark()), so scenarios on
 *   one instance must run one after the other.
 */
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { RELAY_DOMAIN, pollUntil, runSClient, sendMail, startSClient, type PostfixInstance, type SClientResult } from '../helpers/postfix.js';

/* ------------------------------------------------------------------ */
/* Log parsing                                                         */
/* ------------------------------------------------------------------ */

export interface LogLine {
  /** e.g. "postfix/resume/smtpd" */
  tag: string;
  pid: number;
  text: string;
}

/** parseMaillog - "Mon DD HH:MM:SS host tag[pid]: text" lines; others are ignored. */
export function parseMaillog(log: string): LogLine[] {
  const out: LogLine[] = [];
  for (const raw of log.split('\n')) {
    const m = /^\S+\s+\d+\s+[\d:]+\s+\S+\s+([^\s[]+)\[(\d+)\]: (.*)$/.exec(raw);
    if (m) out.push({ tag: m[1], pid: Number(m[2]), text: m[3] });
  }
  return out;
}

/** Pids of `tag` in the order of their first "connect from" line. */
function connectPids(lines: readonly LogLine[], tag: string): number[] {
  const pids: number[] = [];
  for (const l of lines) {
    if (l.tag === tag && l.text.startsWith('connect from ') && !pids.includes(l.pid)) pids.push(l.pid);
  }
  return pids;
}

function find(lines: readonly LogLine[], tag: string, pid: number | undefined, re: RegExp): RegExpExecArray | undefined {
  for (const l of lines) {
    if (l.tag !== tag || (pid !== undefined && l.pid !== pid)) continue;
    const m = re.exec(l.text);
    if (m) return m;
  }
  return undefined;
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** tlsmgrUnreachable - the Postfix warnings that say tlsmgr could not be used. */
export function tlsmgrUnreachable(log: string): string[] {
  return log.split('\n').filter((l) =>
    /warning: problem talking to server private\/tlsmgr|warning: no entropy for TLS key generation|warning: connect to private\/tlsmgr/.test(l));
}

/* ------------------------------------------------------------------ */
/* Scenarios 1 and 2: openssl s_client against smtpd -o max_use=1      */
/* ------------------------------------------------------------------ */

export const RESUME_TAG = 'postfix/resume/smtpd';
export const SINK_TAG = 'postfix/sink/smtpd';

export interface StarttlsObservation {
  tls: '1.2' | '1.3';
  first: SClientResult;
  second: SClientResult;
  /** The first connection was still open (its smtpd alive) when the second ran. */
  heldOpen: boolean;
  /** The first connection produced a session file and the second used it. */
  sessionFileUsed: boolean;
  /** s_client's -sess_out file of the first connection (the session the second offered). */
  sessionFile: string;
  /** smtpd pids serving the first and the second connection. */
  firstPid: number | undefined;
  secondPid: number | undefined;
  /** The maillog written during the scenario. */
  log: string;
}

/**
 * runStarttlsResume - two STARTTLS connections, the second offering the
 * first one's session (-sess_out / -sess_in). The first connection is kept
 * open until the second is done: even without max_use=1 the second could not
 * then be served by the first smtpd process, so only tlsmgr connects them.
 */
export async function runStarttlsResume(inst: PostfixInstance, tls: '1.2' | '1.3'): Promise<StarttlsObservation> {
  const mark = inst.logMark();
  const sessFile = join(inst.dir, `sclient-${tls}-${Date.now()}.pem`);
  // -no_ticket for TLS 1.2 so resumption goes through the session-id cache
  // (lookup/update); TLS 1.3 always resumes with a ticket (tktkey).
  const noTicket = tls === '1.2';
  const first = startSClient({ port: inst.resumePort, tls, noTicket, sessOut: sessFile, timeoutMs: 30_000 });
  const established = new RegExp(`${escapeRe(RESUME_TAG)}\\[\\d+\\]: \\S+ TLS connection established from`);
  // Ready when s_client has saved the session (TLS 1.3: the post-handshake
  // ticket has arrived) and smtpd has logged the end of its handshake, which
  // comes after its update/tktkey calls; or when the first client gave up.
  await pollUntil(() => {
    if (first.hasExited()) return true;
    const saved = existsSync(sessFile) && statSync(sessFile).size > 0;
    return saved && established.test(inst.readMaillog(mark)) ? true : undefined;
  }, { timeoutMs: 15_000, intervalMs: 50, what: `the first TLS ${tls} connection to be established` })
    .catch(() => undefined);
  const heldOpen = !first.hasExited();
  const sessionFileUsed = existsSync(sessFile) && statSync(sessFile).size > 0;
  const second = await runSClient({
    port: inst.resumePort, tls, noTicket, timeoutMs: 30_000,
    ...(sessionFileUsed ? { sessIn: sessFile } : {}),
  });
  const firstResult = await first.finish();
  // Both smtpd processes log "disconnect" last; wait for both so the slice is complete.
  await inst.waitForLogCount(new RegExp(`${escapeRe(RESUME_TAG)}\\[\\d+\\]: disconnect from`), 2,
    { since: mark, timeoutMs: 10_000 }).catch(() => undefined);
  const log = inst.readMaillog(mark);
  const pids = connectPids(parseMaillog(log), RESUME_TAG);
  return { tls, first: firstResult, second, heldOpen, sessionFileUsed, sessionFile: sessFile, firstPid: pids[0], secondPid: pids[1], log };
}

/** starttlsResumeProblems - missing evidence that the second connection resumed through tlsmgr. */
export function starttlsResumeProblems(o: StarttlsObservation): string[] {
  const p: string[] = [];
  const v = o.tls === '1.2' ? 'TLSv1\\.2' : 'TLSv1\\.3';
  if (!o.first.isNew || !new RegExp(`^New, ${v},`, 'm').test(o.first.output)) {
    p.push(`first s_client did not print "New, TLSv${o.tls}," (full handshake)`);
  }
  if (!o.sessionFileUsed) p.push('first s_client saved no session (-sess_out file empty or missing)');
  if (!o.second.reused || !new RegExp(`^Reused, ${v},`, 'm').test(o.second.output)) {
    p.push(`second s_client did not print "Reused, TLSv${o.tls},"`);
  }
  if (!o.heldOpen) p.push('first connection had ended before the second one ran');
  if (o.firstPid === undefined || o.secondPid === undefined) {
    p.push(`could not find two smtpd processes in the log (pids: ${String(o.firstPid)}, ${String(o.secondPid)})`);
  } else if (o.firstPid === o.secondPid) {
    p.push(`both connections were served by smtpd[${o.firstPid}]: resumption would not prove anything`);
  }
  const lines = parseMaillog(o.log);
  // The second smtpd must have started during this scenario: a process that
  // served an earlier connection could hold keys or sessions of its own.
  if (!find(lines, RESUME_TAG, o.secondPid, /^initializing the server-side TLS engine$/)) {
    p.push(`smtpd[${String(o.secondPid)}] was not started during this scenario (no "initializing the server-side TLS engine")`);
  }
  if (o.tls === '1.2') {
    const saved = find(lines, RESUME_TAG, o.firstPid, /: save session (\S+) to smtpd cache$/);
    if (!saved) p.push(`smtpd[${String(o.firstPid)}] did not log "save session ... to smtpd cache" (update)`);
    const id = saved?.[1];
    const idRe = id ? escapeRe(id) : '\\S+';
    if (!find(lines, RESUME_TAG, o.secondPid, new RegExp(`: looking up session ${idRe} in smtpd cache$`))) {
      p.push(`smtpd[${String(o.secondPid)}] did not log "looking up session ${id ?? '...'} in smtpd cache" (lookup)`);
    }
    if (!find(lines, RESUME_TAG, o.secondPid, new RegExp(`: reloaded session ${idRe} from smtpd cache$`))) {
      p.push(`smtpd[${String(o.secondPid)}] did not log "reloaded session ${id ?? '...'} from smtpd cache" (lookup OK)`);
    }
    if (!find(lines, RESUME_TAG, o.secondPid, /: Reusing old session$/)) {
      p.push(`smtpd[${String(o.secondPid)}] did not log "Reusing old session"`);
    }
  } else {
    const issued = find(lines, RESUME_TAG, o.firstPid, /: Issuing session ticket, key expiration: (\d+)$/);
    if (!issued) p.push(`smtpd[${String(o.firstPid)}] did not log "Issuing session ticket, key expiration: ..." (tktkey)`);
    const tout = issued?.[1] ?? '\\d+';
    if (!find(lines, RESUME_TAG, o.secondPid, new RegExp(`: Decrypting session ticket, key expiration: ${tout}$`))) {
      p.push(`smtpd[${String(o.secondPid)}] did not log "Decrypting session ticket, key expiration: ${issued?.[1] ?? '...'}"` +
        ' (the same key, fetched from tlsmgr by name)');
    }
    if (!find(lines, RESUME_TAG, o.secondPid, /: Reusing old session \(RFC 5077 session ticket\)$/)) {
      p.push(`smtpd[${String(o.secondPid)}] did not log "Reusing old session (RFC 5077 session ticket)"`);
    }
  }
  const bad = tlsmgrUnreachable(o.log);
  if (bad.length > 0) p.push(`Postfix could not use tlsmgr: ${bad[0]}`);
  return p;
}

/* ------------------------------------------------------------------ */
/* Across hosts: the session of instance A offered to instance B       */
/* ------------------------------------------------------------------ */

export interface CrossHostObservation {
  tls: '1.2' | '1.3';
  /** Instances A (first connection) and B (second), as "address:port". */
  hostA: string;
  hostB: string;
  first: SClientResult;
  second: SClientResult;
  sessionFileUsed: boolean;
  /** smtpd pids serving the first connection (in A's log) and the second (in B's). */
  firstPid: number | undefined;
  secondPid: number | undefined;
  /** The maillogs of A and B written during the scenario. */
  logA: string;
  logB: string;
}

/** Wait (bounded) until the resume smtpd of inst has logged `count` disconnects since mark. */
function waitForDisconnects(inst: PostfixInstance, mark: number, count: number): Promise<unknown> {
  return inst.waitForLogCount(new RegExp(`${escapeRe(RESUME_TAG)}\\[\\d+\\]: disconnect from`), count,
    { since: mark, timeoutMs: 10_000 }).catch(() => undefined);
}

/**
 * runCrossHostResume - a STARTTLS connection to instance A saves its session
 * (-sess_out); once A's smtpd has logged the end of its handshake, a second
 * connection to instance B offers it (-sess_in). Only a cache (TLS 1.2) or
 * ticket keys (TLS 1.3) shared by the two instances' tlsmgr daemons can make
 * B resume it.
 */
export async function runCrossHostResume(a: PostfixInstance, b: PostfixInstance, tls: '1.2' | '1.3'): Promise<CrossHostObservation> {
  const markA = a.logMark();
  const markB = b.logMark();
  const sessFile = join(a.dir, `sclient-cross-${tls}-${Date.now()}.pem`);
  const noTicket = tls === '1.2';
  const first = startSClient({ host: a.address, port: a.resumePort, tls, noTicket, sessOut: sessFile, timeoutMs: 30_000 });
  const established = new RegExp(`${escapeRe(RESUME_TAG)}\\[\\d+\\]: \\S+ TLS connection established from`);
  await pollUntil(() => {
    if (first.hasExited()) return true;
    const saved = existsSync(sessFile) && statSync(sessFile).size > 0;
    return saved && established.test(a.readMaillog(markA)) ? true : undefined;
  }, { timeoutMs: 15_000, intervalMs: 50, what: `the first TLS ${tls} connection (to ${a.address}) to be established` })
    .catch(() => undefined);
  const firstResult = await first.finish();
  const sessionFileUsed = existsSync(sessFile) && statSync(sessFile).size > 0;
  const second = await runSClient({
    host: b.address, port: b.resumePort, tls, noTicket, timeoutMs: 30_000,
    ...(sessionFileUsed ? { sessIn: sessFile } : {}),
  });
  await Promise.all([waitForDisconnects(a, markA, 1), waitForDisconnects(b, markB, 1)]);
  const logA = a.readMaillog(markA);
  const logB = b.readMaillog(markB);
  return {
    tls, hostA: `${a.address}:${a.resumePort}`, hostB: `${b.address}:${b.resumePort}`,
    first: firstResult, second, sessionFileUsed,
    firstPid: connectPids(parseMaillog(logA), RESUME_TAG)[0], secondPid: connectPids(parseMaillog(logB), RESUME_TAG)[0],
    logA, logB,
  };
}

/** crossHostResumeProblems - missing evidence that B resumed A's session through the shared cache or keys. */
export function crossHostResumeProblems(o: CrossHostObservation): string[] {
  const p: string[] = [];
  const v = o.tls === '1.2' ? 'TLSv1\\.2' : 'TLSv1\\.3';
  const A = `A (${o.hostA})`;
  const B = `B (${o.hostB})`;
  if (!o.first.isNew || !new RegExp(`^New, ${v},`, 'm').test(o.first.output)) {
    p.push(`s_client to ${A} did not print "New, TLSv${o.tls}," (full handshake)`);
  }
  if (!o.sessionFileUsed) p.push(`s_client to ${A} saved no session (-sess_out file empty or missing)`);
  if (!o.second.reused || !new RegExp(`^Reused, ${v},`, 'm').test(o.second.output)) {
    p.push(`s_client to ${B} did not print "Reused, TLSv${o.tls},"`);
  }
  if (o.firstPid === undefined) p.push(`no smtpd "connect from" in the log of ${A}`);
  if (o.secondPid === undefined) p.push(`no smtpd "connect from" in the log of ${B}`);
  const la = parseMaillog(o.logA);
  const lb = parseMaillog(o.logB);
  if (!find(lb, RESUME_TAG, o.secondPid, /^initializing the server-side TLS engine$/)) {
    p.push(`smtpd[${String(o.secondPid)}] of ${B} was not started during this scenario`);
  }
  if (o.tls === '1.2') {
    const saved = find(la, RESUME_TAG, o.firstPid, /: save session (\S+) to smtpd cache$/);
    if (!saved) p.push(`smtpd[${String(o.firstPid)}] of ${A} did not log "save session ... to smtpd cache" (update)`);
    const id = saved?.[1];
    const idRe = id ? escapeRe(id) : '\\S+';
    if (!find(lb, RESUME_TAG, o.secondPid, new RegExp(`: looking up session ${idRe} in smtpd cache$`))) {
      p.push(`smtpd[${String(o.secondPid)}] of ${B} did not log "looking up session ${id ?? '...'} in smtpd cache"` +
        ' (the same cache_id: are the service names equal?)');
    }
    if (!find(lb, RESUME_TAG, o.secondPid, new RegExp(`: reloaded session ${idRe} from smtpd cache$`))) {
      p.push(`smtpd[${String(o.secondPid)}] of ${B} did not log "reloaded session ${id ?? '...'} from smtpd cache" (lookup OK)`);
    }
    if (!find(lb, RESUME_TAG, o.secondPid, /: Reusing old session$/)) {
      p.push(`smtpd[${String(o.secondPid)}] of ${B} did not log "Reusing old session"`);
    }
  } else {
    const issued = find(la, RESUME_TAG, o.firstPid, /: Issuing session ticket, key expiration: (\d+)$/);
    if (!issued) p.push(`smtpd[${String(o.firstPid)}] of ${A} did not log "Issuing session ticket, key expiration: ..." (tktkey)`);
    const tout = issued?.[1] ?? '\\d+';
    if (!find(lb, RESUME_TAG, o.secondPid, new RegExp(`: Decrypting session ticket, key expiration: ${tout}$`))) {
      p.push(`smtpd[${String(o.secondPid)}] of ${B} did not log "Decrypting session ticket, key expiration: ${issued?.[1] ?? '...'}"` +
        ' (the key A issued with, found by name through B\'s tlsmgr)');
    }
    if (!find(lb, RESUME_TAG, o.secondPid, /: Reusing old session \(RFC 5077 session ticket\)$/)) {
      p.push(`smtpd[${String(o.secondPid)}] of ${B} did not log "Reusing old session (RFC 5077 session ticket)"`);
    }
  }
  const bad = tlsmgrUnreachable(o.logA + o.logB);
  if (bad.length > 0) p.push(`Postfix could not use tlsmgr: ${bad[0]}`);
  return p;
}

/* ------------------------------------------------------------------ */
/* Scenario 3: Postfix's own smtp client, relaying to the sink         */
/* ------------------------------------------------------------------ */

export interface Delivery {
  rcpt: string;
  /** The smtp client's status for this recipient: sent, deferred, bounced; undefined if none was logged in time. */
  smtpStatus: string | undefined;
  /** discard(8) logged the message as sent at the sink. */
  discarded: boolean;
  /** The maillog written while this message was sent and delivered. */
  log: string;
}

export interface RelayObservation {
  first: Delivery;
  second: Delivery;
}

async function deliverOne(inst: PostfixInstance, rcpt: string): Promise<Delivery> {
  const mark = inst.logMark();
  await sendMail({ port: inst.resumePort, to: rcpt, timeoutMs: 20_000 });
  const r = escapeRe(rcpt);
  const outcome = await inst.waitForLog(new RegExp(`postfix/smtp\\[\\d+\\]: \\w+: to=<${r}>, .*status=(\\w+)`),
    { since: mark, timeoutMs: 20_000 }).catch(() => undefined);
  const smtpStatus = outcome?.[1];
  let discarded = false;
  if (smtpStatus === 'sent') {
    discarded = await inst.waitForLog(new RegExp(`postfix/discard\\[\\d+\\]: \\w+: to=<${r}>, .*status=sent`),
      { since: mark, timeoutMs: 10_000 }).then(() => true, () => false);
  }
  // The sink smtpd logs "disconnect" last; let it finish so the slice is complete.
  await inst.waitForLog(new RegExp(`${escapeRe(SINK_TAG)}\\[\\d+\\]: disconnect from`),
    { since: mark, timeoutMs: 5_000 }).catch(() => undefined);
  return { rcpt, smtpStatus, discarded, log: inst.readMaillog(mark) };
}

/**
 * runRelayResume - two messages through smtpd (resume port) -> qmgr -> smtp
 * -> [127.0.0.1]:sink with TLS required, one after the other, each on a new
 * connection (no connection caching).
 */
export async function runRelayResume(inst: PostfixInstance): Promise<RelayObservation> {
  const tag = `${inst.mode}-${Date.now()}`;
  const first = await deliverOne(inst, `first-${tag}@${RELAY_DOMAIN}`);
  const second = await deliverOne(inst, `second-${tag}@${RELAY_DOMAIN}`);
  return { first, second };
}

/** relayResumeProblems - missing evidence that the second delivery resumed through tlsmgr. */
export function relayResumeProblems(o: RelayObservation): string[] {
  const p: string[] = [];
  for (const d of [o.first, o.second]) {
    if (d.smtpStatus !== 'sent') p.push(`smtp status for <${d.rcpt}> is ${d.smtpStatus ?? '(none logged)'}, not sent`);
    else if (!d.discarded) p.push(`<${d.rcpt}> was not discarded at the sink`);
  }
  const l1 = parseMaillog(o.first.log);
  const l2 = parseMaillog(o.second.log);
  const smtp = 'postfix/smtp';
  // Client side, first delivery: a cache miss, then the new session is stored.
  const saved = find(l1, smtp, undefined, /^save session (\S+) to smtp cache$/);
  if (!saved) p.push('first delivery: smtp did not log "save session ... to smtp cache" (update)');
  const id = saved?.[1];
  const idRe = id ? escapeRe(id) : '\\S+';
  if (!find(l1, smtp, undefined, new RegExp(`^looking for session ${idRe} in smtp cache$`))) {
    p.push('first delivery: smtp did not log "looking for session ... in smtp cache"');
  }
  // Client side, second delivery: the lookup returns the session, OpenSSL reuses it.
  if (!find(l2, smtp, undefined, new RegExp(`^looking for session ${idRe} in smtp cache$`))) {
    p.push(`second delivery: smtp did not log "looking for session ${id ?? '...'} in smtp cache" (lookup)`);
  }
  if (!find(l2, smtp, undefined, new RegExp(`^reloaded session ${idRe} from smtp cache$`))) {
    p.push(`second delivery: smtp did not log "reloaded session ${id ?? '...'} from smtp cache" (lookup OK)`);
  }
  if (!find(l2, smtp, undefined, /: Reusing old session$/)) {
    p.push('second delivery: smtp did not log "...: Reusing old session"');
  }
  // Server side: the sink smtpd (max_use=1) of the second delivery is a new
  // process and decrypts the ticket with the key issued by the first one.
  const pid1 = connectPids(l1, SINK_TAG)[0];
  const pid2 = connectPids(l2, SINK_TAG)[0];
  if (pid1 === undefined || pid2 === undefined || pid1 === pid2) {
    p.push(`sink smtpd pids not two distinct processes (${String(pid1)}, ${String(pid2)})`);
  }
  if (!find(l2, SINK_TAG, pid2, /^initializing the server-side TLS engine$/)) {
    p.push(`second delivery: sink smtpd[${String(pid2)}] was not a fresh process`);
  }
  const issued = find(l1, SINK_TAG, pid1, /: Issuing session ticket, key expiration: (\d+)$/);
  if (!issued) p.push('first delivery: sink smtpd did not log "Issuing session ticket, key expiration: ..."');
  if (!find(l2, SINK_TAG, pid2, new RegExp(`: Decrypting session ticket, key expiration: ${issued?.[1] ?? '\\d+'}$`))) {
    p.push('second delivery: sink smtpd did not log "Decrypting session ticket, key expiration: ..." with the same key');
  }
  if (!find(l2, SINK_TAG, pid2, /: Reusing old session \(RFC 5077 session ticket\)$/)) {
    p.push('second delivery: sink smtpd did not log "Reusing old session (RFC 5077 session ticket)"');
  }
  const bad = tlsmgrUnreachable(o.first.log + o.second.log);
  if (bad.length > 0) p.push(`Postfix could not use tlsmgr: ${bad[0]}`);
  return p;
}
