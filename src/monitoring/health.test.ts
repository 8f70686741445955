import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { HEALTH_CODES, evaluateHealth, toInflux, toPrometheus, type HealthInputs } from './health.js';

const base = (over: Partial<HealthInputs> = {}): HealthInputs => ({
  store: { ok: true }, leader: { url: 'http://s1' }, diskThreshold: 0.85,
  nodes: [
    { name: 'a', ready: true, docker: { up: true }, logDisk: { path: '/app/log', sizeBytes: 100, freeBytes: 50 } },
    { name: 'b', ready: true, docker: { up: true } },
    { name: 'c', ready: true },
  ],
  ...over,
});

describe('cluster health code', () => {
  it('codes are distinct and priorities total', () => {
    const codes = Object.values(HEALTH_CODES).map((c) => c.code);
    assert.equal(new Set(codes).size, codes.length);
    const prios = Object.values(HEALTH_CODES).map((c) => c.priority);
    assert.equal(new Set(prios).size, prios.length);
  });

  it('healthy is 0 with no problems', () => {
    const r = evaluateHealth(base());
    assert.deepEqual([r.code, r.text, r.problems], [0, 'healthy', []]);
  });

  it('the highest-priority problem wins and every problem is listed, highest first', () => {
    const r = evaluateHealth(base({
      nodes: [
        { name: 'a', ready: true, docker: { up: false, error: 'timeout' }, logDisk: { path: '/app/log', sizeBytes: 100, freeBytes: 5 } },
        { name: 'b', ready: false },
        { name: 'c', ready: true },
      ],
      monitoring: [{ kind: 'Prometheus', url: 'http://p', ok: false, error: 'refused' }],
    }));
    assert.equal(r.code, 4);
    assert.deepEqual(r.problems.map((p) => p.check), ['node', 'docker', 'disk', 'monitoring']);
    assert.equal(evaluateHealth(base({ store: { ok: false, error: 'x' }, nodes: [] })).code, 3);
    assert.equal(evaluateHealth(base({ leader: undefined })).code, 3);
  });

  it('half or more of the nodes lost at once is the network, one lost node is a node problem', () => {
    const lost = (n: number) => base({ nodes: ['a', 'b', 'c', 'd'].map((name, i) => ({ name, ready: i >= n })) });
    assert.equal(evaluateHealth(lost(1)).code, 4);
    assert.equal(evaluateHealth(lost(2)).code, 2);
    assert.equal(evaluateHealth(lost(2)).problems.length, 1);
  });

  it('a lost node\'s stale Docker and disk reports do not count', () => {
    const r = evaluateHealth(base({ nodes: [{ name: 'a', ready: false, docker: { up: false }, logDisk: { path: '/l', sizeBytes: 10, freeBytes: 0 } }, { name: 'b', ready: true }, { name: 'c', ready: true }] }));
    assert.deepEqual(r.problems.map((p) => p.check), ['node']);
  });

  it('influx and prometheus formats', () => {
    const r = evaluateHealth(base({ nodes: [{ name: 'a', ready: true, docker: { up: false } }] }));
    assert.equal(toInflux(r), 'kiver_health code=5i,problems=1i,text="Docker problem"\n');
    assert.match(toPrometheus(r), /^kiver_health_code 5$/m);
    assert.match(toPrometheus(r), /^kiver_health_problems\{check="docker"\} 1$/m);
  });
});
