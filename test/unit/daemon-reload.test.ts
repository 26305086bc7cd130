/*
 * daemon-reload - daemon/reload.ts: applyLive() writes exactly the live bounds into the
 * objects the service reads; needsRestart() names the changed fields that are not live, in
 * config order, and none when only live fields (or nothing) changed.
 */

import assert from 'node:assert/strict';
import test from 'node:test';
import type { TlsmgrConfig } from '../../src/config/types.js';
import { applyLive, LIVE_FIELDS, needsRestart, type LiveSettings } from '../../src/daemon/reload.js';
import { testConfig } from '../helpers/attr.js';

function liveOf(c: TlsmgrConfig): LiveSettings {
  return {
    limits: { nameLimit: c.attrNameLimit, valueLimit: c.attrValueLimit, countLimit: c.attrCountLimit },
    scan: { cacheIdLimit: c.cacheIdLimit, sessionLimit: c.sessionLimit },
    guard: { connectionLimit: c.connectionLimit, inputBufferLimit: c.inputBufferLimit, requestDeadline: c.ipcTimeout },
  };
}

test('applyLive: every live bound reaches the running objects, in place', () => {
  const current = testConfig();
  const fresh: TlsmgrConfig = {
    ...current,
    attrNameLimit: 16,
    attrValueLimit: 17,
    attrCountLimit: 18,
    cacheIdLimit: 19,
    sessionLimit: 20,
    connectionLimit: 21,
    inputBufferLimit: 22,
    ipcTimeout: 23,
  };
  const live = liveOf(current);
  const { limits, scan, guard } = live;
  applyLive(fresh, live);
  assert.equal(live.limits, limits);
  assert.equal(live.scan, scan);
  assert.equal(live.guard, guard);
  assert.deepEqual(live, liveOf(fresh));
  assert.deepEqual(needsRestart(current, fresh), [], 'a live field reported as needing a restart');
});

test('needsRestart: changed fields that are not live, in config order; nothing for an unchanged config', () => {
  const current = testConfig();
  assert.deepEqual(needsRestart(current, testConfig()), []);
  const fresh: TlsmgrConfig = {
    ...current,
    syslogName: 'postfix-alt',
    mailOwner: 'other',
    queueDirectory: '/elsewhere',
    cache: { ...current.cache, smtpd: { ...current.cache.smtpd, timeout: 7200 } },
  };
  const keys = Object.keys(current);
  const expected = ['queueDirectory', 'mailOwner', 'cache'].sort((a, b) => keys.indexOf(a) - keys.indexOf(b));
  assert.deepEqual(needsRestart(current, fresh), expected);
  assert.ok(LIVE_FIELDS.has('syslogName'));
});
