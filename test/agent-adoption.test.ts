/**
 * Adoption after a restart, on real Docker through the real `kiver up` process: after
 * kill -9 of Kiver, the restarted agent must adopt the running containers — same ids,
 * never restarted, no Started events — judged only after that agent has reconciled
 * and reported at least once (before that, the store still shows the old statuses).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { KiverProcess, until } from './harness/kiver.js';
import type { ServiceView } from '../src/model/service.js';
import type { KiverEvent } from '../src/model/event.js';

const IMAGE = 'kiver/busybox:latest';

/** The value of a Prometheus sample (0 when absent), e.g. kiver_agent_actions_total{action="create"}. */
async function metric(url: string, sample: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${sample} `));
  return line ? Number(line.slice(sample.length + 1)) : 0;
}

describe('agent adoption after kill -9 of Kiver', () => {
  let k: KiverProcess;

  before(async () => {
    k = await KiverProcess.create();
    const built = await k.cli('image', 'build', 'busybox');
    assert.equal(built.code, 0, built.stderr);
    await k.start();
  });
  after(async () => {
    await k?.cleanup();
  });

  it('the restarted agent keeps every container: same ids, not restarted, no Started events, nothing created', async () => {
    await k.client.post('/v1/services', { name: 'adopt', image: IMAGE, command: ['/bin/sh', '-c', 'exec sleep 100000'], replicas: 2, cpu: 0.1, memory: 32 * 2 ** 20 });
    const s = await until('adopt: 2 running', async () => {
      const v = await k.client.get<ServiceView>('/v1/services/adopt');
      return v.status.running === 2 && v.replicas.every((r) => r.containerId) ? v : false;
    }, 60_000);
    const ids = s.replicas.map((r) => r.containerId!).sort();
    const startedAt = new Map<string, string>();
    for (const id of ids) startedAt.set(id, (await k.docker.getContainer(id).inspect()).State.StartedAt);
    const startedEvents = async () => {
      const evs = await k.client.get<KiverEvent[]>('/v1/events?limit=1000');
      return evs.filter((e) => e.object.startsWith('replica/adopt/') && e.reason === 'Started').reduce((n, e) => n + e.count, 0);
    };
    const startsBefore = await startedEvents();
    assert.equal(startsBefore, 2);

    await k.kill('SIGKILL');
    await k.start();
    // Wait for a fresh report: the counter counts passes as they begin, and passes never
    // overlap, so a second pass means the first one (with its status report) is done.
    await until('the restarted agent has reconciled and reported', async () => (await metric(k.url, 'kiver_agent_reconciles_total')) >= 2, 60_000, 200);

    const containers = await k.docker.listContainers({ all: true, filters: { label: [`kiver.node=${k.node}`, 'kiver.service=adopt'] } });
    assert.deepEqual(containers.map((c) => c.Id).sort(), ids, 'the same containers, no others');
    for (const id of ids) {
      const info = await k.docker.getContainer(id).inspect();
      assert.equal(info.State.Running, true);
      assert.equal(info.State.StartedAt, startedAt.get(id), `${info.Name} was not restarted`);
    }
    const after_ = await k.client.get<ServiceView>('/v1/services/adopt');
    assert.deepEqual(after_.replicas.map((r) => r.containerId!).sort(), ids, 'status reports the adopted containers');
    assert.ok(after_.replicas.every((r) => r.state === 'running' && r.restartCount === 0), JSON.stringify(after_.replicas));
    assert.equal(await startedEvents(), startsBefore, 'no Started events after the restart');
    for (const action of ['create', 'replace', 'remove', 'start']) {
      assert.equal(await metric(k.url, `kiver_agent_actions_total{action="${action}"}`), 0, `the restarted agent took no ${action} action`);
    }
  });
});
