/*
 * dispatch - the request branches of tlsmgr.c (spec 2.3-2.8, 3.2-3.4) from exact request
 * bytes to exact reply bytes, through the real reader, scanner, Dispatcher, CacheTable,
 * TlsScache, MemoryStore and TicketKeyRing, with a FakeClock (scenarios 9-33, 47, 49, 54,
 * 55, 57, 58): seed sizes, policy and timeout sanitising, lookup/update/delete with disabled
 * and unknown types, expiry at t+T and t+T+1, corrupt stored records, non-UTF-8 cache ids,
 * the same-database fatal, and ticket keys (record layout, tout, reuse, rotation, lookup by
 * name, grace period, third rotation, bad name lengths, smtpd timeout 0); a seed whose bytes
 * cannot be produced (the source throws or returns the wrong length) is ERR with an empty seed.
 */

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CacheTable } from '../../src/cache/caches.js';
import { SEAL_OVERHEAD } from '../../src/util/seal.js';
import { FakeClock } from '../../src/util/clock.js';
import { FatalError } from '../../src/util/errors.js';
import { b64, ERR, FAIL, OK, req, show, SMTPD_DB, testConfig, type Reply } from '../helpers/attr.js';
import { makeHarness, T0, type Harness } from '../helpers/harness.js';

const bytes = (s: string): Buffer => Buffer.from(s, 'latin1');

/** Serve and compare the reply bytes exactly. */
function exact(h: Harness, request: Buffer, want: string, msg?: string): void {
  assert.equal(show(h.serveRaw(request)), show(bytes(want)), msg ?? show(request));
}

function mustServe(h: Harness, request: Buffer): Reply {
  const r = h.serve(request);
  assert.ok(r !== null, `no reply to ${show(request)}`);
  return r;
}

const SEED_FAIL = `status\0${FAIL}\0seed\0\0\0`;
const LOOKUP_FAIL = `status\0${FAIL}\0session\0\0\0`;
const LOOKUP_MISS = `status\0${ERR}\0session\0\0\0`;
const STATUS_OK = `status\0${OK}\0\0`;
const STATUS_ERR = `status\0${ERR}\0\0`;
const STATUS_FAIL = `status\0${FAIL}\0\0`;
const KEYBUF_FAIL = `status\0${FAIL}\0keybuf\0\0\0`;
const KEYBUF_ERR = `status\0${ERR}\0keybuf\0\0\0`;

const seedReq = (size: string): Buffer => req('seed', ['size', size]);
const lookup = (type: string, id: string | Buffer): Buffer => req('lookup', ['cache_type', type], ['cache_id', id]);
const update = (type: string, id: string | Buffer, session: Buffer | string): Buffer =>
  req('update', ['cache_type', type], ['cache_id', id], ['session', b64(session)]);
const del = (type: string, id: string | Buffer): Buffer => req('delete', ['cache_type', type], ['cache_id', id]);
const tkt = (name: Buffer | string): Buffer => req('tktkey', ['keyname', typeof name === 'string' ? name : b64(name)]);

/* ---------------- seed ---------------- */

test('scenario 9: seed 32, 1 and 255 -> OK with that many bytes, exact framing', () => {
  const h = makeHarness();
  for (const n of [32, 1, 255]) {
    const out = h.serveRaw(seedReq(String(n)));
    const r = mustServe(h, seedReq(String(n)));
    assert.deepEqual(r.names, ['status', 'seed']);
    assert.equal(r.status, 0);
    assert.equal(r.data('seed').length, n);
    const b64len = Math.ceil(n / 3) * 4;
    assert.equal(out.length, 'status\x000\0seed\0'.length + b64len + 2, `framing for ${n}`);
    assert.equal(out.subarray(0, 14).toString('latin1'), 'status\x000\0seed\0');
    assert.equal(out.subarray(-2).toString('hex'), '0000');
  }
  assert.deepEqual(h.warnings, []);
});

test('scenario 9: the seed bytes are the byte source\'s output, verbatim', () => {
  const h = makeHarness({ realRandom: false });
  const expected = Buffer.alloc(4);
  for (let i = 0; i < 4; i++) expected[i] = (i * 7 + 1) & 0xff; // counterBytes() in the harness
  exact(h, seedReq('4'), `status\x000\0seed\0${expected.toString('base64')}\0\0`);
});

test('scenario 12: consecutive seeds differ', () => {
  const h = makeHarness({ realRandom: true });
  const a = mustServe(h, seedReq('32')).data('seed');
  const b = mustServe(h, seedReq('32')).data('seed');
  assert.notEqual(a.toString('hex'), b.toString('hex'));
});

