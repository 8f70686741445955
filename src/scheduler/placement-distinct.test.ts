import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { place, type NodeCandidate, type PlacementRequest } from './placement.js';
import { emptyAlloc } from '../model/node.js';

const GiB = 1024 ** 3;
const node = (name: string, replicas: string[] = []): NodeCandidate =>
  ({ name, ready: true, cordoned: false, cpus: 4, memory: 8 * GiB, labels: {}, alloc: { ...emptyAlloc(), replicas } });
const req = (distinct: boolean): PlacementRequest => ({ service: 'db', cpu: 0.1, cpuPolicy: 'shares', memory: GiB, ports: [], ...(distinct ? { distinct } : {}) });

describe('hard anti-affinity (replicated databases)', () => {
  it('never puts a second replica of the service on a node; soft anti-affinity falls back', () => {
    const nodes = [node('a', ['db/0']), node('b', ['db/1'])];
    assert.equal(place(nodes, req(false)).ok, true);
    const r = place(nodes, req(true));
    assert.equal(r.ok, false);
    assert.match(r.ok ? '' : r.reason, /2 already hosts a replica of the service/);
    const r2 = place([...nodes, node('c')], req(true));
    assert.equal(r2.ok && r2.placement.node, 'c');
  });
});
