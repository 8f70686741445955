import type {} from '@fastify/swagger';
import type { Store } from '../store/store.js';
import type { StoreCache } from '../controllers/cache.js';
import type { EventRecorder } from '../controllers/events.js';
import type { TokenAuth, Principal } from './auth.js';
import type { Logger } from '../log.js';
import type { PortPolicy } from '../model/service.js';
import type { SecretBox } from '../secrets.js';
import type { Provisioning } from '../machine/provisioning.js';
import type { HealthReport } from '../monitoring/health.js';
import type { StoreProbe } from '../store/probe.js';
import type { BackupJobs } from '../backup/jobs.js';

/** What route modules get; nothing else reaches them. */
export interface ApiContext {
  store: Store;
  cache: StoreCache;
  auth: TokenAuth;
  events: EventRecorder;
  log: Logger;
  secrets: SecretBox;
  /** Token id → the data-dir file holding it (admin, join), rewritten on rotation. */
  tokenFiles?: Record<string, string>;
  /** Host ports services may not take (Kiver's own) and whether ports below 1024 are allowed. */
  hostPorts?: PortPolicy;
  /** Lease TTL (s) for agent heartbeats. */
  nodeLeaseTtl: number;
  /** Bare-metal provisioning (machines, config center); routes are mounted when set. */
  machines?: Provisioning;
  /** Runs every health check now (GET /v1/health). */
  health: () => Promise<HealthReport>;
  /** Whether the store answers (for /readyz; agent routes answer 503 at once when it does not). */
  probe?: StoreProbe;
  /** Backups (targets, jobs, restores); routes answer 503 without it. */
  backups?: BackupJobs;
}

declare module 'fastify' {
  interface FastifyRequest {
    principal?: Principal;
  }
}