test('scenario 10: size 0, 256, 4294967295 and -1 -> FAIL, empty seed, "bogus seed length"', () => {
  const h = makeHarness();
  for (const [text, shown] of [['0', '0'], ['256', '256'], ['4294967295', '-1'], ['-1', '-1'], ['4294967296', '0']]) {
    exact(h, seedReq(text), SEED_FAIL, text);
    assert.deepEqual(h.takeWarnings(), [`bogus seed length "${shown}" in "seed" request`], text);
  }
});

test('scenario 11: size non-numeric or missing -> FAIL with empty seed', () => {
  const h = makeHarness();
  assert.equal(mustServe(h, seedReq('16')).status, 0, 'a previous seed does not leak (2.2.2)');
  exact(h, seedReq('abc'), SEED_FAIL);
  assert.deepEqual(h.takeWarnings(), ['malformed numerical data from tlsmgr socket while reading input attribute value: abc']);
  exact(h, req('seed'), SEED_FAIL);
  assert.deepEqual(h.takeWarnings(), ['missing attribute size in input from tlsmgr socket']);
});

test('scenario 54: size " 5", "+5", "05" -> 5 bytes; "4294967297" -> 1 byte; "5 ", "0x5", "" -> FAIL', () => {
  const h = makeHarness();
  for (const text of [' 5', '+5', '05']) assert.equal(mustServe(h, seedReq(text)).data('seed').length, 5, JSON.stringify(text));
  assert.equal(mustServe(h, seedReq('4294967297')).data('seed').length, 1);
  assert.deepEqual(h.takeWarnings(), []);
  for (const text of ['5 ', '0x5', '']) {
    exact(h, seedReq(text), SEED_FAIL, JSON.stringify(text));
    assert.deepEqual(h.takeWarnings(), [`malformed numerical data from tlsmgr socket while reading input attribute value: ${text}`]);
  }
});

const SEED_ERR = `status\0${ERR}\0seed\0\0\0`;

test('a seed source that throws -> ERR with an empty seed (tlsmgr.c 3.7.21+), one warning, no bytes', () => {
  const h = makeHarness({
    seed: () => {
      throw new Error('RNG failure');
    },
  });
  for (const n of ['1', '32', '255']) {
    exact(h, seedReq(n), SEED_ERR, n);
    assert.deepEqual(h.takeWarnings(), [`cannot generate ${n} seed bytes: RNG failure`]);
  }
  // Sizes out of range are still the scan's FAIL, before any source is asked.
  exact(h, seedReq('0'), SEED_FAIL);
  assert.deepEqual(h.takeWarnings(), ['bogus seed length "0" in "seed" request']);
  exact(h, req('policy', ['cache_type', 'smtpd']), `status\0${OK}\0cachable\x001\0timeout\x003600\0\0`, 'the rest is served');
});

test('a seed source that returns fewer or more bytes than asked, or no buffer -> ERR with an empty seed', () => {
  const cases: Array<[string, (n: number) => Buffer, string]> = [
    ['empty', () => Buffer.alloc(0), '0 bytes'],
    ['short', (n) => Buffer.alloc(n - 1, 0xaa), '31 bytes'],
    ['long', (n) => Buffer.alloc(n + 1, 0xaa), '33 bytes'],
    ['none', () => undefined as unknown as Buffer, 'undefined'],
  ];
  for (const [label, seed, got] of cases) {
    const h = makeHarness({ seed });
    exact(h, seedReq('32'), SEED_ERR, label);
    assert.deepEqual(h.takeWarnings(), [`cannot generate 32 seed bytes: the PRNG returned ${got}`], label);
  }
});

test('the seed bytes are wiped once the reply is encoded', () => {
  const given: Buffer[] = [];
  const h = makeHarness({
    seed: (n) => {
      const b = Buffer.alloc(n, 0x5a);
      given.push(b);
      return b;
    },
  });
  exact(h, seedReq('3'), `status\x000\0seed\0${Buffer.alloc(3, 0x5a).toString('base64')}\0\0`);
  assert.deepEqual(given, [Buffer.alloc(3)]);
});

/* ---------------- policy ---------------- */

const policy = (type: string): Buffer => req('policy', ['cache_type', type]);
const policyReply = (status: string, cachable: number, timeout: number): string =>
  `status\0${status}\0cachable\0${cachable}\0timeout\0${timeout}\0\0`;

