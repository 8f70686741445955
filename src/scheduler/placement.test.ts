import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { addToAlloc, place, removeFromAlloc, type NodeCandidate, type PlacementRequest } from './placement.js';
import { emptyAlloc } from '../model/node.js';

const GiB = 1024 ** 3;
function node(name: string, extra: Partial<NodeCandidate> = {}): NodeCandidate {
  return { name, ready: true, cordoned: false, cpus: 4, memory: 8 * GiB, alloc: emptyAlloc(), ...extra };
}
const req = (extra: Partial<PlacementRequest> = {}): PlacementRequest => ({
  service: 'db', cpu: 1, cpuPolicy: 'shares', memory: GiB, ports: [], ...extra,
});

/** Places `count` replicas one after another, committing each into the snapshot. */
function placeMany(nodes: NodeCandidate[], r: PlacementRequest, count: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    const res = place(nodes, r, { offset: i });
    assert.ok(res.ok, `replica ${i}: ${!res.ok && res.reason}`);
    const n = nodes.find((x) => x.name === res.placement.node)!;
    n.alloc = addToAlloc(n.alloc, `${r.service}/${i}`, r, res.placement);
    out.push(n.name);
  }
  return out;
}

describe('scheduler', () => {
  it('spreads replicas of one service over distinct nodes, even when one node is much larger', () => {
    // On identical empty nodes the least-allocated score alone would spread them; the big
    // node keeps the best score after every placement, so only anti-affinity spreads here.
    const nodes = [node('a'), node('big', { cpus: 64, memory: 256 * GiB }), node('c')];
    assert.deepEqual(placeMany(nodes, req(), 3).sort(), ['a', 'big', 'c']);
    // A second service too, wherever the scan starts.
    for (let offset = 0; offset < 3; offset++) {
      const res = [0, 1, 2].map((i) => {
        const r = place(nodes, req({ service: `s${offset}` }), { offset: offset + i });
        assert.ok(r.ok);
        const n = nodes.find((x) => x.name === r.placement.node)!;
        n.alloc = addToAlloc(n.alloc, `s${offset}/${i}`, req({ service: `s${offset}` }), r.placement);
        return n.name;
      });
      assert.deepEqual(res.sort(), ['a', 'big', 'c'], `offset ${offset}`);
    }
  });

  it('prefers the least allocated node among those without the service', () => {
    const nodes = [node('a', { alloc: { ...emptyAlloc(), cpuMilli: 3000, memory: 6 * GiB, replicas: ['x/0'] } }), node('b'), node('c', { alloc: { ...emptyAlloc(), cpuMilli: 1000, memory: GiB, replicas: ['x/1'] } })];
    for (let offset = 0; offset < 3; offset++) {
      const r = place(nodes, req(), { offset });
      assert.ok(r.ok);
      assert.equal(r.placement.node, 'b', `offset ${offset}`);
    }
  });

  it('falls back to a node that already hosts the service when no other fits', () => {
    const nodes = [node('a'), node('b', { ready: false })];
    assert.deepEqual(placeMany(nodes, req(), 3), ['a', 'a', 'a']);
  });

  it('skips not-ready and cordoned nodes and says why nothing fits', () => {
    const res = place([node('a', { ready: false }), node('b', { cordoned: true }), node('c', { memory: GiB / 2 })], req());
    assert.equal(res.ok, false);
    assert.match(!res.ok ? res.reason : '', /0\/3 nodes fit: .*1 node not ready.*1 node cordoned.*1 not enough memory/);
  });

  it('never over-commits CPU or memory', () => {
    const nodes = [node('a', { cpus: 2 })];
    placeMany(nodes, req({ cpu: 1 }), 2);
    const res = place(nodes, req({ cpu: 0.001 }));
    assert.equal(res.ok, false);
    assert.match(!res.ok ? res.reason : '', /1 not enough CPU/);
    assert.equal(nodes[0].alloc.cpuMilli, 2000);
    // Memory: CPU to spare, memory exactly full after two replicas of 4 GiB on 8 GiB.
    const m = [node('m', { cpus: 16 })];
    placeMany(m, req({ cpu: 0.1, memory: 4 * GiB }), 2);
    assert.equal(m[0].alloc.memory, 8 * GiB, 'a request that exactly fills the node fits');
    const more = place(m, req({ cpu: 0.1, memory: 1 }));
    assert.equal(more.ok, false, 'one byte more does not');
    assert.match(!more.ok ? more.reason : '', /1 not enough memory/);
    assert.equal(m[0].alloc.memory, 8 * GiB);
  });

  it('cpuset takes whole free cores, distinct per replica', () => {
    const nodes = [node('a', { cpus: 4 })];
    const r = req({ cpu: 2, cpuPolicy: 'cpuset' });
    const p1 = place(nodes, r);
    assert.ok(p1.ok);
    assert.deepEqual(p1.placement.cpuset, [0, 1]);
    nodes[0].alloc = addToAlloc(nodes[0].alloc, 'db/0', r, p1.placement);
    const p2 = place(nodes, r);
    assert.ok(p2.ok);
    assert.deepEqual(p2.placement.cpuset, [2, 3]);
    nodes[0].alloc = addToAlloc(nodes[0].alloc, 'db/1', r, p2.placement);
    assert.equal(place(nodes, req({ cpu: 1, cpuPolicy: 'cpuset' })).ok, false);
  });

  it('cpuset is refused when shared work leaves too few cores', () => {
    const nodes = [node('a', { cpus: 2 })];
    placeMany(nodes, req({ cpu: 1.5, service: 'web' }), 1);
    const res = place(nodes, req({ cpu: 1, cpuPolicy: 'cpuset' }));
    assert.equal(res.ok, false);
  });

  it('allocates dynamic host ports without clashes and honours fixed ones', () => {
    const nodes = [node('a')];
    const r = req({ cpu: 0.1, memory: 1024, ports: [{ container: 80 }, { container: 81, host: 20000 }] });
    const p = place(nodes, r);
    assert.ok(p.ok);
    assert.deepEqual(p.placement.hostPorts, [20001, 20000]);
    nodes[0].alloc = addToAlloc(nodes[0].alloc, 'db/0', r, p.placement);
    const clash = place(nodes, r);
    assert.equal(clash.ok, false);
    const dyn = place(nodes, req({ cpu: 0.1, memory: 1024, ports: [{ container: 80 }] }));
    assert.ok(dyn.ok);
    assert.deepEqual(dyn.placement.hostPorts, [20002]);
  });

  it('removeFromAlloc gives back exactly what was taken and is idempotent', () => {
    const r = req({ cpu: 2, cpuPolicy: 'cpuset', ports: [{ container: 80 }] });
    const n = node('a');
    const p = place([n], r);
    assert.ok(p.ok);
    const after = addToAlloc(n.alloc, 'db/0', r, p.placement);
    const used = { cpu: 2, memory: GiB, cpuset: p.placement.cpuset, hostPorts: p.placement.hostPorts };
    const back = removeFromAlloc(after, 'db/0', used);
    assert.deepEqual(back, emptyAlloc());
    assert.deepEqual(removeFromAlloc(back, 'db/0', used), back);
  });

  it('examines a bounded number of nodes on a large empty cluster', () => {
    const nodes = Array.from({ length: 10000 }, (_, i) => node(`n${i}`));
    const res = place(nodes, req(), { offset: 500, limit: 8 });
    assert.ok(res.ok);
    const idx = Number(res.placement.node.slice(1));
    assert.ok(idx >= 500 && idx < 508, `chose ${res.placement.node}`);
  });
});
