/**
 * MariaDB's configuration template: mariadbd options built from validated
 * parameters only (integers and enum values), so nothing user-typed reaches the shell.
 */
import type { ParamDefs, ParamValue } from '../params.js';

export const MYSQL_PORT = 3306;

export const MYSQL_PARAMS: ParamDefs = {
  max_connections: { kind: 'integer', min: 10, max: 10000, default: 151, description: 'client connections at most' },
  innodb_buffer_pool_size_mb: { kind: 'integer', min: 16, max: 1024 * 1024, default: 128, unit: 'MiB', description: 'InnoDB buffer pool' },
  semi_sync_timeout_s: {
    kind: 'integer', min: 1, max: 2_000_000, default: 2_000_000, unit: 's',
    description: 'how long a commit waits for a replica before the primary gives up on semi-sync (the default ~23 days: it blocks rather than acknowledge alone)',
  },
  long_query_time_s: { kind: 'integer', min: 0, max: 3600, default: 10, unit: 's', description: 'slow query log threshold' },
};

/** The mariadbd options for one replica; the server id comes from KIVER_ORDINAL inside the container. */
export function mariadbArgs(p: Record<string, ParamValue>, syncReplicas: number): string[] {
  return [
    '--log-bin=mysql-bin', '--relay-log=relay-bin', '--binlog-format=ROW', '--log-slave-updates=ON',
    '--sync-binlog=1', '--innodb-flush-log-at-trx-commit=1', '--gtid-strict-mode=ON', '--skip-name-resolve',
    // Every server starts read-only: a restarted old primary cannot take a write before the controller decides.
    '--read-only=ON',
    // A crashed primary restarted as a semi-sync slave truncates binlog transactions no replica acknowledged
    // (MariaDB 10.6+, MDEV-21117), so it can rejoin the new primary without diverging.
    '--rpl-semi-sync-slave-enabled=ON', '--rpl-semi-sync-master-enabled=OFF',
    '--rpl-semi-sync-master-wait-point=AFTER_SYNC', `--rpl-semi-sync-master-wait-no-slave=${syncReplicas > 0 ? 'ON' : 'OFF'}`,
    `--rpl-semi-sync-master-timeout=${Number(p.semi_sync_timeout_s) * 1000}`,
    `--max-connections=${Number(p.max_connections)}`, `--innodb-buffer-pool-size=${Number(p.innodb_buffer_pool_size_mb)}M`,
    `--long-query-time=${Number(p.long_query_time_s)}`, '--slow-query-log=ON', '--slow-query-log-file=/log/slow.log',
    // Also the IO thread's connect timeout: STOP SLAVE during a failover waits out a connect to a dead host.
    '--log-error=/log/mariadb.err', '--slave-net-timeout=2',
  ];
}
