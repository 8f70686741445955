import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConflictError, ForbiddenError, InputError, KiverError, NotFoundError, UnauthenticatedError, UnavailableError } from '../errors.js';
import { InventoryError, BmcUnreachableError, BmcAuthError } from '../machine/errors.js';
import { toError } from '../client/api-client.js';
import { exitCodeOf } from './exit-codes.js';

test('each error class has its documented exit code', () => {
  assert.equal(exitCodeOf(new InputError('x')), 2);
  assert.equal(exitCodeOf(new InventoryError([{ line: 1, field: 'name', message: 'bad' }])), 2);
  assert.equal(exitCodeOf(new NotFoundError('x')), 3);
  assert.equal(exitCodeOf(new ConflictError('x')), 4);
  assert.equal(exitCodeOf(new UnauthenticatedError('x')), 5);
  assert.equal(exitCodeOf(new ForbiddenError('x')), 5);
  assert.equal(exitCodeOf(new UnavailableError('x')), 6);
  assert.equal(exitCodeOf(new BmcUnreachableError('x')), 6);
  assert.equal(exitCodeOf(new BmcAuthError('x')), 1);
  assert.equal(exitCodeOf(new KiverError('x')), 1);
  assert.equal(exitCodeOf(new Error('x')), 1);
});

test('the client rebuilds the typed error from the response code', () => {
  const auth = toError(502, { error: { code: 'bmc_auth_failed', message: 'BMC refused user admin' } }, 'Bad Gateway');
  assert.ok(auth instanceof BmcAuthError);
  assert.equal(auth.message, 'BMC refused user admin');
  const bad = toError(400, { error: { code: 'invalid', message: 'inventory has 1 problem', field: 'name', problems: [{ line: 3, field: 'name', message: 'x' }] } }, '');
  assert.ok(bad instanceof InputError);
  assert.equal(bad.field, 'name');
  assert.deepEqual(bad.details, { problems: [{ line: 3, field: 'name', message: 'x' }] });
  assert.ok(toError(409, { error: { code: 'conflict', message: 'exists' } }, '') instanceof ConflictError);
  assert.ok(toError(503, { error: { code: 'unavailable', message: 'store down' } }, '') instanceof UnavailableError);
  const odd = toError(507, { error: { code: 'no_space', message: 'disk full' } }, '');
  assert.equal(odd.code, 'no_space');
  assert.equal(odd.status, 507);
  assert.ok(toError(502, undefined, 'Bad Gateway') instanceof UnavailableError, 'a proxy error page without a body is unavailable');
  assert.ok(toError(404, undefined, 'Not Found') instanceof NotFoundError);
});