test('scenarios 13, 14: policy reports cachable and the timeout, also for disabled types', () => {
  const h = makeHarness({
    config: testConfig({ cache: { smtp: { database: '' }, lmtp: { database: 'btree:/x/lmtp', timeout: 0 } } }),
  });
  exact(h, policy('smtpd'), policyReply(OK, 1, 3600));
  exact(h, policy('smtp'), policyReply(OK, 0, 3600));
  exact(h, policy('lmtp'), policyReply(OK, 0, 0));
  assert.deepEqual(h.warnings, []);
});

test('scenario 15: timeout 30 is reported as 120 (TLS_SESSION_LIFEMIN); 119 -> 120; 120, 121 kept', () => {
  const h = makeHarness({
    config: testConfig({
      cache: { smtpd: { timeout: 30 }, smtp: { timeout: 119, database: '' }, lmtp: { timeout: 121, database: 'lmtp_db' } },
    }),
  });
  exact(h, policy('smtpd'), policyReply(OK, 1, 120));
  exact(h, policy('smtp'), policyReply(OK, 0, 120));
  exact(h, policy('lmtp'), policyReply(OK, 1, 121));
  const h2 = makeHarness({ config: testConfig({ cache: { smtpd: { timeout: 120 }, smtp: { timeout: 1 } } }) });
  exact(h2, policy('smtpd'), policyReply(OK, 1, 120));
  exact(h2, policy('smtp'), policyReply(OK, 0, 120));
  const h3 = makeHarness({ config: testConfig({ cache: { smtpd: { timeout: -5 } } }) });
  exact(h3, policy('smtpd'), policyReply(OK, 0, 0), 'a negative timeout becomes 0 and disables the cache');
});

test('scenario 16: unknown cache type -> FAIL,0,0 + warning', () => {
  const h = makeHarness();
  for (const t of ['SMTPD', 'foo', '', 'smtpd ', 'bad\x01']) {
    exact(h, policy(t), policyReply(FAIL, 0, 0), JSON.stringify(t));
    assert.deepEqual(h.takeWarnings(), [`bogus cache type "${t.replace(/[^\x20-\x7e]/g, '?')}" in "policy" request`]);
  }
  exact(h, req('policy'), policyReply(FAIL, 0, 0), 'missing cache_type');
});

/* ---------------- lookup / update / delete ---------------- */

test('scenario 17: update then lookup returns identical bytes; a second update replaces', () => {
  const h = makeHarness();
  const s1 = Buffer.from([0x30, 0x82, 0x00, 0xff, 0x00, 0x01]);
  exact(h, update('smtpd', 'host:25', s1), STATUS_OK);
  exact(h, lookup('smtpd', 'host:25'), `status\x000\0session\0${s1.toString('base64')}\0\0`);
  const s2 = Buffer.from('second session', 'latin1');
  exact(h, update('smtpd', 'host:25', s2), STATUS_OK);
  exact(h, lookup('smtpd', 'host:25'), `status\x000\0session\0${s2.toString('base64')}\0\0`);
  assert.equal(h.caches.get('smtpd')?.size, 1);
  assert.deepEqual(h.warnings, []);
});

test('scenario 18: lookup of an unknown id -> ERR with empty session (exact bytes)', () => {
  const h = makeHarness();
  exact(h, lookup('smtpd', 'nope'), LOOKUP_MISS);
  assert.equal(LOOKUP_MISS, 'status\x004294967295\0session\0\0\0');
});

test('scenario 19: disabled type -> FAIL (not ERR) for lookup, update and delete; no warning', () => {
  const h = makeHarness(); // smtp: timeout 3600, no database
  exact(h, lookup('smtp', 'x'), LOOKUP_FAIL);
  exact(h, update('smtp', 'x', 'abc'), STATUS_FAIL);
  exact(h, del('smtp', 'x'), STATUS_FAIL);
  const h0 = makeHarness({ config: testConfig({ cache: { smtpd: { timeout: 0 } } }) }); // db but timeout 0
  exact(h0, update('smtpd', 'x', 'abc'), STATUS_FAIL);
  exact(h0, lookup('smtpd', 'x'), LOOKUP_FAIL);
  assert.deepEqual(h.warnings, []);
  assert.deepEqual(h0.warnings, []);
});

