/**
 * `kiver pool …` and `kiver service create --app/--ip/--ip-grace` as a user runs them: the
 * real binary against a real server; bad input exits 2 naming the field, a conflict exits 4,
 * nothing is stored on either.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KiverServer } from '../src/server/server.js';
import { createLogger } from '../src/log.js';
import { K } from '../src/model/keys.js';
import type { PoolView } from '../src/model/pool.js';
import type { ServiceView } from '../src/model/service.js';
import { KIVER_BIN, runCommand } from './harness/kiver.js';

describe('kiver pool CLI', () => {
  let dir: string;
  let server: KiverServer;
  const cli = (...args: string[]) => runCommand([process.execPath, KIVER_BIN, ...args],
    { ...process.env, KIVER_ADDR: server.url, KIVER_TOKEN: server.tokens.admin, KIVER_HOME: join(dir, 'home') });

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kiver-ipam-cli-'));
    server = await KiverServer.start({ dataDir: dir, listen: '127.0.0.1:0', log: createLogger('test', 'silent'), nodeLeaseTtl: 120 });
  });
  after(async () => {
    await server?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('create, ls, get, audit, delete; IPv4 and IPv6', async () => {
    let r = await cli('pool', 'create', 'shop', '--cidr', '10.40.0.0/24', '--range', '10.40.0.10-10.40.0.19', '--exclude', '10.40.0.15', '--vlan', '120', '--parent', 'eth1', '--app', 'shop');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /pool shop created \(9 addresses, app shop\)/);
    r = await cli('pool', 'create', 'v6', '--cidr', 'fd00:40::/64', '--global');
    assert.equal(r.code, 0, r.stderr);
    r = await cli('pool', 'ls');
    assert.match(r.stdout, /shop\s+10\.40\.0\.0\/24\s+app shop\s+0\/9\s+10\.40\.0\.1\s+macvlan eth1\.120/);
    assert.match(r.stdout, /v6\s+fd00:40::\/64\s+global\s+0\/18446744073709551614/);
    r = await cli('-o', 'json', 'pool', 'get', 'shop');
    assert.deepEqual((JSON.parse(r.stdout) as PoolView).excludes, ['10.40.0.15']);
    r = await cli('pool', 'audit');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /allocated 0, in use 0, leaked 0, conflicting 0/);
    r = await cli('service', 'create', 'cart', '--image', 'kiver/busybox', '--app', 'shop', '--ip', '0=10.40.0.12', '--ip-grace', '30m');
    assert.equal(r.code, 0, r.stderr);
    const svc = await (await fetch(`${server.url}/v1/services/cart`, { headers: { authorization: `Bearer ${server.tokens.admin}` } })).json() as ServiceView;
    assert.deepEqual([svc.spec.app, svc.spec.ips, svc.spec.ipGraceSeconds], ['shop', { 0: '10.40.0.12' }, 1800]);
    r = await cli('pool', 'delete', 'v6');
    assert.equal(r.code, 0, r.stderr);
  });

  for (const [what, args, code, text] of [
    ['VLAN out of range', ['pool', 'create', 'x', '--cidr', '10.41.0.0/24', '--vlan', '4095', '--parent', 'eth1', '--global'], 2, /vlan: must be 1-4094/],
    ['gateway outside the CIDR', ['pool', 'create', 'x', '--cidr', '10.41.0.0/24', '--gateway', '10.42.0.1', '--global'], 2, /gateway: 10\.42\.0\.1 is outside 10\.41\.0\.0\/24/],
    ['bad CIDR', ['pool', 'create', 'x', '--cidr', '10.41.0.0/40', '--global'], 2, /cidr: prefix must be 0-32/],
    ['no scope', ['pool', 'create', 'x', '--cidr', '10.41.0.0/24'], 2, /exactly one of --service S, --app A or --global/],
    ['two scopes', ['pool', 'create', 'x', '--cidr', '10.41.0.0/24', '--global', '--app', 'a'], 2, /exactly one of/],
    ['overlapping pool', ['pool', 'create', 'x', '--cidr', '10.40.0.0/16', '--global'], 4, /overlaps pool shop/],
    ['a pinned ordinal without an address', ['service', 'create', 'y', '--image', 'kiver/busybox', '--ip', '0'], 2, /--ip: expected ORDINAL=ADDRESS/],
  ] as const) {
    it(`${what}: exit ${code}, one line naming it, nothing stored`, async () => {
      // The controller writes in the background (cart's pending replicas: there are no nodes), so
      // "nothing stored" is checked on what these commands would write: pools, their index, services.
      const snap = async () => JSON.stringify(await Promise.all(['/kiver/pools/', '/kiver/pool-index/', K.services].map(async (p) => (await server.store.list(p)).kvs)));
      const before_ = await snap();
      const r = await cli(...args);
      assert.equal(r.code, code, r.stdout + r.stderr);
      assert.match(r.stderr, text);
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
      assert.equal(await snap(), before_);
      assert.equal(await server.store.get(K.pool('x')), undefined);
    });
  }
});
