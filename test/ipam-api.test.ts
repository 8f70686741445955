/**
 * Fixed IPs through the API with the real server, store and controllers (the agents are
 * played by the test through the agent API: no containers run here; the datapath is in
 * ipam-datapath.test.ts). Pools: every bad input is 400/409 naming the field with the
 * store revision unchanged; allocation order service → app → global; exhaustion leaves
 * the replica pending with an event naming every pool; a re-created service gets its
 * addresses back within the grace; an address is reclaimed only when its owner is gone
 * AND no node reports holding it; a conflict is an event and a metric.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KiverServer } from '../src/server/server.js';
import { ApiClient } from '../src/client/api-client.js';
import { createLogger } from '../src/log.js';
import { K } from '../src/model/keys.js';
import type { ServiceView } from '../src/model/service.js';
import type { AuditView, PoolView } from '../src/model/pool.js';
import type { KiverEvent } from '../src/model/event.js';
import { until } from './harness/kiver.js';

const GiB = 1024 ** 3;

describe('fixed IPs: pools API and allocation', () => {
  let dir: string;
  let server: KiverServer;
  let admin: ApiClient;
  const nodes = new Map<string, ApiClient>();
  /** What each fake node reports holding, beyond its assigned replicas' addresses. */
  const extraHeld = new Map<string, string[]>();

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kiver-ipam-api-'));
    server = await KiverServer.start({ dataDir: dir, listen: '127.0.0.1:0', log: createLogger('test', 'silent'), nodeLeaseTtl: 120, ipamReclaimMs: 200 });
    admin = new ApiClient({ servers: [server.url], token: server.tokens.admin });
    const join_ = new ApiClient({ servers: [server.url], token: server.tokens.join });
    for (const name of ['n1', 'n2', 'n3']) {
      const { credential } = await join_.post<{ credential: string }>('/v1/agent/register', { name, address: '127.0.0.1', cpus: 4, memory: 8 * GiB });
      nodes.set(name, new ApiClient({ servers: [server.url], token: credential }));
    }
  });
  after(async () => {
    await server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  /** Plays the agents: assigned replicas run (holding their address), deleted ones are removed. */
  async function fakeAgents(): Promise<void> {
    for (const [node, c] of nodes) {
      const a = await c.get<{ replicas: { service: string; ordinal: number; uid: string; generation: number; desired: string; spec: { network?: { ip: string } } }[] }>(`/v1/agent/assignments?node=${node}`);
      const statuses = a.replicas.map((r) => ({
        service: r.service, ordinal: r.ordinal, uid: r.uid, generation: r.generation, state: r.desired === 'delete' ? 'removed' : 'running', restartCount: 0,
      }));
      await c.put('/v1/agent/status', { node, statuses });
      const held = a.replicas.filter((r) => r.desired === 'run' && r.spec.network).map((r) => r.spec.network!.ip);
      await c.put('/v1/agent/addresses', { node, addresses: [...held, ...(extraHeld.get(node) ?? [])] });
    }
  }

  async function raw(method: string, path: string, body?: unknown) {
    const res = await fetch(`${server.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${server.tokens.admin}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json().catch(() => undefined)) as { error?: { field?: string; message: string; allocations?: { ip: string; owner: string }[] } } };
  }

  async function events(object: string): Promise<KiverEvent[]> {
    return admin.get<KiverEvent[]>(`/v1/events?object=${object}`);
  }

  async function settle(name: string, want: (s: ServiceView) => boolean): Promise<ServiceView> {
    return until(`service ${name}`, async () => {
      await fakeAgents();
      const s = await admin.get<ServiceView>(`/v1/services/${name}`).catch(() => undefined);
      return s && want(s) ? s : undefined;
    }, 30_000, 100);
  }

  const pool = (extra: Record<string, unknown>) => ({ name: 'p', cidr: '10.50.0.0/24', scope: { global: true }, ...extra });
  const bad: [string, string, unknown, number, RegExp][] = [
    ['bad CIDR', '/v1/pools', pool({ cidr: '10.50.0.0/33' }), 400, /^cidr$/],
    ['CIDR with host bits', '/v1/pools', pool({ cidr: '10.50.0.7/24' }), 400, /^cidr$/],
    ['CIDR that is no address', '/v1/pools', pool({ cidr: 'ten/8' }), 400, /^cidr$/],
    ['gateway outside the CIDR', '/v1/pools', pool({ gateway: '10.51.0.1' }), 400, /^gateway$/],
    ['range outside the CIDR', '/v1/pools', pool({ ranges: ['10.50.0.10-10.50.1.10'] }), 400, /^ranges\/0$/],
    ['exclude outside the CIDR', '/v1/pools', pool({ excludes: ['10.49.0.1'] }), 400, /^excludes\/0$/],
    ['IPv6 range in an IPv4 pool', '/v1/pools', pool({ ranges: ['fd00::1-fd00::9'] }), 400, /^ranges\/0$/],
    ['VLAN 0', '/v1/pools', pool({ vlan: 0, parent: 'eth0' }), 400, /^vlan$/],
    ['VLAN 4095', '/v1/pools', pool({ vlan: 4095, parent: 'eth0' }), 400, /^vlan$/],
    ['VLAN as a string', '/v1/pools', pool({ vlan: '10', parent: 'eth0' }), 400, /^vlan$/],
    ['parent with a slash', '/v1/pools', pool({ parent: '../eth0' }), 400, /^parent$/],
    ['no scope', '/v1/pools', { name: 'p', cidr: '10.50.0.0/24' }, 400, /^scope$/],
    ['two scopes', '/v1/pools', pool({ scope: { app: 'a', global: true } }), 400, /^scope/],
    ['bad pool name', '/v1/pools', pool({ name: 'P_1' }), 400, /^name$/],
    ['pinned address that is no address', '/v1/services', { name: 'x', image: 'kiver/busybox', ips: { 0: '10.50.0.300' } }, 400, /^ips\/0$/],
    ['the same address pinned twice', '/v1/services', { name: 'x', image: 'kiver/busybox', ips: { 0: '10.50.0.5', 1: '10.50.0.05' } }, 400, /^ips\//],
    ['bad app name', '/v1/services', { name: 'x', image: 'kiver/busybox', app: 'Shop!' }, 400, /^app$/],
  ];
  for (const [what, path, body, status, field] of bad) {
    it(`${status} for ${what}, naming the field, storing nothing`, async () => {
      const before_ = await server.store.revision();
      const res = await raw('POST', path, body);
      assert.equal(res.status, status, JSON.stringify(res.body));
      assert.match(res.body.error?.field ?? '', field, JSON.stringify(res.body));
      assert.equal(await server.store.revision(), before_);
    });
  }

  it('every pool exhausted: the replica stays pending with an event naming every pool tried', async () => {
    await admin.post('/v1/pools', { name: 'tiny', cidr: '10.70.0.0/29', ranges: ['10.70.0.2-10.70.0.3'], scope: { service: 'stuck' } });
    await admin.post('/v1/pools', { name: 'stuck-app', cidr: '10.71.0.0/30', ranges: ['10.71.0.2-10.71.0.2'], scope: { app: 'lab' } });
    await admin.post('/v1/services', { name: 'stuck', image: 'kiver/busybox', replicas: 4, app: 'lab' });
    const s = await settle('stuck', (v) => v.status.running === 3 && v.status.pending === 1);
    assert.deepEqual(s.replicas.map((r) => r.pool ?? '-'), ['tiny', 'tiny', 'stuck-app', '-']);
    assert.match(s.replicas[3].lastError ?? '', /no free address in pools tiny, stuck-app/);
    const evs = await events('service/stuck');
    assert.ok(evs.some((e) => e.reason === 'FailedScheduling' && /tiny, stuck-app/.test(e.message)), JSON.stringify(evs));
    // A global pool appears: the pending replica falls through to it (the controller retries).
    await admin.post('/v1/pools', { name: 'global4', cidr: '10.61.0.0/24', gateway: '10.61.0.1', scope: { global: true } });
    const s2 = await settle('stuck', (v) => v.status.running === 4);
    assert.equal(s2.replicas[3].pool, 'global4');
    assert.deepEqual(s2.replicas.slice(0, 3).map((r) => r.ip), s.replicas.slice(0, 3).map((r) => r.ip), 'the others kept theirs');
  });

  it('a pinned address no pool of the service holds: pending, saying so', async () => {
    await admin.post('/v1/services', { name: 'pinned', image: 'kiver/busybox', replicas: 2, app: 'lab', ips: { 1: '10.99.0.1' } });
    const s = await settle('pinned', (v) => v.status.pending === 1);
    assert.match(s.replicas[1].lastError ?? '', /pinned address 10\.99\.0\.1 is in none of the pools that serve pinned \(stuck-app, global4/);
    // Gone again, so no pending replica keeps writing events under the revision checks below.
    await admin.delete('/v1/services/pinned');
    await until('pinned gone', async () => {
      await fakeAgents();
      return (await raw('GET', '/v1/services/pinned')).status === 404;
    });
    await until('its address released (the grace started)', async () => {
      const b = await server.store.get(K.ipOwner('pinned', 0));
      return b && JSON.parse(b.value).releasedAt ? true : undefined;
    });
  });

  it('IPv4 and IPv6 pools; overlap and a taken name are 409 naming the field, storing nothing', async () => {
    const a = await admin.post<PoolView>('/v1/pools', { name: 'shop-small', cidr: '10.60.0.0/29', ranges: ['10.60.0.2-10.60.0.3'], scope: { app: 'shop' } });
    assert.equal(a.size, '2');
    const v6 = await admin.post<PoolView>('/v1/pools', { name: 'global6', cidr: 'FD00:60::/64', gateway: 'fd00:60::1', scope: { global: true } });
    assert.equal(v6.cidr, 'fd00:60::/64');
    const before_ = await server.store.revision();
    for (const [body, field] of [
      [{ name: 'over', cidr: '10.60.0.0/16', scope: { global: true } }, 'cidr'],
      [{ name: 'over6', cidr: 'fd00:60::/48', scope: { global: true } }, 'cidr'],
      [{ name: 'shop-small', cidr: '10.62.0.0/24', scope: { global: true } }, 'name'],
    ] as const) {
      const res = await raw('POST', '/v1/pools', body);
      assert.equal(res.status, 409, JSON.stringify(res.body));
      assert.equal(res.body.error?.field, field);
    }
    assert.equal(await server.store.revision(), before_);
    const ls = await admin.get<PoolView[]>('/v1/pools');
    assert.deepEqual(ls.map((p) => p.name).sort(), ['global4', 'global6', 'shop-small', 'stuck-app', 'tiny']);
  });

  it('app pool of 2, 3 replicas: the third takes a global address; every replica shows its address', async () => {
    await admin.post('/v1/services', { name: 'cart', image: 'kiver/busybox', replicas: 3, app: 'shop' });
    const s = await settle('cart', (v) => v.status.running === 3);
    const ips = s.replicas.map((r) => r.ip);
    assert.equal(s.replicas.filter((r) => r.pool === 'shop-small').length, 2);
    // global4 comes before global6 by name in the global tier
    assert.equal(s.replicas.filter((r) => r.pool === 'global4').length, 1, JSON.stringify(s.replicas));
    assert.equal(new Set(ips).size, 3);
    assert.ok(ips.every((ip) => ip && ip.startsWith('10.6')));
  });

  it('deleting a pool with live allocations is 409 listing them, storing nothing', async () => {
    const before_ = await server.store.revision();
    const res = await raw('DELETE', '/v1/pools/shop-small');
    assert.equal(res.status, 409);
    assert.equal(res.body.error?.allocations?.length, 2);
    assert.ok(res.body.error!.allocations!.every((a) => a.owner.startsWith('cart/')));
    assert.match(res.body.error!.message, /cart\/\d/);
    assert.equal(await server.store.revision(), before_);
  });

  it('delete and re-create within the grace: the same ordinals get the same addresses', async () => {
    const before = (await admin.get<ServiceView>('/v1/services/cart')).replicas.map((r) => [r.ordinal, r.ip]);
    await admin.delete('/v1/services/cart');
    await until('cart gone', async () => {
      await fakeAgents();
      return (await raw('GET', '/v1/services/cart')).status === 404;
    });
    const audit = await admin.get<AuditView>('/v1/pool-audit?pool=shop-small');
    assert.ok(audit.rows.every((r) => r.state === 'released'), JSON.stringify(audit.rows));
    await admin.post('/v1/services', { name: 'cart', image: 'kiver/busybox', replicas: 3, app: 'shop' });
    const s = await settle('cart', (v) => v.status.running === 3);
    assert.deepEqual(s.replicas.map((r) => [r.ordinal, r.ip]), before);
  });

  it('reclaim: owner gone past the grace and held by no node → freed; still held by a (maybe partitioned) node → kept', async () => {
    await admin.post('/v1/pools', { name: 'short', cidr: '10.80.0.0/29', scope: { service: 'brief' } });
    await admin.post('/v1/services', { name: 'brief', image: 'kiver/busybox', replicas: 2, ipGraceSeconds: 0 });
    const s = await settle('brief', (v) => v.status.running === 2);
    const [held, free] = s.replicas.map((r) => r.ip!);
    // n1 keeps reporting `held` (as a partitioned node's last report would say).
    extraHeld.set('n1', [held]);
    await fakeAgents();
    await admin.delete('/v1/services/brief');
    await until('brief gone and its free address reclaimed', async () => {
      await fakeAgents();
      const ips = (await server.store.list(K.ipsOf('short'))).kvs.map((kv) => kv.key.slice(K.ipsOf('short').length));
      return (await raw('GET', '/v1/services/brief')).status === 404 && !ips.includes(free) && ips.includes(held) ? true : undefined;
    });
    const a = await admin.get<AuditView>('/v1/pool-audit?pool=short');
    assert.deepEqual(a.rows.map((r) => [r.ip, r.state, r.holders]), [[held, 'released', ['n1']]]);
    // n1 reports it no longer holds it: freed.
    extraHeld.delete('n1');
    await until('held address reclaimed once n1 lets it go', async () => {
      await fakeAgents();
      return (await server.store.list(K.ipsOf('short'))).kvs.length === 0;
    });
    assert.ok((await events('pool/reclaim')).some((e) => e.reason === 'Reclaimed'));
    await admin.delete('/v1/pools/short');
  });

  it('an address live on two nodes is a conflict: audit row, event and metric', async () => {
    const cart = (await admin.get<ServiceView>('/v1/services/cart')).replicas[0];
    const other = [...nodes.keys()].find((n) => n !== cart.node)!;
    extraHeld.set(other, [cart.ip!]);
    await fakeAgents();
    const a = await admin.get<AuditView>('/v1/pool-audit');
    const row = a.rows.find((r) => r.ip === cart.ip)!;
    assert.equal(row.state, 'conflicting');
    assert.deepEqual([...row.holders].sort(), [cart.node, other].sort());
    assert.ok(a.conflicting >= 1);
    await until('conflict event', async () => (await events(`pool/${cart.pool}`)).some((e) => e.reason === 'AddressConflict' && e.message.includes(cart.ip!)));
    const m = await (await fetch(`${server.url}/metrics`)).text();
    assert.match(m, /kiver_ipam_conflicts [1-9]/);
    extraHeld.delete(other);
    await fakeAgents();
  });

  it('pool audit --reclaim frees an address whose binding is gone (a leak), by compare-and-swap', async () => {
    await server.store.put(K.ip('global4', '10.61.0.200'), JSON.stringify({ owner: 'ghost/0', at: new Date().toISOString() }));
    assert.equal((await admin.get<AuditView>('/v1/pool-audit?pool=global4')).leaked, 1, 'a read frees nothing');
    assert.ok(await server.store.get(K.ip('global4', '10.61.0.200')));
    const a = await admin.post<AuditView>('/v1/pool-audit/reclaim?pool=global4', {});
    assert.equal(a.reclaimed, 1);
    assert.equal(await server.store.get(K.ip('global4', '10.61.0.200')), undefined);
  });
});