test('scenario 20: entry stored at t with timeout T: OK at t+T, ERR at t+T+1, and then gone', () => {
  const h = makeHarness({ config: testConfig({ cache: { smtpd: { timeout: 300 } } }) });
  exact(h, update('smtpd', 'id', 'sess'), STATUS_OK);
  const ok = `status\x000\0session\0${b64('sess')}\0\0`;
  h.clock.set(T0 + 299);
  exact(h, lookup('smtpd', 'id'), ok);
  h.clock.set(T0 + 300);
  exact(h, lookup('smtpd', 'id'), ok, 'still valid at exactly t+T');
  h.clock.set(T0 + 301);
  exact(h, lookup('smtpd', 'id'), LOOKUP_MISS, 'expired at t+T+1');
  assert.equal(h.caches.get('smtpd')?.size, 0, 'the expired entry was deleted by the lookup');
  h.clock.set(T0 + 300);
  exact(h, lookup('smtpd', 'id'), LOOKUP_MISS, 'still gone when the clock is back at t+T');
});

test('scenario 20: the sanitised timeout (30 -> 120) is the one that expires entries', () => {
  const h = makeHarness({ config: testConfig({ cache: { smtpd: { timeout: 30 } } }) });
  exact(h, update('smtpd', 'id', 'sess'), STATUS_OK);
  h.clock.set(T0 + 120);
  assert.equal(mustServe(h, lookup('smtpd', 'id')).status, 0);
  h.clock.set(T0 + 121);
  assert.equal(mustServe(h, lookup('smtpd', 'id')).status, -1);
});

test('scenario 20: update refreshes the timestamp', () => {
  const h = makeHarness({ config: testConfig({ cache: { smtpd: { timeout: 300 } } }) });
  exact(h, update('smtpd', 'id', 'a'), STATUS_OK);
  h.clock.set(T0 + 200);
  exact(h, update('smtpd', 'id', 'b'), STATUS_OK);
  h.clock.set(T0 + 500);
  exact(h, lookup('smtpd', 'id'), `status\x000\0session\0${b64('b')}\0\0`);
  h.clock.set(T0 + 501);
  exact(h, lookup('smtpd', 'id'), LOOKUP_MISS);
});

test('scenario 21: delete existing -> OK; delete again -> ERR', () => {
  const h = makeHarness();
  exact(h, update('smtpd', 'id', 'x'), STATUS_OK);
  exact(h, del('smtpd', 'id'), STATUS_OK);
  exact(h, del('smtpd', 'id'), STATUS_ERR);
  exact(h, lookup('smtpd', 'id'), LOOKUP_MISS);
});

test('scenario 22: unknown cache type in lookup/update/delete -> FAIL + warning', () => {
  const h = makeHarness();
  exact(h, lookup('foo', 'x'), LOOKUP_FAIL);
  exact(h, update('SMTPD', 'x', 'y'), STATUS_FAIL);
  exact(h, del('', 'x'), STATUS_FAIL);
  assert.deepEqual(h.takeWarnings(), [
    'bogus cache type "foo" in "lookup" request',
    'bogus cache type "SMTPD" in "update" request',
    'bogus cache type "" in "delete" request',
  ]);
});

test('the three caches are separate tables', () => {
  const h = makeHarness({ config: testConfig({ cache: { smtp: { database: 'smtp_db' }, lmtp: { database: 'lmtp_db' } } }) });
  exact(h, update('smtp', 'id', 'smtp-session'), STATUS_OK);
  exact(h, lookup('smtpd', 'id'), LOOKUP_MISS);
  exact(h, lookup('lmtp', 'id'), LOOKUP_MISS);
  exact(h, lookup('smtp', 'id'), `status\x000\0session\0${b64('smtp-session')}\0\0`);
});

test('scenario 23/47: trailing extras are served normally; scenario 49: first session wins', () => {
  const h = makeHarness();
  exact(h, req('lookup', ['cache_type', 'smtpd'], ['cache_id', 'x'], ['extra', 'y']), LOOKUP_MISS);
  exact(h, req('delete', ['cache_type', 'smtpd'], ['cache_id', 'x'], ['extra', 'y']), STATUS_ERR);
  assert.equal(mustServe(h, req('seed', ['size', '5'], ['extra', 'y'])).data('seed').length, 5);
  exact(h, req('policy', ['cache_type', 'smtpd'], ['extra', 'y']), policyReply(OK, 1, 3600));
  assert.equal(mustServe(h, req('tktkey', ['keyname', ''], ['extra', 'y'])).status, 0);
  exact(h, req('update', ['cache_type', 'smtpd'], ['cache_id', 'x'], ['session', b64('first')], ['session', b64('second')]), STATUS_OK);
  exact(h, lookup('smtpd', 'x'), `status\x000\0session\0${b64('first')}\0\0`);
  const w = h.takeWarnings();
  assert.equal(w.length, 6);
  assert.deepEqual(w.slice(0, 5), Array(5).fill('unexpected attribute extra from tlsmgr socket (expecting: (list terminator))'));
  assert.equal(w[5], 'unexpected attribute session from tlsmgr socket (expecting: (list terminator))');
});

