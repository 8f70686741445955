import type { ApiClient } from '../src/client/api-client.js';

/** Creates `count` services of `replicas` each, `parallel` requests in flight (one request per service). */
export async function submitServices(admin: ApiClient, prefix: string, count: number, replicas: number, parallel = 16): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: parallel }, async () => {
    while (next < count) {
      const i = next++;
      await admin.post('/v1/services', { name: `${prefix}-${i}`, image: 'nginx', replicas, cpu: 0.1, memory: 64 * 2 ** 20 });
    }
  }));
}
