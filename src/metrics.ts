/** Kiver's own Prometheus metrics, on one registry served at /metrics. */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export const registry = new Registry();
collectDefaultMetrics({ register: registry, prefix: 'kiver_process_' });

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
  reconcileSeconds: new Histogram({
    name: 'kiver_controller_reconcile_seconds', help: 'Time to reconcile one service', registers: [registry],
    buckets: [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
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
