import type { Command } from 'commander';
import { clientFromEnv } from './config.js';
import { age, formatBytes, print, table } from './output.js';
import type { NodeView } from '../model/node.js';
import type { KiverEvent } from '../model/event.js';

function nodeTable(ns: NodeView[]): string {
  return table(
    ns.map((n) => [
      n.name, n.ready ? (n.cordoned ? 'Ready,Cordoned' : 'Ready') : 'NotReady', n.address,
      `${n.alloc.cpuMilli / 1000}/${n.cpus}`, `${formatBytes(n.alloc.memory)}/${formatBytes(n.memory)}`,
      n.alloc.replicas.length, n.dockerVersion ?? '-', age(n.registeredAt),
    ]),
    ['NAME', 'STATUS', 'ADDRESS', 'CPU', 'MEMORY', 'REPLICAS', 'DOCKER', 'AGE'],
  );
}

export function registerNode(program: Command): void {
  const node = program.command('node').description('inspect and manage nodes');
  node.command('ls').alias('list').description('list nodes').action(async (_o, cmd: Command) => {
    const ns = await clientFromEnv().get<NodeView[]>('/v1/nodes');
    print(cmd, ns, () => nodeTable(ns));
  });
  node.command('get <name>').description('show a node').action(async (name: string, _o, cmd: Command) => {
    const n = await clientFromEnv().get<NodeView>(`/v1/nodes/${encodeURIComponent(name)}`);
    print(cmd, n, () => `${nodeTable([n])}\n\nReplicas: ${n.alloc.replicas.join(', ') || '-'}\nExclusive cores: ${n.alloc.exclusiveCores.join(',') || '-'}`);
  });
  for (const verb of ['cordon', 'uncordon'] as const) {
    node.command(`${verb} <name>`)
      .description(verb === 'cordon' ? 'stop placing new replicas on a node' : 'allow placements on a node again')
      .action(async (name: string, _o, cmd: Command) => {
        const n = await clientFromEnv().post<NodeView>(`/v1/nodes/${encodeURIComponent(name)}/${verb}`);
        print(cmd, n, () => `node ${name} ${verb}ed`);
      });
  }
}

export function registerEvents(program: Command): void {
  program.command('events')
    .description('recent events: why a replica is pending or failing')
    .option('--object <kind/name>', 'only events about this object, e.g. service/redis')
    .option('--limit <n>', 'at most this many', '50')
    .action(async (o, cmd: Command) => {
      const q = new URLSearchParams({ limit: o.limit });
      if (o.object) q.set('object', o.object);
      const evs = await clientFromEnv().get<KiverEvent[]>(`/v1/events?${q}`);
      print(cmd, evs, () => table(evs.map((e) => [age(e.lastAt), e.type, e.reason, e.object, e.count, e.message]), ['AGE', 'TYPE', 'REASON', 'OBJECT', 'COUNT', 'MESSAGE']));
    });
}
