import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { InputError } from '../errors.js';
import type { PoolCreate } from '../model/pool.js';
import { compilePool, contains, overlapping, space } from './pool-spec.js';
import { canonical, parseCidr, sizeOf } from './address.js';

const base: PoolCreate = { name: 'p', cidr: '10.1.0.0/24', scope: { global: true } };
function field(c: Partial<PoolCreate>): string | undefined {
  try {
    compilePool({ ...base, ...c });
    return undefined;
  } catch (err) {
    assert.ok(err instanceof InputError, String(err));
    return err.field;
  }
}

describe('pool spec', () => {
  it('names the bad field: CIDR, ranges, excludes and gateway outside the CIDR, VLAN outside 1-4094', () => {
    assert.equal(field({ cidr: '10.1.0.0' }), 'cidr');
    assert.equal(field({ cidr: '10.1.0.1/24' }), 'cidr', 'host bits set');
    assert.equal(field({ cidr: '10.1.0.0/33' }), 'cidr');
    assert.equal(field({ cidr: 'fd00::/129' }), 'cidr');
    assert.equal(field({ cidr: 'nonsense/8' }), 'cidr');
    assert.equal(field({ ranges: ['10.1.0.10-10.1.1.5'] }), 'ranges/0');
    assert.equal(field({ ranges: ['10.1.0.10-10.1.0.20', '10.1.0.30-10.1.0.2'] }), 'ranges/1', 'last below first');
    assert.equal(field({ ranges: ['fd00::1-fd00::5'] }), 'ranges/0', 'family differs');
    assert.equal(field({ excludes: ['10.2.0.1'] }), 'excludes/0');
    assert.equal(field({ gateway: '10.1.1.1' }), 'gateway');
    assert.equal(field({ gateway: 'fd00::1' }), 'gateway');
    assert.equal(field({ vlan: 0, parent: 'eth0' }), 'vlan');
    assert.equal(field({ vlan: 4095, parent: 'eth0' }), 'vlan');
    assert.equal(field({ vlan: 10 }), 'vlan', 'a VLAN needs a parent');
    assert.equal(field({ driver: 'macvlan' }), 'parent');
    assert.equal(field({ cidr: '10.1.0.0/30', excludes: ['10.1.0.1-10.1.0.2'] }), 'cidr', 'nothing left');
    assert.equal(field({ vlan: 4094, parent: 'eth0' }), undefined);
    assert.equal(field({ vlan: 1, parent: 'eth0' }), undefined);
  });

  it('space: ranges minus excludes minus the gateway; IPv4 ends and the IPv6 anycast address never handed out', () => {
    const p = compilePool({ ...base, ranges: ['10.1.0.0-10.1.0.9'], excludes: ['10.1.0.5'], gateway: '10.1.0.1' });
    assert.equal(sizeOf(space(p)), 7n); // .2-.4, .6-.9 (not .0 network, .1 gateway, .5 excluded)
    assert.ok(contains(p, '10.1.0.2') && !contains(p, '10.1.0.1') && !contains(p, '10.1.0.5') && !contains(p, '10.1.0.0'));
    assert.equal(sizeOf(space(compilePool(base))), 253n, 'the default gateway (first address) is Docker\'s');
    assert.equal(compilePool(base).gateway, '10.1.0.1');
    const v6 = compilePool({ ...base, cidr: 'FD00:1::/64', gateway: 'fd00:1::1' });
    assert.equal(v6.cidr, 'fd00:1::/64');
    assert.equal(sizeOf(space(v6)), 2n ** 64n - 2n);
    assert.ok(!contains(v6, 'fd00:1::') && !contains(v6, 'fd00:1::1') && contains(v6, 'fd00:1::2'));
  });

  it('overlap: same family, intersecting blocks', () => {
    const a = compilePool({ ...base, name: 'a' });
    assert.equal(overlapping(compilePool({ ...base, name: 'b', cidr: '10.1.0.128/25' }), [a])?.name, 'a');
    assert.equal(overlapping(compilePool({ ...base, name: 'b', cidr: '10.0.0.0/8' }), [a])?.name, 'a');
    assert.equal(overlapping(compilePool({ ...base, name: 'b', cidr: '10.1.1.0/24' }), [a]), undefined);
    assert.equal(overlapping(compilePool({ ...base, name: 'b', cidr: 'fd00::/64' }), [a]), undefined);
  });

  it('addresses have one canonical text (keys use it)', () => {
    assert.equal(canonical('FD00:0:0::0001'), 'fd00::1');
    assert.equal(canonical('010.1.0.1'), undefined, 'no octal-looking forms');
    assert.equal(canonical('::ffff:10.1.0.1'), undefined);
    assert.equal(typeof parseCidr('10.0.0.0/8'), 'object');
  });
});
