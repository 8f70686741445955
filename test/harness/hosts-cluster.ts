/**
 * The usual setup of a node-loss test: N test hosts, one in-process Kiver server on their
 * bridge, and a real `kiver agent` (Docker watchdog off: such tests kill dockerd on purpose)
 * on every host. close() tears all of it down.
 */
import { after, before } from 'node:test';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHosts, sweepStale, type TestHosts } from './hosts.js';
import { KiverServer } from '../../src/server/server.js';
import { ApiClient } from '../../src/client/api-client.js';
import { createLogger } from '../../src/log.js';
import type { ServiceView } from '../../src/model/service.js';

export interface HostsCluster {
  run: TestHosts;
  server: KiverServer;
  admin: ApiClient;
  svc(name: string): Promise<ServiceView>;
  close(): Promise<void>;
}

export async function hostsCluster(n: number, opts: { graceSeconds: number }): Promise<HostsCluster> {
  await sweepStale();
  const run = await createHosts(n);
  const dir = await mkdtemp(join(tmpdir(), 'kiver-hosts-'));
  const server = await KiverServer.start({ dataDir: dir, listen: `${run.bridgeIp}:0`, log: createLogger('test', 'silent'), nodeLeaseTtl: opts.graceSeconds });
  const admin = new ApiClient({ servers: [server.url], token: server.tokens.admin });
  for (const h of run.hosts) await h.startAgent({ servers: server.url, token: server.tokens.join, args: ['--no-docker-watchdog'] });
  return {
    run, server, admin,
    svc: (name) => admin.get<ServiceView>(`/v1/services/${name}`),
    close: async () => {
      await run.destroy();
      await server.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** hostsCluster() set up before the suite and torn down after it; fields are set once `before` ran. */
export function useHostsCluster(n: number, opts: { graceSeconds: number }): HostsCluster {
  const c = {} as HostsCluster;
  before(async () => { Object.assign(c, await hostsCluster(n, opts)); });
  after(async () => { await c.close?.(); });
  return c;
}
