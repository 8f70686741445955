/** Read models the API returns: services with their replicas' status merged in. */
import type { Store } from '../store/store.js';
import { K } from '../model/keys.js';
import { listJson } from '../store/json.js';
import type { Service, ServiceView } from '../model/service.js';
import { isNodeReady } from '../model/node.js';
import { maskEnv } from '../secrets.js';
import { isCurrentStatus, type Replica, type ReplicaStatus, type ReplicaView } from '../model/replica.js';

export function replicaView(r: Replica, st: ReplicaStatus | undefined, nodeReady = true, localData = false): ReplicaView {
  // A status about another incarnation or an older generation says nothing about this one.
  const current = isCurrentStatus(r, st) ? st : undefined;
  const view: ReplicaView = {
    id: `${r.service}/${r.ordinal}`,
    service: r.service,
    ordinal: r.ordinal,
    uid: r.uid,
    node: r.node,
    generation: r.generation,
    desired: r.desired,
    state: r.node === '' ? 'pending' : current?.state ?? 'creating',
    restartCount: current?.restartCount ?? 0,
    ports: r.spec.ports,
  };
  if (r.spec.network) Object.assign(view, { ip: r.spec.network.ip, pool: r.spec.network.pool });
  if (r.node !== '' && !nodeReady && r.desired === 'run') {
    view.state = 'unknown';
    view.lastError = localData
      ? `node ${r.node} is not ready; the replica owns local data and stays bound to it until a service-level failover`
      : `node ${r.node} is not ready; rescheduling`;
    return view;
  }
  if (current?.containerId) view.containerId = current.containerId;
  if (current?.startedAt) view.startedAt = current.startedAt;
  const err = r.node === '' ? r.pendingReason : current?.lastError;
  if (err) view.lastError = err;
  if (r.spec.cpuset) view.cpuset = r.spec.cpuset;
  return view;
}

export async function replicaViews(store: Store, service?: string): Promise<ReplicaView[]> {
  const [reps, stats, alive, services] = await Promise.all([
    listJson<Replica>(store, service ? K.replicasOf(service) : K.replicas),
    store.list(service ? K.statusesOf(service) : K.statuses),
    store.list(K.alives),
    listJson<Service>(store, service ? K.service(service) : K.services),
  ]);
  const alives = new Map(alive.kvs.map((kv) => [kv.key.slice(K.alives.length), kv]));
  const local = new Set(services.filter((s) => s.spec.localData).map((s) => s.spec.name));
  // Status keys mirror replica keys: /kiver/replica-status/<service>/<ordinal>.
  const byId = new Map<string, ReplicaStatus>();
  for (const kv of stats.kvs) byId.set(kv.key.slice(K.statuses.length), JSON.parse(kv.value) as ReplicaStatus);
  return reps
    .map((r) => replicaView(r, byId.get(`${r.service}/${r.ordinal}`), r.node === '' || isNodeReady(alives.get(r.node)), local.has(r.service)))
    .sort((a, b) => (a.service === b.service ? a.ordinal - b.ordinal : a.service < b.service ? -1 : 1));
}

export function serviceView(svc: Service, replicas: ReplicaView[]): ServiceView {
  const active = replicas.filter((r) => r.desired === 'run');
  return {
    name: svc.spec.name,
    uid: svc.uid,
    generation: svc.generation,
    createdAt: svc.createdAt,
    updatedAt: svc.updatedAt,
    deleting: Boolean(svc.deleting),
    spec: { ...svc.spec, secretEnv: maskEnv(svc.spec.secretEnv) },
    status: {
      desired: svc.deleting ? 0 : svc.spec.replicas,
      running: active.filter((r) => r.state === 'running').length,
      pending: active.filter((r) => r.state === 'pending').length,
      updated: active.filter((r) => r.generation === svc.generation && r.state === 'running').length,
      restarts: replicas.reduce((n, r) => n + r.restartCount, 0),
    },
    replicas,
  };
}
