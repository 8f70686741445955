/** Redis's configuration template: redis-server options from validated parameters only. */
import type { ParamDefs, ParamValue } from '../params.js';

export const REDIS_PORT = 6379;
/**
 * Where every Redis server points at start: nowhere. A restarted old primary thus comes
 * back as a replica with its link down — read-only, and it refuses to feed the other
 * replicas (NOMASTERLINK) — until the role controller decides what it is.
 */
export const PARKED = { host: '127.0.0.1', port: 1 } as const;

export const REDIS_PARAMS: ParamDefs = {
  maxmemory_mb: { kind: 'integer', min: 0, max: 1024 * 1024, default: 0, unit: 'MiB', description: 'memory for data (0 = no limit)' },
  maxmemory_policy: {
    kind: 'enum', default: 'noeviction',
    values: ['noeviction', 'allkeys-lru', 'allkeys-lfu', 'allkeys-random', 'volatile-lru', 'volatile-lfu', 'volatile-random', 'volatile-ttl'],
    description: 'what goes when maxmemory is reached',
  },
  appendfsync: { kind: 'enum', values: ['always', 'everysec', 'no'], default: 'everysec', description: 'AOF fsync policy' },
  min_replicas_max_lag_s: {
    kind: 'integer', min: 1, max: 60, default: 2, unit: 's',
    description: 'the primary refuses writes when no replica acknowledged within this many seconds',
  },
};

export function redisArgs(p: Record<string, ParamValue>, syncReplicas: number): string[] {
  return [
    '--port', String(REDIS_PORT), '--dir', '/data', '--protected-mode', 'no',
    '--appendonly', 'yes', '--appendfsync', String(p.appendfsync),
    '--replicaof', PARKED.host, String(PARKED.port), '--replica-read-only', 'yes', '--repl-diskless-sync', 'yes', '--repl-diskless-sync-delay', '0',
    '--min-replicas-to-write', String(syncReplicas), '--min-replicas-max-lag', String(p.min_replicas_max_lag_s),
    '--maxmemory', `${Number(p.maxmemory_mb)}mb`, '--maxmemory-policy', String(p.maxmemory_policy),
    '--logfile', '/log/redis.log',
  ];
}
