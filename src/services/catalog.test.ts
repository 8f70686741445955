import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { catalog, expandCreate } from './catalog.js';
import { pickMostAdvanced } from './role-controller.js';
import { gtidSeq } from './mysql/hooks.js';
import { InputError } from '../errors.js';

const fieldOf = (fn: () => unknown) => {
  try {
    fn();
  } catch (e) {
    if (e instanceof InputError) return e.field;
    throw e;
  }
  return undefined;
};

describe('service catalog', () => {
  it('lists app, mysql and redis with versions and parameters', () => {
    const c = catalog();
    assert.deepEqual(c.map((e) => e.type), ['app', 'mysql', 'redis']);
    assert.equal(c.find((e) => e.type === 'mysql')!.version, '10.11');
    assert.ok(c.find((e) => e.type === 'mysql')!.params.some((p) => p.name === 'max_connections'));
    assert.ok(c.find((e) => e.type === 'redis')!.params.some((p) => p.name === 'min_replicas_max_lag_s'));
  });

  it('a managed type is expanded into a local-data, at-most-one service with generated credentials', () => {
    const x = expandCreate({ name: 'db', type: 'mysql', params: { max_connections: '500' } });
    assert.equal(x.create.image, 'kiver/mariadb:latest');
    assert.deepEqual(x.create.ports, [{ container: 3306 }]);
    assert.equal(x.create.localData, true);
    assert.equal(x.create.onNodeLost, 'wait');
    assert.equal(x.params!.max_connections, 500);
    assert.match(x.create.command!.join(' '), /--max-connections=500 /);
    assert.equal(x.create.secretEnv!.MARIADB_ROOT_PASSWORD, x.credentials!.admin);
    // The password is not in the command line or the plain env.
    assert.ok(!x.create.command!.join(' ').includes(x.credentials!.admin));
    const r = expandCreate({ name: 'cache', type: 'redis' });
    assert.ok(!r.create.command!.join(' ').includes(r.credentials!.password));
    assert.equal(r.create.secretEnv!.KIVER_REDIS_PASSWORD, r.credentials!.password);
  });

  it('bad input names its field', () => {
    assert.equal(fieldOf(() => expandCreate({ name: 'x', type: 'mongo' as 'app' })), 'type');
    assert.equal(fieldOf(() => expandCreate({ name: 'x', type: 'redis', params: { appendfsync: 'sometimes' } })), 'params/appendfsync');
    assert.equal(fieldOf(() => expandCreate({ name: 'x', type: 'redis', params: { requirepass: 'x' } })), 'params/requirepass');
    assert.equal(fieldOf(() => expandCreate({ name: 'x', type: 'mysql', replicas: 0 })), 'replicas');
    assert.equal(fieldOf(() => expandCreate({ name: 'x', type: 'mysql', env: { DB_PASSWORD: 'x' } })), 'env/DB_PASSWORD');
    assert.equal(fieldOf(() => expandCreate({ name: 'x', type: 'mysql', command: ['sh'] })), 'command');
    assert.equal(fieldOf(() => expandCreate({ name: 'x' })), 'image');
    assert.equal(fieldOf(() => expandCreate({ name: 'x', image: 'kiver/busybox' })), undefined);
  });
});

describe('failover choice', () => {
  it('promotes the most advanced replica; ties go to the lowest ordinal', () => {
    assert.equal(pickMostAdvanced([{ ordinal: 1, position: 10 }, { ordinal: 2, position: 12 }]), 2);
    assert.equal(pickMostAdvanced([{ ordinal: 2, position: 12 }, { ordinal: 1, position: 12 }]), 1);
    assert.equal(pickMostAdvanced([]), undefined);
  });
  it('reads the sequence of GTID domain 0', () => {
    assert.equal(gtidSeq('0-2-117'), 117);
    assert.equal(gtidSeq('1-3-9,0-1-5'), 5);
    assert.equal(gtidSeq(''), 0);
  });
});
