import type { Command } from 'commander';
import { clientFromEnv } from './config.js';
import { parseDuration } from './flags.js';
import { age, formatBytes, print, printErr, table } from './output.js';
import type { NodeView } from '../model/node.js';
import type { KiverEvent } from '../model/event.js';
import type { ReplicaView } from '../model/replica.js';
import type { ServiceView } from '../model/service.js';
import { InputError, UnavailableError } from '../errors.js';
import type { ApiClient } from '../client/api-client.js';

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

export function registerNode(program: Command): Command {
  const node = program.command('node').description('inspect and manage nodes');
  node.command('ls').alias('list').description('list nodes').action(async (_o, cmd: Command) => {
    const ns = await clientFromEnv().get<NodeView[]>('/v1/nodes');
    print(cmd, ns, () => nodeTable(ns));
  });
  node.command('get <name>').description('show a node').action(async (name: string, _o, cmd: Command) => {
    const n = await clientFromEnv().get<NodeView>(`/v1/nodes/${encodeURIComponent(name)}`);
    print(cmd, n, () => `${nodeTable([n])}\n\nReplicas: ${n.alloc.replicas.join(', ') || '-'}\nExclusive cores: ${n.alloc.exclusiveCores.join(',') || '-'}`);
  });
  registerDrain(node);
  node.command('rekey <name>')
    .description("revoke a node's credential: its agent gets 401; the node's next join with the join token gets a new one")
    .action(async (name: string, _o, cmd: Command) => {
      const r = await clientFromEnv().post<{ node: string }>(`/v1/nodes/${encodeURIComponent(name)}/rekey`);
      print(cmd, r, () => `node ${name} rekeyed: remove its credential file and restart its agent with the join token`);
    });
  node.command('rm <name>')
    .description('remove a node from the cluster (refused while replicas are placed there)')
    .option('--force', 'remove it anyway: its replicas are placed elsewhere')
    .action(async (name: string, o, cmd: Command) => {
      const r = await clientFromEnv().delete<{ node: string; replicas: number }>(`/v1/nodes/${encodeURIComponent(name)}${o.force ? '?force=true' : ''}`);
      print(cmd, r, () => `node ${name} removed${r.replicas ? ` (${r.replicas} replica(s) to be placed elsewhere)` : ''}`);
    });
  for (const verb of ['cordon', 'uncordon'] as const) {
    node.command(`${verb} <name>`)
      .description(verb === 'cordon' ? 'stop placing new replicas on a node' : 'allow placements on a node again')
      .action(async (name: string, _o, cmd: Command) => {
        const n = await clientFromEnv().post<NodeView>(`/v1/nodes/${encodeURIComponent(name)}/${verb}`);
        print(cmd, n, () => `node ${name} ${verb}ed`);
      });
  }
  return node;
}

function registerDrain(node: Command): void {
  node.command('drain <name>')
    .description('cordon a node and move its replicas off, never more than one replica of a service down at a time')
    .option('--deadline <duration>', 'after this, move the rest at once', '1h')
    .option('--detach', 'return at once instead of following progress')
    .option('--timeout <duration>', 'give up following after this', '30m')
    .action(async (name: string, o, cmd: Command) => {
      const client = clientFromEnv();
      const deadlineSeconds = parseDuration(o.deadline, 'deadline');
      const n = await client.post<NodeView>(`/v1/nodes/${encodeURIComponent(name)}/drain`, { deadlineSeconds });
      if (o.detach) return print(cmd, n, () => `node ${name} draining`);
      const r = await followDrain(client, name, parseDuration(o.timeout, 'timeout') * 1000, printErr);
      print(cmd, r, () => (r.remaining.length ? `node ${name} drained except ${r.remaining.length} replica(s) that own local data` : `node ${name} drained`));
    });
}

/**
 * Follows a drain until only replicas that own local data are left on the node
 * (a service-level failover moves those). Prints each change of progress.
 */
export async function followDrain(client: ApiClient, name: string, timeoutMs: number, onLine: (l: string) => void): Promise<{ node: string; remaining: string[] }> {
  const until = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    const reps = await client.get<ReplicaView[]>(`/v1/replicas?node=${encodeURIComponent(name)}`);
    const left = reps.filter((r) => r.desired === 'run');
    const line = `${name}: ${left.length} replica(s) left${left.length ? ` (${left.map((r) => r.id).join(', ')})` : ''}`;
    if (line !== last) onLine(line);
    last = line;
    const local = new Set((await client.get<ServiceView[]>('/v1/services')).filter((s) => s.spec.localData).map((s) => s.name));
    if (left.every((r) => local.has(r.service))) return { node: name, remaining: left.map((r) => r.id) };
    if (Date.now() > until) throw new UnavailableError(`drain of ${name} still running: ${left.length} replica(s) left`);
    await new Promise((r) => setTimeout(r, 500));
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
