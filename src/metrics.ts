/** Kiver's own Prometheus metrics, on one registry served at /metrics. */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { createServer, type Server } from 'node:http';

export const registry = new Registry();
collectDefaultMetrics({ register: registry, prefix: 'kiver_process_' });
// prom-client exports these gauges with a counter's _total suffix, which `promtool check metrics` rejects.
for (const n of ['active_handles_total', 'active_requests_total', 'active_resources_total']) registry.removeSingleMetric(`kiver_process_nodejs_${n}`);

export const metrics = {
  apiRequests: new Counter({
    name: 'kiver_api_requests_total', help: 'API requests by route and status code',
    labelNames: ['method', 'route', 'code'], registers: [registry],
  }),
  placements: new Counter({
    name: 'kiver_scheduler_placements_total', help: 'Replica placements committed', registers: [registry],
  }),
  placementFailures: new Counter({
    name: 'kiver_scheduler_unschedulable_total', help: 'Placement attempts that found no fitting node', registers: [registry],
  }),
  commitConflicts: new Counter({
    name: 'kiver_scheduler_commit_conflicts_total', help: 'Placement commits that lost a compare-and-swap and re-planned', registers: [registry],
  }),
  apiSeconds: new Histogram({
    name: 'kiver_api_request_duration_seconds', help: 'API request latency by route and status code',
    labelNames: ['method', 'route', 'code'], registers: [registry],
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30],
  }),
  placementSeconds: new Histogram({
    name: 'kiver_scheduler_placement_seconds', help: 'Time the scheduler takes to place one replica', registers: [registry],
    buckets: [0.00005, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1],
  }),
  storeOps: new Counter({
    name: 'kiver_store_operations_total', help: 'Store operations by kind', labelNames: ['op'], registers: [registry],
  }),
  storeErrors: new Counter({
    name: 'kiver_store_errors_total', help: 'Store operations that failed (not counting not-found)', labelNames: ['op'], registers: [registry],
  }),
  storeSeconds: new Histogram({
    name: 'kiver_store_operation_seconds', help: 'Store operation latency', labelNames: ['op'], registers: [registry],
    buckets: [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
  }),
  leader: new Gauge({ name: 'kiver_leader', help: '1 while this server is the leader', registers: [registry] }),
  leaderTransitions: new Counter({
    name: 'kiver_leader_transitions_total', help: 'Times this server became leader (sum over servers = leader changes)', registers: [registry],
  }),
  heartbeats: new Counter({
    name: 'kiver_node_heartbeats_total', help: 'Agent heartbeats received, by node', labelNames: ['node'], registers: [registry],
  }),
  heartbeatFailures: new Counter({
    name: 'kiver_agent_heartbeat_failures_total', help: 'Heartbeats this agent could not deliver', registers: [registry],
  }),
  agentReconcileSeconds: new Histogram({
    name: 'kiver_agent_reconcile_seconds', help: 'Time of one agent reconcile pass', registers: [registry],
    buckets: [0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30],
  }),
  reconcileSeconds: new Histogram({
    name: 'kiver_controller_reconcile_seconds', help: 'Time to reconcile one service', registers: [registry],
    buckets: [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
  }),
  storeNoSpace: new Gauge({
    name: 'kiver_store_no_space', help: '1 while store writes fail because the disk is full', registers: [registry],
  }),
  storeNoSpaceErrors: new Counter({
    name: 'kiver_store_no_space_errors_total', help: 'Store writes refused for lack of disk space', registers: [registry],
  }),
  evictionBrake: new Gauge({
    name: 'kiver_eviction_brake', help: '1 while too many nodes are NotReady and no replica moves off lost nodes', registers: [registry],
  }),
  evictions: new Counter({
    name: 'kiver_evictions_total', help: 'Replicas moved off lost nodes', registers: [registry],
  }),
  nodesReady: new Gauge({ name: 'kiver_nodes_ready', help: 'Nodes with a live agent lease', registers: [registry] }),
  agentContainers: new Gauge({
    name: 'kiver_agent_containers', help: 'Containers this agent manages, by state', labelNames: ['state'], registers: [registry],
  }),
  agentReconciles: new Counter({
    name: 'kiver_agent_reconciles_total', help: 'Agent reconcile passes', registers: [registry],
  }),
  agentActions: new Counter({
    name: 'kiver_agent_actions_total', help: 'Container actions taken by the agent', labelNames: ['action'], registers: [registry],
  }),
};

/** Serves `reg` at http://host:port/metrics (a standalone agent's --metrics-listen); port 0 picks one. */
export async function serveMetrics(host: string, port: number, reg: Registry = registry): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => {
    if (req.method !== 'GET' || (req.url !== '/metrics' && !req.url?.startsWith('/metrics?'))) return void res.writeHead(404).end();
    reg.metrics()
      .then((text) => res.writeHead(200, { 'content-type': reg.contentType }).end(text))
      .catch((e: Error) => res.writeHead(500).end(e.message));
  });
  await new Promise<void>((ok, fail) => server.once('error', fail).listen(port, host, () => ok()));
  const addr = server.address();
  return { server, port: typeof addr === 'object' && addr ? addr.port : port };
}