test('scenario 23b/48: extras before or between, or reordered -> FAIL and nothing stored', () => {
  const h = makeHarness();
  exact(h, req('update', ['extra', 'y'], ['cache_type', 'smtpd'], ['cache_id', 'x'], ['session', 'QQ==']), STATUS_FAIL);
  exact(h, req('update', ['cache_type', 'smtpd'], ['cache_id', 'x'], ['extra', 'y'], ['session', 'QQ==']), STATUS_FAIL);
  exact(h, req('update', ['cache_id', 'x'], ['cache_type', 'smtpd'], ['session', 'QQ==']), STATUS_FAIL);
  exact(h, req('lookup', ['cache_id', 'x'], ['cache_type', 'smtpd']), LOOKUP_FAIL);
  assert.equal(h.caches.get('smtpd')?.size, 0);
  assert.deepEqual(h.takeWarnings(), [
    'unexpected attribute extra from tlsmgr socket (expecting: cache_type)',
    'unexpected attribute extra from tlsmgr socket (expecting: session)',
    'unexpected attribute cache_id from tlsmgr socket (expecting: cache_type)',
    'unexpected attribute cache_id from tlsmgr socket (expecting: cache_type)',
  ]);
});

test('scenario 57: FAIL replies carry empty data even after data-bearing replies', () => {
  const h = makeHarness();
  exact(h, update('smtpd', 'secret-id', 'SECRET SESSION'), STATUS_OK);
  assert.equal(mustServe(h, lookup('smtpd', 'secret-id')).status, 0);
  // update with a malformed session -> FAIL; then lookup without cache_id -> FAIL, empty session
  exact(h, req('update', ['cache_type', 'smtpd'], ['cache_id', 'y'], ['session', 'WFla!!!!']), STATUS_FAIL);
  exact(h, req('lookup', ['cache_type', 'smtpd']), LOOKUP_FAIL);
  assert.equal(mustServe(h, seedReq('200')).status, 0);
  exact(h, seedReq('x'), SEED_FAIL);
  exact(h, req('tktkey', ['keyname', 'QUJD!!!!']), KEYBUF_FAIL);
});

test('scenario 26: a stored record too short to be sealed -> ERR, removed, one (rate-limited) warning', () => {
  const h = makeHarness();
  const store = h.stores.get('smtpd');
  assert.ok(store !== undefined);
  store.put('bad', Buffer.from([1, 2, 3]), T0);
  store.put('empty', Buffer.alloc(0), T0);
  exact(h, lookup('smtpd', 'bad'), LOOKUP_MISS);
  assert.equal(store.get('bad'), undefined, 'removed');
  exact(h, lookup('smtpd', 'empty'), LOOKUP_MISS);
  assert.equal(store.get('empty'), undefined, 'removed');
  // The second warning within a minute is only counted (util/ratelimit.ts).
  assert.deepEqual(h.takeWarnings(), ['smtpd TLS cache: malformed entry for bad: truncated record (3 bytes); entry removed']);
  assert.equal(h.caches.get('smtpd')?.stats().corrupt, 2);
  assert.equal(store.size, 0);
});

test('an expired sealed record -> ERR and removed, without a warning', () => {
  const h = makeHarness();
  exact(h, update('smtpd', 'old', 'sess'), STATUS_OK);
  h.clock.advance(3601);
  exact(h, lookup('smtpd', 'old'), LOOKUP_MISS);
  assert.equal(h.stores.get('smtpd')?.get('old'), undefined);
  assert.deepEqual(h.takeWarnings(), []);
});

test('an empty session is an entry; the stored record is sealed: version 2, key id, stamp, nonce, tag', () => {
  const h = makeHarness();
  exact(h, update('smtpd', 'e', Buffer.alloc(0)), STATUS_OK);
  exact(h, lookup('smtpd', 'e'), `status\x000\0session\0\0\0`);
  exact(h, update('smtpd', 's', 'SECRET SESSION'), STATUS_OK);
  const e = h.stores.get('smtpd')?.get('e');
  const rec = h.stores.get('smtpd')?.get('s');
  assert.ok(e !== undefined && rec !== undefined);
  assert.equal(e.length, SEAL_OVERHEAD, 'SEAL_OVERHEAD bytes for an empty session');
  assert.equal(rec.length, SEAL_OVERHEAD + 14);
  assert.equal(rec[0], 2, 'version');
  assert.equal(rec.readUInt32BE(1), e.readUInt32BE(1), 'one key id per start');
  assert.equal(rec.readBigInt64BE(5), BigInt(T0), 'stamp, big-endian');
  assert.equal(rec.indexOf('SECRET'), -1, 'no clear text');
});

