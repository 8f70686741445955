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
import type { ServiceView } from '../../src/model/service.js';
import type { ServiceRoles } from '../../src/model/service-roles.js';
import { until } from './kiver.js';

/** GET /v1/services/NAME/endpoints. */
export interface EndpointsView {
  write: { host: string; port: number };
  read: { host: string; port: number };
  primary?: { ordinal: number; host: string; port: number };
  replicas: { ordinal: number; node: string; host: string; port: number; role: string }[];
}

/** A primary and `n` replicas following it with a working link. */
export const inSync = (n: number) => (r: ServiceRoles) => r.replicas.filter((x) => x.role === 'replica' && !x.error).length === n;

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

  service(name: string): Promise<ServiceView> {
    return this.admin.get<ServiceView>(`/v1/services/${name}`);
  }

  endpoints(name: string): Promise<EndpointsView> {
    return this.admin.get<EndpointsView>(`/v1/services/${name}/endpoints`);
  }

  /** Polls until the service's roles are `ready` and match `pred`. */
  whenReady(name: string, pred: (r: ServiceRoles) => boolean, what: string, ms = 120_000): Promise<ServiceView> {
    return until(what, async () => {
      const s = await this.service(name);
      return s.roles?.phase === 'ready' && pred(s.roles) ? s : false;
    }, ms, 250);
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
