/** IPAM's metrics, on Kiver's one registry. */
import { Counter, Gauge } from 'prom-client';
import { registry } from '../metrics.js';

export const ipamMetrics = {
  allocations: new Counter({ name: 'kiver_ipam_allocations_total', help: 'Addresses bound to a replica identity', registers: [registry] }),
  exhausted: new Counter({ name: 'kiver_ipam_exhausted_total', help: 'Allocations that found every pool of the replica full', registers: [registry] }),
  reclaimed: new Counter({ name: 'kiver_ipam_reclaimed_total', help: 'Leaked addresses freed (owner gone past its grace, held by no node)', registers: [registry] }),
  conflicts: new Gauge({ name: 'kiver_ipam_conflicts', help: 'Addresses live on more than one node, or held without an allocation, at the last audit', registers: [registry] }),
};