test('scenario 58: non-UTF-8 cache id with smtputf8 on: update OK, lookup ERR, delete OK, one warning each', () => {
  const h = makeHarness();
  const id = bytes('bad-\xff\xfe');
  const w = `${SMTPD_DB}: non-UTF-8 key "bad-??": malformed UTF-8 or invalid codepoint`;
  exact(h, update('smtpd', id, 'sess'), STATUS_OK);
  assert.deepEqual(h.takeWarnings(), [w]);
  assert.equal(h.caches.get('smtpd')?.size, 0, 'not stored');
  exact(h, lookup('smtpd', id), LOOKUP_MISS);
  assert.deepEqual(h.takeWarnings(), [w]);
  exact(h, del('smtpd', id), STATUS_OK);
  assert.deepEqual(h.takeWarnings(), [w]);
  // Valid UTF-8 (2- and 3-byte sequences) is fine.
  exact(h, update('smtpd', Buffer.from('h\u00e9\u20ac:25', 'utf8'), 'u'), STATUS_OK);
  exact(h, lookup('smtpd', Buffer.from('h\u00e9\u20ac:25', 'utf8')), `status\x000\0session\0${b64('u')}\0\0`);
  assert.deepEqual(h.takeWarnings(), []);
});

test('scenario 58: with smtputf8 off, non-UTF-8 ids round-trip as bytes, distinct from every other id', () => {
  const h = makeHarness({ config: testConfig({ smtputf8Enable: false }) });
  const ids = [bytes('bad-\xff\xfe'), bytes('bad-\xff\xfd'), bytes('bad-??'), Buffer.from('bad-\ufffd\ufffd', 'utf8'), bytes('bad-\xfe\xff')];
  ids.forEach((id, i) => exact(h, update('smtpd', id, `s${i}`), STATUS_OK));
  assert.equal(h.caches.get('smtpd')?.size, ids.length);
  ids.forEach((id, i) => exact(h, lookup('smtpd', id), `status\x000\0session\0${b64(`s${i}`)}\0\0`, `id ${i}`));
  exact(h, del('smtpd', ids[0]), STATUS_OK);
  exact(h, lookup('smtpd', ids[0]), LOOKUP_MISS);
  exact(h, lookup('smtpd', ids[1]), `status\x000\0session\0${b64('s1')}\0\0`);
  assert.deepEqual(h.warnings, []);
});

test('scenario 24: the cache is empty after a restart', () => {
  const h1 = makeHarness();
  exact(h1, update('smtpd', 'id', 'x'), STATUS_OK);
  h1.caches.close();
  const h2 = makeHarness();
  exact(h2, lookup('smtpd', 'id'), LOOKUP_MISS);
});

test('scenario 24: the same database for two enabled types is fatal', () => {
  const clock = new FakeClock(T0);
  const warn = (): void => assert.fail('no warning expected');
  const same = testConfig({ cache: { smtp: { database: SMTPD_DB } } });
  assert.throws(
    () => new CacheTable(same, { clock, warn }),
    (e: unknown) =>
      e instanceof FatalError && e.code === 'TLSMGR_FATAL' && e.message === `do not use the same TLS cache file ${SMTPD_DB} for smtpd and smtp`,
  );
  const three = testConfig({ cache: { smtp: { database: 'a' }, lmtp: { database: 'a' } } });
  assert.throws(() => new CacheTable(three, { clock, warn }), { message: 'do not use the same TLS cache file a for smtp and lmtp' });
  // Not fatal when one of them is disabled by timeout 0, or when the names differ as written.
  assert.doesNotThrow(() => new CacheTable(testConfig({ cache: { smtp: { database: SMTPD_DB, timeout: 0 } } }), { clock, warn }).close());
  assert.doesNotThrow(() => new CacheTable(testConfig({ cache: { smtp: { database: `${SMTPD_DB} ` } } }), { clock, warn }).close());
});

/* ---------------- tktkey ---------------- */

interface Key {
  readonly name: Buffer;
  readonly record: Buffer;
  readonly tout: bigint;
}

function getKey(h: Harness, name: Buffer | string = ''): Key {
  const r = mustServe(h, tkt(name));
  assert.deepEqual(r.names, ['status', 'keybuf']);
  assert.equal(r.status, 0, `tktkey status at ${h.clock.now()}`);
  const record = r.data('keybuf');
  assert.equal(record.length, 88);
  assert.equal(r.text('keybuf').length, 120);
  assert.ok(r.text('keybuf').endsWith('=='));
  return { name: record.subarray(0, 16), record, tout: record.readBigInt64LE(80) };
}

