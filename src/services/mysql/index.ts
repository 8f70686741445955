/** The `mysql` catalog type: MariaDB 10.11, one primary and replicas, GTID + semi-sync replication. */
import { newPassword } from '../credentials.js';
import type { ServiceType } from '../types.js';
import { MYSQL_PARAMS, MYSQL_PORT, mariadbArgs } from './config.js';
import { mysqlHooks } from './hooks.js';

export const mysqlType: ServiceType = {
  name: 'mysql',
  description: 'MariaDB: a primary and replicas, GTID replication, semi-synchronous (an acknowledged commit is on a replica too)',
  version: '10.11',
  image: 'kiver/mariadb:latest',
  port: MYSQL_PORT,
  params: MYSQL_PARAMS,
  replicas: { min: 1, max: 9, default: 3 },
  memory: 512 * 1024 * 1024,
  newCredentials: () => ({ admin: newPassword(), app: newPassword(), replication: newPassword() }),
  template(params, credentials, replicas) {
    const args = mariadbArgs(params, replicas > 1 ? 1 : 0);
    return {
      image: 'kiver/mariadb:latest',
      // Only the shell expands KIVER_ORDINAL; every other word is fixed or a validated number.
      // /log is the replica's log dir (root-owned on the host): mariadbd runs as mysql.
      command: ['/bin/sh', '-c', `chown mysql:mysql /log && exec /usr/local/bin/kiver-mariadb --server-id=$((KIVER_ORDINAL + 1)) ${args.join(' ')}`],
      // root@'%' gets the admin password on first start (the image's entrypoint); the rest the init hook creates.
      secretEnv: { MARIADB_ROOT_PASSWORD: credentials.admin },
      env: {},
    };
  },
  clientCredential: { user: 'app', passwordKey: 'app', database: 'app' },
  hooks: mysqlHooks,
};
