import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DYNAMIC_PORTS, addToAlloc, place, refit, removeFromAlloc, type NodeCandidate, type PlacementRequest } from './placement.js';
import { emptyAlloc } from '../model/node.js';

const GiB = 1024 ** 3;
function node(name: string, extra: Partial<NodeCandidate> = {}): NodeCandidate {
  return { name, ready: true, cordoned: false, cpus: 4, memory: 8 * GiB, labels: {}, alloc: emptyAlloc(), ...extra };
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
  it('spreads replicas of one service over distinct nodes', () => {
    const nodes = [node('a'), node('b'), node('c')];
    assert.deepEqual(placeMany(nodes, req(), 3).sort(), ['a', 'b', 'c']);
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
    assert.equal(nodes[0].alloc.cpuMilli, 2000);
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

  it('cpuset is refused for lack of whole free cores even when CPU capacity suffices', () => {
    // The whole-core rule on its own: 4 cores, 3 held exclusively, only 1 core of CPU
    // accounted (an allocation whose cores and millicores disagree, e.g. restored from an
    // older store). CPU alone would admit a 2-core cpuset replica; whole free cores must not.
    const a = { ...emptyAlloc(), cpuMilli: 1000, exclusiveCores: [0, 1, 2], replicas: ['old/0'] };
    const nodes = [node('a', { cpus: 4, alloc: a })];
    assert.equal(place(nodes, req({ cpu: 2, cpuPolicy: 'shares' })).ok, true, 'CPU capacity suffices');
    const res = place(nodes, req({ cpu: 2, cpuPolicy: 'cpuset' }));
    assert.equal(res.ok, false);
    assert.equal(!res.ok && res.reason, '0/1 nodes fit: 1 not enough whole free cores for cpuset');
    const one = place(nodes, req({ cpu: 1, cpuPolicy: 'cpuset' }));
    assert.ok(one.ok);
    assert.deepEqual(one.placement.cpuset, [3]);
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

  it('never hands out a dynamic host port above the range; a full range is a reason', () => {
    const span = DYNAMIC_PORTS.max - DYNAMIC_PORTS.min + 1;
    // Every dynamic port but the last one taken.
    const taken = Array.from({ length: span - 1 }, (_, i) => DYNAMIC_PORTS.min + i);
    const nodes = [node('a', { alloc: { ...emptyAlloc(), hostPorts: taken } })];
    const one = place(nodes, req({ ports: [{ container: 80 }] }));
    assert.ok(one.ok);
    assert.deepEqual(one.placement.hostPorts, [DYNAMIC_PORTS.max]);
    const two = place(nodes, req({ ports: [{ container: 80 }, { container: 81 }] }));
    assert.equal(two.ok, false);
    assert.equal(!two.ok && two.reason, `0/1 nodes fit: 1 no free host port in ${DYNAMIC_PORTS.min}-${DYNAMIC_PORTS.max}`);
    // A fixed port outside the range does not use the range up; one inside it does.
    assert.equal(place(nodes, req({ ports: [{ container: 80 }, { container: 81, host: 8081 }] })).ok, true);
    assert.equal(place(nodes, req({ ports: [{ container: 80 }, { container: 81, host: DYNAMIC_PORTS.max }] })).ok, false);
  });

  it('places replicas only on nodes whose labels match every constraint', () => {
    const nodes = [
      node('a', { labels: { zone: 'eu', disk: 'ssd' } }),
      node('b', { labels: { zone: 'us', disk: 'ssd' } }),
      node('c', { labels: { zone: 'eu' } }),
      node('d', { labels: { zone: 'eu', disk: 'ssd' } }),
    ];
    const r = req({ constraints: { zone: 'eu', disk: 'ssd' } });
    assert.deepEqual(placeMany(nodes, r, 3).sort(), ['a', 'a', 'd'], 'only a and d match; the third replica shares a node');
    assert.deepEqual(placeMany([node('x'), node('y', { labels: { zone: 'eu' } })], req({ constraints: { zone: 'eu' } }), 1), ['y']);
  });

  it('a replica no node matches is unplaceable, with the constraint in the reason', () => {
    const res = place([node('a', { labels: { zone: 'us' } }), node('b'), node('c', { ready: false, labels: { zone: 'eu' } })],
      req({ constraints: { zone: 'eu' } }));
    assert.equal(res.ok, false);
    assert.equal(!res.ok && res.reason, '0/3 nodes fit: 2 node labels do not match constraint zone=eu, 1 node not ready');
  });

  it('refit re-places a replica on its own node from the freed allocation, whatever the node state', () => {
    const r = req({ cpu: 2, cpuPolicy: 'cpuset', ports: [{ container: 80 }] });
    const n = node('a', { cpus: 2 });
    const p = place([n], r);
    assert.ok(p.ok);
    n.alloc = addToAlloc(n.alloc, 'db/0', r, p.placement);
    const before = structuredClone(n.alloc);
    const freed = removeFromAlloc(n.alloc, 'db/0', { cpu: 2, memory: GiB, cpuset: p.placement.cpuset, hostPorts: p.placement.hostPorts });
    // Cordoned, not ready and without the labels a constraint asks for: the replica stays where its data is.
    const cordoned = { ...n, cordoned: true, ready: false };
    const res = refit(cordoned, freed, { ...r, constraints: { zone: 'eu' } });
    assert.ok(res.ok, !res.ok ? res.reason : '');
    assert.deepEqual(res.placement, { node: 'a', cpuset: [0, 1], hostPorts: [20000] });
    assert.deepEqual(n.alloc, before, 'the node view is not touched');
    // Without freeing its old share first the same request does not fit.
    const full = refit(n, n.alloc, r);
    assert.equal(full.ok, false);
    assert.equal(!full.ok && full.reason, 'not enough CPU');
    // A bigger new generation that the node cannot hold says why.
    const big = refit(n, freed, { ...r, cpu: 3 });
    assert.equal(!big.ok && big.reason, 'not enough CPU');
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