function keyStatus(h: Harness, name: Buffer): number {
  return mustServe(h, tkt(name)).status;
}

test('scenario 27: empty keyname -> OK, 88-byte keybuf, tout = now + T/2 - 1 (int64 LE at 80)', () => {
  const h = makeHarness();
  const k = getKey(h);
  assert.equal(k.tout, BigInt(T0 + 1800 - 1));
  assert.equal(k.record.subarray(80).toString('hex'), Buffer.from([0x07, 0xf8, 0x53, 0x65, 0, 0, 0, 0]).toString('hex'), 'T0+1799 = 0x6553F807');
  // name, cipher key and HMAC key come from the byte source, in that order (80 bytes)
  const expected = Buffer.alloc(80);
  for (let i = 0; i < 80; i++) expected[i] = (i * 7 + 1) & 0xff;
  assert.equal(k.record.subarray(0, 80).toString('hex'), expected.toString('hex'));
  assert.deepEqual(h.warnings, []);
});

test('scenario 27: odd T and the sanitised minimum: half = floor(T/2)', () => {
  const h = makeHarness({ config: testConfig({ cache: { smtpd: { timeout: 301 } } }) });
  assert.equal(getKey(h).tout, BigInt(T0 + 150 - 1));
  const h2 = makeHarness({ config: testConfig({ cache: { smtpd: { timeout: 30 } } }) });
  assert.equal(getKey(h2).tout, BigInt(T0 + 60 - 1), 'T = 120 after sanitising (section 10: tout - now = 59)');
});

test('scenario 28: repeated empty-name requests before tout return the same key', () => {
  const h = makeHarness();
  const k = getKey(h);
  for (const t of [T0 + 1, T0 + 900, Number(k.tout) - 1]) {
    h.clock.set(t);
    assert.equal(getKey(h).record.toString('hex'), k.record.toString('hex'), `at ${t - T0}`);
  }
});

test('scenario 29: rotation at tout; the old key by name until old.tout + T/2; third rotation drops it', () => {
  const h = makeHarness(); // T = 3600, half = 1800
  const k1 = getKey(h);
  const tout1 = Number(k1.tout); // T0 + 1799
  h.clock.set(tout1);
  const k2 = getKey(h);
  assert.notEqual(k2.name.toString('hex'), k1.name.toString('hex'), 'a new key at now = tout');
  assert.equal(k2.tout, BigInt(tout1 + 1799));
  // k1 by name: still served (for decryption) until tout1 + 1800 - 1
  assert.equal(getKey(h, k1.name).record.toString('hex'), k1.record.toString('hex'));
  h.clock.set(tout1 + 1800 - 1);
  assert.equal(getKey(h, k1.name).record.toString('hex'), k1.record.toString('hex'));
  assert.equal(getKey(h, k2.name).record.toString('hex'), k2.record.toString('hex'));
  h.clock.set(tout1 + 1800);
  assert.equal(keyStatus(h, k1.name), -1, 'k1 too old at old.tout + T/2');
  assert.equal(getKey(h, k2.name).record.toString('hex'), k2.record.toString('hex'));
});

test('scenario 29: a third key drops the first even while its grace period lasts', () => {
  const h = makeHarness({ config: testConfig({ cache: { smtpd: { timeout: 600 } } }) }); // half = 300
  const k1 = getKey(h); // tout T0 + 299
  h.clock.set(Number(k1.tout));
  const k2 = getKey(h); // tout T0 + 598
  h.clock.set(Number(k2.tout)); // T0 + 598 < k1.tout + 300 = T0 + 599: k1 would still be valid by time
  assert.equal(getKey(h, k1.name).record.toString('hex'), k1.record.toString('hex'), 'k1 still valid before the third key');
  const k3 = getKey(h);
  assert.notEqual(k3.name.toString('hex'), k2.name.toString('hex'));
  assert.equal(keyStatus(h, k1.name), -1, 'k1 dropped by the rotation');
  assert.equal(getKey(h, k2.name).record.toString('hex'), k2.record.toString('hex'), 'k2 is the previous key');
  assert.equal(getKey(h, k3.name).record.toString('hex'), k3.record.toString('hex'));
  assert.equal(getKey(h).record.toString('hex'), k3.record.toString('hex'), 'k3 is current');
});

