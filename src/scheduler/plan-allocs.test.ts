import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { place, type NodeCandidate, type PlacementRequest } from './placement.js';
import { PlanAllocs } from './plan-allocs.js';
import { emptyAlloc } from '../model/node.js';

const GiB = 1024 ** 3;
const node = (name: string, cpus = 2): NodeCandidate => ({ name, ready: true, cordoned: false, cpus, memory: 4 * GiB, labels: {}, alloc: emptyAlloc() });
const req = (extra: Partial<PlacementRequest> = {}): PlacementRequest => ({
  service: 'db', cpu: 1, cpuPolicy: 'shares', memory: GiB, ports: [{ container: 80 }], ...extra,
});

/** Plans `count` replicas into one plan, the way the controller's batch planner does. */
function planMany(nodes: NodeCandidate[], plan: PlanAllocs, r: PlacementRequest, count: number) {
  const out = [];
  for (let i = 0; i < count; i++) {
    const res = place(nodes, r, { offset: i, overlay: plan.overlayFor(nodes) });
    if (!res.ok) return { out, reason: res.reason };
    assert.equal(nodes[res.index].name, res.placement.node);
    plan.book(nodes, res.index, `${r.service}/${i}`, r, res.placement);
    out.push(res.placement);
  }
  return { out };
}

describe('plan-local allocations', () => {
  it('a plan sees its own bookings while the shared node view stays as committed', () => {
    const nodes = [node('a'), node('b')];
    const plan = new PlanAllocs();
    const { out, reason } = planMany(nodes, plan, req(), 5);
    // 2 nodes × 2 CPUs: four 1-CPU replicas fit, the fifth does not (no over-booking inside a plan).
    assert.equal(out.length, 4);
    assert.match(reason!, /0\/2 nodes fit: 2 not enough CPU/);
    assert.deepEqual(out.map((p) => p.node).slice(0, 2).sort(), ['a', 'b'], 'spread while both have room');
    for (const n of nodes) assert.deepEqual(n.alloc, emptyAlloc(), `${n.name} untouched until the plan commits`);
    const booked = new Map(plan.entries());
    assert.equal(booked.get('a')!.cpuMilli, 2000);
    assert.equal(booked.get('b')!.cpuMilli, 2000);
    // Host ports booked by the plan are not handed out twice on one node.
    const ports = out.filter((p) => p.node === 'a').map((p) => p.hostPorts[0]);
    assert.deepEqual(ports, [20000, 20001]);
  });

  it('a node list that changes under the plan keeps the plan\'s bookings', () => {
    const nodes = [node('b'), node('c')];
    const plan = new PlanAllocs();
    const { out } = planMany(nodes, plan, req(), 2);
    assert.deepEqual(out.map((p) => p.node).sort(), ['b', 'c']);
    // A node joins (the node index hands out a new, re-sorted list): positions shift.
    const grown = [node('a', 1), ...nodes];
    const res = place(grown, req({ cpu: 1.5 }), { overlay: plan.overlayFor(grown) });
    assert.equal(!res.ok && res.reason, '0/3 nodes fit: 3 not enough CPU', 'b and c hold the plan\'s bookings at their new positions');
    const fits = place(grown, req(), { overlay: plan.overlayFor(grown) });
    assert.ok(fits.ok);
    assert.equal(fits.placement.node, 'a');
    plan.book(grown, fits.index, 'db/9', req(), fits.placement);
    assert.equal(plan.allocOf(grown[0]).cpuMilli, 1000);
    assert.deepEqual(grown[0].alloc, emptyAlloc());
  });

  it('a dropped plan leaves nothing behind: a new plan starts from the committed view', () => {
    const nodes = [node('a', 1)];
    const first = new PlanAllocs();
    assert.equal(planMany(nodes, first, req(), 1).out.length, 1);
    assert.equal(place(nodes, req(), { overlay: first.overlayFor(nodes) }).ok, false, 'full inside the first plan');
    const second = new PlanAllocs();
    assert.equal(place(nodes, req(), { overlay: second.overlayFor(nodes) }).ok, true, 'the failed plan booked nothing shared');
    assert.deepEqual(second.allocOf(nodes[0]), emptyAlloc());
  });
});
