import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteStore } from '../store/sqlite.js';
import { K } from '../model/keys.js';
import { Ipam } from './allocator.js';
import { createPool } from './pools.js';
import { auditPools, freeLeaks, markReleased } from './audit.js';

const dir = mkdtempSync(join(tmpdir(), 'kiver-ipam-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const open = () => SqliteStore.open(join(dir, `s${n++}.db`));

describe('allocator', () => {
  it('order: service pools, then app pools, then global; exhausted names every pool tried', async () => {
    const s = open();
    await createPool(s, { name: 'svc', cidr: '10.1.0.0/29', ranges: ['10.1.0.2-10.1.0.3'], scope: { service: 'web' } });
    await createPool(s, { name: 'app', cidr: '10.2.0.0/24', ranges: ['10.2.0.10-10.2.0.10'], scope: { app: 'shop' } });
    await createPool(s, { name: 'glob', cidr: '10.3.0.0/24', ranges: ['10.3.0.5-10.3.0.5'], scope: { global: true } });
    await createPool(s, { name: 'other', cidr: '10.4.0.0/24', scope: { service: 'db' } });
    const ipam = new Ipam(s);
    const got = [];
    for (let i = 0; i < 5; i++) got.push(await ipam.ensure({ service: 'web', ordinal: i, serviceUid: 'u1', app: 'shop' }));
    assert.deepEqual(got.slice(0, 4).map((g) => g?.ok && g.pool.name), ['svc', 'svc', 'app', 'glob']);
    assert.equal(got[4]?.ok, false);
    assert.deepEqual(got[4]?.ok === false && got[4].tried, ['svc', 'app', 'glob']);
    assert.match(got[4]?.ok === false ? got[4].reason : '', /svc, app, glob/);
    // Kept for life: asking again gives the same address, and no pool at all → no fixed IP.
    const again = await ipam.ensure({ service: 'web', ordinal: 2, serviceUid: 'u1', app: 'shop' });
    assert.equal(again?.ok && again.binding.ip, '10.2.0.10');
    await s.close();
  });

  it('pinned address: taken → pending with the reason; free → exactly that one', async () => {
    const s = open();
    await createPool(s, { name: 'g', cidr: 'fd00:5::/64', scope: { global: true } });
    const ipam = new Ipam(s);
    const a = await ipam.ensure({ service: 'a', ordinal: 0, serviceUid: 'u', pin: 'fd00:5::0:10' });
    assert.equal(a?.ok && a.binding.ip, 'fd00:5::10');
    const b = await ipam.ensure({ service: 'b', ordinal: 0, serviceUid: 'u', pin: 'fd00:5::10' });
    assert.equal(b?.ok, false);
    assert.match(b?.ok === false ? b.reason : '', /taken/);
    await s.close();
  });

  it('released owner: grace, then freed only when no node holds it; a re-created service within the grace gets it back', async () => {
    const s = open();
    await createPool(s, { name: 'g', cidr: '10.9.0.0/24', scope: { global: true } });
    const ipam = new Ipam(s);
    const first = await ipam.ensure({ service: 'web', ordinal: 0, serviceUid: 'u1', graceSeconds: 0 });
    assert.ok(first?.ok);
    const ip = first.binding.ip;
    // No service and no replica: the owner is gone. A registered node still reports holding it.
    await s.put(K.node('n1'), JSON.stringify({ name: 'n1' }));
    await s.put(K.ipHolders('n1'), JSON.stringify({ node: 'n1', addresses: [ip], at: '' }));
    let a = await auditPools(s);
    assert.equal(a.toRelease.length, 1);
    await markReleased(s, a.toRelease);
    a = await auditPools(s);
    assert.equal(a.view.rows[0].state, 'released', 'held by n1 (which may be partitioned): not freed');
    assert.equal(a.leaks.length, 0);
    // Re-created within the grace: same address, grace cleared.
    const back = await ipam.ensure({ service: 'web', ordinal: 0, serviceUid: 'u2', graceSeconds: 0 });
    assert.equal(back?.ok && back.binding.ip, ip);
    assert.equal(back?.ok && back.binding.releasedAt, undefined);
    // n1 reports it no longer holds it: now leaked, and freed by CAS.
    await s.put(K.ipHolders('n1'), JSON.stringify({ node: 'n1', addresses: [], at: '' }));
    await markReleased(s, (await auditPools(s)).toRelease);
    a = await auditPools(s);
    assert.equal(a.view.leaked, 1);
    assert.equal((await freeLeaks(s, a.leaks)).length, 1);
    assert.equal((await s.list(K.ips)).kvs.length, 0);
    assert.equal((await s.list(K.ipOwners)).kvs.length, 0);
    await s.close();
  });

  it('1,000 concurrent claims on a pool of exactly 1,000 from two allocators: 1,000 distinct, then exhausted', async () => {
    const s = open();
    await createPool(s, { name: 'g', cidr: '10.8.0.0/16', ranges: ['10.8.0.2-10.8.3.233'], scope: { global: true } });
    const [x, y] = [new Ipam(s), new Ipam(s)];
    const res = await Promise.all(Array.from({ length: 1000 }, (_, i) => (i % 2 ? x : y).ensure({ service: 's', ordinal: i, serviceUid: 'u' })));
    const ips = res.map((r) => (r?.ok ? r.binding.ip : `fail ${r?.ok === false ? r.reason : ''}`));
    assert.equal(ips.filter((ip) => ip.startsWith('fail')).length, 0, ips.find((ip) => ip.startsWith('fail')));
    assert.equal(new Set(ips).size, 1000);
    assert.equal((await s.list(K.ips)).kvs.length, 1000);
    const more = await x.ensure({ service: 's', ordinal: 1000, serviceUid: 'u' });
    assert.equal(more?.ok, false);
    await s.close();
  });
});