test('scenario 30/55: an unknown 16-byte name -> ERR with the name echoed (exact bytes)', () => {
  const h = makeHarness();
  getKey(h);
  exact(h, tkt('AAAAAAAAAAAAAAAAAAAAAA=='), `status\0${ERR}\0keybuf\0AAAAAAAAAAAAAAAAAAAAAA==\0\0`);
  const name = Buffer.from('0123456789abcdef', 'latin1');
  exact(h, tkt(name), `status\0${ERR}\0keybuf\0${name.toString('base64')}\0\0`);
  // Also before any key exists.
  exact(makeHarness(), tkt(name), `status\0${ERR}\0keybuf\0${name.toString('base64')}\0\0`);
});

test('scenario 31: keyname of 1..15 or 17+ bytes -> FAIL, empty keybuf, warning', () => {
  const h = makeHarness();
  for (const n of [1, 5, 15, 17, 32, 88]) {
    exact(h, tkt(Buffer.alloc(n, 0x41)), KEYBUF_FAIL, `length ${n}`);
    assert.deepEqual(h.takeWarnings(), [`invalid session ticket key name length: ${n}`]);
  }
});

test('scenario 55: base64 quirks in keyname', () => {
  const h = makeHarness();
  for (const text of ['QQ=x', 'QR==']) {
    exact(h, tkt(text), KEYBUF_FAIL, text);
    assert.deepEqual(h.takeWarnings(), ['invalid session ticket key name length: 1']);
  }
  for (const text of ['QQ=', '====', 'Q===']) {
    exact(h, tkt(text), KEYBUF_FAIL, text);
    assert.deepEqual(h.takeWarnings(), [`malformed base64 data from tlsmgr socket while reading input attribute value: ${text}`]);
  }
  exact(h, tkt('QUJD!!!!'), KEYBUF_FAIL, 'no partial decode leaks (2.2.2)');
});

test('scenario 32: smtpd timeout 0 -> ERR with empty keybuf, even with the other caches enabled', () => {
  const h = makeHarness({
    config: testConfig({ cache: { smtpd: { timeout: 0 }, smtp: { database: 'smtp_db' }, lmtp: { database: 'lmtp_db' } } }),
  });
  exact(h, tkt(''), KEYBUF_ERR);
  exact(h, tkt(Buffer.alloc(16)), KEYBUF_ERR, 'by name too');
  exact(h, tkt(Buffer.alloc(3)), KEYBUF_FAIL, 'a bad length is still FAIL');
  // The smtpd timeout drives tickets even without an smtpd database; the smtp timeout is irrelevant.
  const h2 = makeHarness({ config: testConfig({ cache: { smtpd: { database: '' }, smtp: { timeout: 0 } } }) });
  assert.equal(getKey(h2).tout, BigInt(T0 + 1799));
});

test('scenario 33: keys do not survive a restart', () => {
  const h1 = makeHarness({ realRandom: true });
  const k = getKey(h1);
  const h2 = makeHarness({ realRandom: true });
  assert.equal(keyStatus(h2, k.name), -1);
  assert.notEqual(getKey(h2).name.toString('hex'), k.name.toString('hex'));
});

test('keys dropped by rotation are wiped in memory', () => {
  const h = makeHarness();
  const r1 = h.tickets.key(null, T0, 3600);
  assert.equal(r1.status, 'ok');
  if (r1.status !== 'ok') return;
  const rec1 = r1.key.record;
  assert.notEqual(rec1.toString('hex'), Buffer.alloc(88).toString('hex'));
  h.tickets.key(null, r1.key.tout, 3600); // second key: the first becomes "previous"
  assert.notEqual(rec1.toString('hex'), Buffer.alloc(88).toString('hex'), 'the previous key is kept');
  h.tickets.key(null, r1.key.tout + 1799, 3600); // third key: the first is dropped
  assert.equal(rec1.toString('hex'), Buffer.alloc(88).toString('hex'));
  h.tickets.clear();
  assert.equal(h.tickets.key(Buffer.alloc(16), T0, 3600).status, 'nokey');
});

test('an update that is refused (bogus or disabled cache type) still wipes its decoded session', () => {
  const h = makeHarness();
  for (const cacheType of ['bogus', 'lmtp']) {
    const session = Buffer.alloc(48, 0x77);
    const reply = h.ctx.dispatcher.handle({ request: 'update', cacheType, cacheId: bytes('id'), session });
    assert.ok(Buffer.isBuffer(reply));
    assert.equal(show(reply), show(bytes(STATUS_FAIL)), cacheType);
    assert.deepEqual(session, Buffer.alloc(48), `${cacheType}: the session is zeroed`);
  }
});
