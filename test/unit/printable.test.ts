/*
 * printable - log-safe text: printable() replaces non-printable characters and cuts; errorReason()
 * gives an engine error's code and message only (never other fields, such as the arguments a
 * Redis ReplyError carries), printable and cut; a thrown non-Error gives only its type.
 */

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { errorReason, printable } from '../../src/util/printable.js';

test('printable: non-printable characters become ?, text is cut to max', () => {
  assert.equal(printable('a\nb\x00c\u00e9'), 'a?b?c?');
  assert.equal(printable('x'.repeat(150)).length, 100);
});

test('errorReason: code and message only; the fields of the error never appear', () => {
  const secret = Buffer.from('SESSION-MASTER-SECRET').toString('base64');
  const reply = Object.assign(new Error('ERR wrong number of arguments'), { command: { name: 'set', args: ['k', secret] } });
  assert.equal(errorReason(reply), 'ERR wrong number of arguments');
  const sqlite = Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' });
  assert.equal(errorReason(sqlite), 'SQLITE_FULL: database or disk is full');
  assert.equal(errorReason(new Error(`bad\n${'y'.repeat(300)}`)).length, 160);
  assert.match(errorReason(new Error('a\nb')), /^a\?b$/);
  assert.equal(errorReason(secret), 'non-Error value (string)');
  assert.equal(errorReason({ message: secret }), 'non-Error value (object)');
});
