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
    assert.equal(!res.ok ? res.reason : '', '0/3 nodes fit: 1 node not ready, 1 node cordoned, 1 not enough memory');
    assert.deepEqual(place([], req()), { ok: false, reason: 'no nodes registered' });
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

  it('a fractional cpuset takes whole cores; a node out of free cores refuses cpuset for that reason', () => {
    const nodes = [node('a', { cpus: 4 })];
    const r = req({ cpu: 1.5, cpuPolicy: 'cpuset' });
    placeMany(nodes, r, 2);
    assert.deepEqual(nodes[0].alloc.exclusiveCores, [0, 1, 2, 3]);
    assert.equal(nodes[0].alloc.cpuMilli, 3000, 'CPU to spare');
    const res = place(nodes, req({ cpu: 0.5, cpuPolicy: 'cpuset' }));
    assert.deepEqual(res, { ok: false, reason: '0/1 nodes fit: 1 not enough whole free cores for cpuset' });
    const shared = place(nodes, req({ cpu: 0.5 }));
    assert.ok(shared.ok, 'shares need no whole core');
    assert.deepEqual(shared.placement, { node: 'a', hostPorts: [] }, 'no cpuset for shares');
  });

  it('a service is on a node only by its own replicas (not by a name prefix)', () => {
    const big = { cpus: 64, memory: 256 * GiB };
    const nodes = [node('a', { alloc: { ...emptyAlloc(), cpuMilli: 1000, memory: GiB, replicas: ['dbx/0'] } }), node('b', { ...big, alloc: { ...emptyAlloc(), replicas: ['db/0'] } })];
    const r = place(nodes, req());
    assert.ok(r.ok);
    assert.equal(r.placement.node, 'a', 'b holds db/0; a holds only dbx/0');
  });

  it('stops after `limit` feasible candidates and takes the best of those', () => {
    // Later nodes are emptier: with limit 3 from offset 0, n2 is the best it may see.
    const nodes = Array.from({ length: 8 }, (_, i) => node(`n${i}`, { alloc: { ...emptyAlloc(), cpuMilli: 3000 - i * 300, memory: GiB } }));
    for (const limit of [1, 3, 5]) {
      const r = place(nodes, req({ cpu: 0.1 }), { offset: 0, limit });
      assert.ok(r.ok);
      assert.equal(r.placement.node, `n${limit - 1}`, `limit ${limit}`);
    }
    const wrapped = place(nodes, req({ cpu: 0.1 }), { offset: 6, limit: 3 });
    assert.ok(wrapped.ok);
    assert.equal(wrapped.placement.node, 'n7', 'the scan wraps around from the offset');
    const neg = place(nodes, req({ cpu: 0.1 }), { offset: -1, limit: 1 });
    assert.ok(neg.ok);
    assert.equal(neg.placement.node, 'n7', 'a negative offset counts from the end');
  });

  it('matches an exhaustive reference scheduler on random clusters', () => {
    // The rules written out plainly: feasible nodes, those without the service first,
    // then the highest least-allocated score, ties to the smallest name.
    let seed = 17;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const pick = <T>(xs: T[]) => xs[Math.floor(rnd() * xs.length)];
    for (let round = 0; round < 300; round++) {
      const nodes: NodeCandidate[] = Array.from({ length: 1 + Math.floor(rnd() * 6) }, (_, i) => {
        const cpus = pick([2, 4, 8, 16]);
        const memory = pick([4, 8, 16, 64]) * GiB;
        const replicas = [pick(['db/0', 'dbx/1', 'web/0']), pick(['db/1', 'web/1', 'x/0'])].slice(0, Math.floor(rnd() * 3));
        return node(`${pick(['p', 'q', 'r'])}${i}`, {
          cpus, memory, ready: rnd() > 0.1, cordoned: rnd() < 0.1,
          alloc: { ...emptyAlloc(), cpuMilli: Math.floor(rnd() * cpus * 1000), memory: Math.floor(rnd() * memory), replicas },
        });
      });
      const r = req({ cpu: pick([0.1, 0.5, 1, 2]), memory: pick([0.25, 1, 4]) * GiB });
      const fits = nodes.filter((n) => n.ready && !n.cordoned && n.alloc.cpuMilli + r.cpu * 1000 <= n.cpus * 1000 && n.alloc.memory + r.memory <= n.memory);
      const score = (n: NodeCandidate) => ((1 - (n.alloc.cpuMilli + r.cpu * 1000) / (n.cpus * 1000)) + (1 - (n.alloc.memory + r.memory) / n.memory)) / 2;
      const hosts = (n: NodeCandidate) => n.alloc.replicas.some((x) => x.split('/')[0] === 'db');
      const pool = fits.some((n) => !hosts(n)) ? fits.filter((n) => !hosts(n)) : fits;
      const want = [...pool].sort((x, y) => score(y) - score(x) || (x.name < y.name ? -1 : x.name > y.name ? 1 : 0))[0];
      const got = place(nodes, r, { offset: Math.floor(rnd() * 10) });
      const where = `round ${round}: ${JSON.stringify(nodes.map((n) => [n.name, n.cpus, n.memory / GiB, n.alloc.cpuMilli, n.alloc.memory, n.alloc.replicas, n.ready, n.cordoned]))} req ${r.cpu}/${r.memory / GiB}`;
      if (!want) {
        assert.equal(got.ok, false, where);
        const [head, detail] = (!got.ok ? got.reason : '').split(': ');
        assert.equal(head, `0/${nodes.length} nodes fit`);
        const counts = [...detail.matchAll(/(\d+) [a-z]/g)].reduce((a, m) => a + Number(m[1]), 0);
        assert.equal(counts, nodes.length, `every node's reason is counted: ${!got.ok && got.reason}`);
      } else {
        assert.ok(got.ok, where);
        assert.equal(got.placement.node, want.name, where);
      }
    }
  });

  it('addToAlloc adds the request and keeps cores and ports sorted', () => {
    const a = { ...emptyAlloc(), cpuMilli: 500, memory: GiB, exclusiveCores: [2, 3], hostPorts: [20005], replicas: ['db/0'] };
    const r = req({ cpu: 2, cpuPolicy: 'cpuset', memory: 2 * GiB });
    const after = addToAlloc(a, 'db/1', r, { node: 'a', cpuset: [0, 1], hostPorts: [20001] });
    assert.deepEqual(after, { cpuMilli: 2500, memory: 3 * GiB, exclusiveCores: [0, 1, 2, 3], hostPorts: [20001, 20005], replicas: ['db/0', 'db/1'] });
    assert.deepEqual(a.exclusiveCores, [2, 3], 'pure: the input is not changed');
  });

  it('removeFromAlloc takes away one replica and leaves the others', () => {
    const r = req({ cpu: 1, cpuPolicy: 'cpuset', memory: GiB });
    let a = addToAlloc(emptyAlloc(), 'db/0', r, { node: 'a', cpuset: [0], hostPorts: [20000] });
    a = addToAlloc(a, 'db/1', r, { node: 'a', cpuset: [1], hostPorts: [20001] });
    const left = removeFromAlloc(a, 'db/0', { cpu: 1, memory: GiB, cpuset: [0], hostPorts: [20000] });
    assert.deepEqual(left, { cpuMilli: 1000, memory: GiB, exclusiveCores: [1], hostPorts: [20001], replicas: ['db/1'] });
    assert.equal(removeFromAlloc(left, 'db/0', { cpu: 1, memory: GiB, cpuset: [1], hostPorts: [20001] }), left, 'an unknown replica changes nothing');
  });

  it('breaks score ties by node name, wherever the scan starts (placement does not depend on the offset)', () => {
    const fresh = [node('c'), node('a'), node('b')];
    const hosting = ['c', 'a', 'b'].map((n) => node(n, { alloc: { ...emptyAlloc(), replicas: ['db/9'] } }));
    for (let offset = 0; offset < 3; offset++) {
      const r = place(fresh, req(), { offset });
      assert.ok(r.ok);
      assert.equal(r.placement.node, 'a', `offset ${offset}`);
      const f = place(hosting, req(), { offset });
      assert.ok(f.ok);
      assert.equal(f.placement.node, 'a', `fallback, offset ${offset}`);
    }
  });
});
