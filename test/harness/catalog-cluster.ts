/**
 * Managed-service tests on real nodes: N test hosts (network namespaces, each
 * with its own dockerd and `kiver agent`, see hosts.ts), the service images
 * copied into them, and one in-process Kiver server on their bridge (the role
 * controller probes the replicas there; the endpoint proxies listen there).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHosts, sweepStale, type TestHosts, type TestHost } from './hosts.js';
import { KiverServer } from '../../src/server/server.js';
import { ApiClient } from '../../src/client/api-client.js';
import { createLogger } from '../../src/log.js';
import type { RoleControllerOptions } from '../../src/services/role-controller.js';

export class CatalogCluster {
  private constructor(readonly run: TestHosts, readonly server: KiverServer, readonly admin: ApiClient, private readonly dir: string) {}

  static async start(opts: { hosts?: number; images: string[]; graceSeconds?: number; roles?: RoleControllerOptions }): Promise<CatalogCluster> {
    await sweepStale();
    const run = await createHosts(opts.hosts ?? 3, { images: opts.images });
    const dir = await mkdtemp(join(tmpdir(), 'kiver-catalog-'));
    try {
      const server = await KiverServer.start({
        dataDir: dir, listen: `${run.bridgeIp}:0`, log: createLogger('test', process.env.KIVER_TEST_LOG ?? 'silent'),
        nodeLeaseTtl: opts.graceSeconds ?? 5, roles: opts.roles,
      });
      const admin = new ApiClient({ servers: [server.url], token: server.tokens.admin });
      const c = new CatalogCluster(run, server, admin, dir);
      for (const h of run.hosts) await h.startAgent({ servers: server.url, token: server.tokens.join, args: ['--no-docker-watchdog', '--no-guard'] });
      return c;
    } catch (err) {
      await run.destroy().catch(() => {});
      await rm(dir, { recursive: true, force: true });
      throw err;
    }
  }

  host(node: string): TestHost {
    return this.run.host(node);
  }

  async cleanup(): Promise<void> {
    await this.server.close().catch(() => {});
    await this.run.destroy().catch(() => {});
    await rm(this.dir, { recursive: true, force: true });
  }
}
