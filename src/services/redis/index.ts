/** The `redis` catalog type: Redis 7, a primary and replicas, AOF on, a generated password. */
import { newPassword } from '../credentials.js';
import type { ServiceType } from '../types.js';
import { REDIS_PARAMS, REDIS_PORT, redisArgs } from './config.js';
import { redisHooks } from './hooks.js';

export const redisType: ServiceType = {
  name: 'redis',
  description: 'Redis: a primary and replicas (asynchronous; a write confirmed by WAIT 1 survives a failover), AOF, a password',
  version: '7.0',
  image: 'kiver/redis:latest',
  port: REDIS_PORT,
  params: REDIS_PARAMS,
  replicas: { min: 1, max: 9, default: 3 },
  memory: 256 * 1024 * 1024,
  newCredentials: () => ({ password: newPassword() }),
  template(params, credentials, replicas) {
    const args = redisArgs(params, replicas > 1 ? 1 : 0);
    return {
      image: 'kiver/redis:latest',
      // The password goes through a 0600 file, not the argument list (ps would show it).
      command: ['/bin/sh', '-c',
        'umask 077 && printf \'requirepass "%s"\\nmasterauth "%s"\\n\' "$KIVER_REDIS_PASSWORD" "$KIVER_REDIS_PASSWORD" > /tmp/kiver-auth.conf && ' +
        `exec redis-server /tmp/kiver-auth.conf ${args.join(' ')}`],
      secretEnv: { KIVER_REDIS_PASSWORD: credentials.password },
      env: {},
    };
  },
  clientCredential: { user: 'default', passwordKey: 'password' },
  hooks: redisHooks,
};
