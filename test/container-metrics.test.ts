/**
 * Container metrics under cAdvisor's names on `kiver up`'s one /metrics (server and
 * agent in one process): a replica burning CPU shows a rising
 * container_cpu_usage_seconds_total that matches its cgroup file, with cAdvisor's
 * labels plus service/replica/node; `promtool check metrics` accepts the whole page.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { kiverUpForSuite, until } from './harness/kiver.js';
import type { ServiceView } from '../src/model/service.js';
import { parseProcCgroup } from '../src/agent/container-metrics.js';
import { sample } from './harness/prom-text.js';

/** CPU seconds from the container's cgroup file (v2 cpu.stat or v1 cpuacct.usage). */
function cgroupCpuSeconds(pid: number): number {
  const p = parseProcCgroup(readFileSync(`/proc/${pid}/cgroup`, 'utf8'))!;
  if (p.v2 !== undefined) {
    const root = readFileSync('/proc/self/mountinfo', 'utf8').includes(' /sys/fs/cgroup/unified ') ? '/sys/fs/cgroup/unified' : '/sys/fs/cgroup';
    return Number(/usage_usec (\d+)/.exec(readFileSync(`${root}${p.v2}/cpu.stat`, 'utf8'))![1]) / 1e6;
  }
  return Number(readFileSync(`/sys/fs/cgroup/cpuacct${p.v1.get('cpuacct')}/cpuacct.usage`, 'utf8')) / 1e9;
}

describe('container metrics (cAdvisor names) from the agent', () => {
  const up = kiverUpForSuite();

  const scrape = async () => (await fetch(`${up.k.url}/metrics`)).text();

  it('a container burning CPU: container_cpu_usage_seconds_total rises and matches its cgroup file', async () => {
    await up.k.client.post('/v1/services', { name: 'burn', image: 'kiver/busybox:latest', command: ['sh', '-c', 'while :; do :; done'], replicas: 1, cpu: 0.5, memory: 64 * 2 ** 20 });
    const svc = await until('burn running', async () => {
      const v = await up.k.client.get<ServiceView>('/v1/services/burn');
      return v.status.running === 1 ? v : false;
    }, 60_000);
    const containerId = svc.replicas[0].containerId!;
    const pid = (await up.k.docker.getContainer(containerId).inspect()).State.Pid;
    const want = { name: 'kiver-burn-0', service: 'burn', replica: 'burn/0', node: up.k.node, image: 'kiver/busybox:latest', cpu: 'total' };

    const first = await until('a cpu sample for burn/0', async () => sample(await scrape(), 'container_cpu_usage_seconds_total', want), 30_000);
    assert.match(first.labels.id, new RegExp(`${containerId}`), 'id is the cgroup path, as cAdvisor labels it');
    // It rises while the container burns.
    const later = await until('cpu usage to rise by 0.5 s', async () => {
      const s = sample(await scrape(), 'container_cpu_usage_seconds_total', want);
      return s && s.value > first.value + 0.5 ? s : false;
    }, 30_000, 250);
    assert.ok(later.value > first.value);
    // It matches the cgroup file: read before and after a scrape, the scraped value lies between.
    const before = cgroupCpuSeconds(pid);
    const text = await scrape();
    const after = cgroupCpuSeconds(pid);
    const v = sample(text, 'container_cpu_usage_seconds_total', want)!.value;
    assert.ok(v >= before - 1e-6 && v <= after + 1e-6, `scraped ${v} not within the cgroup readings [${before}, ${after}]`);

    // The other cAdvisor metrics are there with the same labels, and the spec matches the service.
    const { cpu: _cpu, ...base } = want;
    for (const name of ['container_memory_working_set_bytes', 'container_memory_usage_bytes', 'container_spec_cpu_shares', 'container_spec_cpu_period', 'container_spec_memory_limit_bytes', 'container_start_time_seconds']) {
      assert.ok(sample(text, name, base), `${name} for burn/0`);
    }
    assert.equal(sample(text, 'container_spec_memory_limit_bytes', base)!.value, 64 * 2 ** 20);
    assert.equal(sample(text, 'container_spec_cpu_shares', base)!.value, 512);
    assert.ok(sample(text, 'container_network_receive_bytes_total', { ...base, interface: 'eth0' }), 'network counters per interface');
    const started = sample(text, 'container_start_time_seconds', base)!.value;
    assert.ok(Math.abs(started - Date.now() / 1000) < 600, `start time ${started} is recent`);
  });

  it('server and agent metrics on one /metrics that promtool check metrics accepts', async () => {
    const text = await scrape();
    for (const name of ['kiver_api_request_duration_seconds_bucket', 'kiver_store_operations_total', 'kiver_leader', 'kiver_node_ready', 'kiver_replicas', 'kiver_agent_reconcile_seconds_bucket', 'container_cpu_usage_seconds_total', 'kiver_node_cpu_allocated_cores', 'kiver_cluster_cpu_capacity_cores']) {
      assert.match(text, new RegExp(`^${name}[{ ]`, 'm'), name);
    }
    assert.equal(sample(text, 'kiver_replicas', { service: 'burn', state: 'running' })?.value, 1);
    assert.equal(sample(text, 'kiver_node_cpu_allocated_cores', { node: up.k.node })?.value, 0.5);
    // promtool exits non-zero on any problem and names it.
    execFileSync('promtool', ['check', 'metrics'], { input: text, stdio: ['pipe', 'pipe', 'pipe'] });
  });

  it('a deleted container drops out of the metrics', async () => {
    await up.k.client.delete('/v1/services/burn');
    await until('burn/0 gone from /metrics', async () => !(await scrape()).includes('replica="burn/0"'), 60_000, 300);
  });
});
