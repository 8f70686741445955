/**
 * The control plane in one object: store, cache, controllers, API.
 * `kiver server` runs this alone; `kiver up` runs it beside an agent.
 */
import type { FastifyInstance } from 'fastify';
import { basename, dirname, join } from 'node:path';
import { readSecretFile, writeSecretFile } from '../secret-file.js';
import type { Store } from '../store/store.js';
import { openStore } from '../store/open.js';
import { storeSpace } from '../store/no-space.js';
import { makeDataDirPrivate } from './data-dir.js';
import { StoreCache } from '../controllers/cache.js';
import { NodeIndex } from '../controllers/node-index.js';
import { ServiceController } from '../controllers/services.js';
import { Ipam } from '../ipam/allocator.js';
import type { Pool } from '../model/pool.js';
import { IpamReclaimer, addressSource } from '../ipam/reclaimer.js';
import { EventRecorder } from '../controllers/events.js';
import { NodeController } from '../controllers/nodes.js';
import { LeaderElection } from '../controllers/leader.js';
import { randomUUID } from 'node:crypto';
import { parseListen } from '../model/listen.js';
import { TokenAuth, bootstrapTokens, newToken, nodeCredentialId, type BootstrapTokens } from '../api/auth.js';
import { buildApi } from '../api/server.js';
import { createLogger, type Logger } from '../log.js';
import { InputError } from '../errors.js';
import { SecretBox, SERVICE_SECRET_KEY_FILE } from '../secrets.js';
import { Provisioning, type ProvisioningOptions } from '../machine/provisioning.js';
import { instrumentStore } from '../store/instrumented.js';
import { K } from '../model/keys.js';
import { checkHealth } from '../monitoring/health-check.js';
import { clusterMetrics, type ClusterSource } from '../monitoring/cluster-metrics.js';
import type { HealthReport } from '../monitoring/health.js';
import { StoreProbe } from '../store/probe.js';
import { BackupJobs } from '../backup/jobs.js';
import { BackupController, type BackupControllerOptions } from '../backup/controller.js';
import { backupMetrics } from '../backup/metrics.js';
import { RoleController, type RoleControllerOptions } from '../services/role-controller.js';
import { ServiceEndpoints } from '../services/endpoints.js';

export interface ServerOptions {
  dataDir: string;
  /** Store URL; default sqlite:<dataDir>/kiver.db. */
  store?: string;
  /** host:port for the API. Port 0 picks a free one. */
  listen: string;
  /** Seconds without a heartbeat before a node is NotReady (its lease TTL). */
  nodeLeaseTtl?: number;
  /** Key file for service secrets; servers of one cluster must share it. Default <dataDir>/service-secrets.key. */
  secretKeyFile?: string;
  /** Let services publish host ports below 1024. */
  allowLowHostPorts?: boolean;
  /** Leader lease TTL in seconds (default 2: a dead leader is replaced within ~2.5 s). */
  leaderTtl?: number;
  /** How often the leader renews its lease, ms (default TTL/8). */
  leaderRenewMs?: number;
  /** Bare-metal provisioning: TFTP root, the URL machines use, reaper interval/max age, OS profiles, BMC options. */
  machines?: ProvisioningOptions;
  /** A log partition fuller than this fraction is a disk problem in `kiver health` (default 0.85). */
  diskThreshold?: number;
  /** How often the health code on /metrics (kiver_health_code) is refreshed, ms (default 15 s). */
  healthIntervalMs?: number;
  /** Backup schedules' clock and tick (tests), stale-job timeout. */
  backups?: BackupControllerOptions;
  /** Managed services (src/services/): probe period and failover threshold of the role controller. */
  roles?: RoleControllerOptions;
  log?: Logger;
  /** How often the leader reclaims addresses whose owner is gone (default 5 s). */
  ipamReclaimMs?: number;
}

export class KiverServer {
  private constructor(
    readonly store: Store,
    readonly cache: StoreCache,
    readonly controller: ServiceController,
    private readonly nodeController: NodeController,
    private readonly app: FastifyInstance,
    readonly tokens: BootstrapTokens,
    readonly url: string,
    private readonly events: EventRecorder,
    private readonly pruneTimer: NodeJS.Timeout,
    readonly election: LeaderElection,
    readonly machines: Provisioning,
    private readonly monitor: ServerMonitor,
    private readonly probe: StoreProbe,
    readonly auth: TokenAuth,
    readonly backups: BackupController,
    readonly roles: RoleController,
    private readonly endpoints: ServiceEndpoints,
  ) {}

  static async start(opts: ServerOptions): Promise<KiverServer> {
    const log = opts.log ?? createLogger('kiver-server');
    storeSpace.log = log;
    const { host, port } = parseListen(opts.listen);
    await makeDataDirPrivate(opts.dataDir, log);
    const store = instrumentStore(await openStore(opts.store ?? `sqlite:${join(opts.dataDir, 'kiver.db')}`));
    await makeDataDirPrivate(opts.dataDir); // SQLite's -wal and -shm files are created by open() with the umask's mode
    const auth = new TokenAuth(store);
    const tokens = await bootstrapTokens(auth, opts.dataDir);
    const cache = new StoreCache(store);
    cache.on('warning', (msg: string) => log.warn(msg));
    await cache.start();
    auth.useCache(cache);
    const events = new EventRecorder(store, log);
    const nodes = new NodeIndex(cache);
    // Placeholder until the URL is known; the election reads it when it campaigns.
    const me = { id: randomUUID(), url: '' };
    const election = new LeaderElection(store, me, log, { ttlSeconds: opts.leaderTtl ?? 2, renewMs: opts.leaderRenewMs });
    const probe = new StoreProbe(store, K.leader);
    probe.start();
    const nodeLeaseTtl = opts.nodeLeaseTtl ?? 30;
    // The brake settles for one node grace: nodes that were only cut off heartbeat again within it.
    const controller = new ServiceController(store, cache, nodes, events, log, 32, () => election.fence(), { settleMs: nodeLeaseTtl * 1000 });
    const nodeController = new NodeController(cache, nodes, events);
    const ipam = new Ipam(store, () => election.fence(), 16, () => [...cache.all(K.pools)].map((kv) => ({ pool: JSON.parse(kv.value) as Pool, modRevision: kv.modRevision })));
    controller.addresses = addressSource(ipam);
    const reclaimer = new IpamReclaimer(store, events, log, () => election.fence(), ipam, opts.ipamReclaimMs);
    const secrets = opts.secretKeyFile
      ? await SecretBox.loadOrCreate(dirname(opts.secretKeyFile), basename(opts.secretKeyFile))
      : await SecretBox.loadOrCreate(opts.dataDir, SERVICE_SECRET_KEY_FILE);
    // BMC passwords are sealed with the same (cluster-shared) key, bound to machine/<name>/bmc.
    const machines = new Provisioning(store, secrets, log, opts.dataDir, opts.machines);
    const diskThreshold = opts.diskThreshold ?? 0.85;
    const health = () => checkHealth(store, cache, diskThreshold);
    const tokenFiles = { admin: tokens.adminTokenFile, join: tokens.joinTokenFile };
    const hostPorts = { reserved: [] as number[], allowLow: opts.allowLowHostPorts === true };
    const backups = new BackupJobs(store, cache, secrets, events, log, opts.backups?.now);
    const backupController = new BackupController(cache, backups, log, () => election.fence(), opts.backups);
    backupMetrics.add(cache);
    const app = await buildApi({ store, cache, auth, events, log, secrets, tokenFiles, hostPorts, nodeLeaseTtl, machines, health, probe, backups });
    await app.listen({ host, port });
    const addr = app.server.address();
    const actualPort = typeof addr === 'object' && addr ? addr.port : port;
    hostPorts.reserved.push(actualPort); // a replica publishing the API's port would take it on a `kiver up` node
    const url = `http://${host.includes(':') ? `[${host}]` : host}:${actualPort}`;
    me.url = url;
    machines.setServerUrl(url);
    // Only the leader runs controllers; every server serves the API.
    // Leading can pause and resume quickly (see leader.ts): one start/stop at a time, in order.
    let transition = Promise.resolve();
    const serially = (fn: () => void | Promise<void>) => {
      transition = transition.then(fn).catch((err) => log.warn({ err: (err as Error).message }, 'controller start/stop failed'));
    };
    const roles = new RoleController(store, cache, events, secrets, log, () => election.fence(), opts.roles);
    // Every server serves the managed services' endpoints on its own host (see services/endpoints.ts).
    const endpoints = new ServiceEndpoints(cache, host, log);
    endpoints.start();
    election.on('elected', () => serially(() => {
      if (!election.isLeader) return;
      roles.start();
      controller.start();
      nodeController.start();
      machines.startReaper();
      backupController.start();
      reclaimer.start();
    }));
    election.on('deposed', () => serially(async () => {
      await roles.stop();
      nodeController.stop();
      machines.stopReaper();
      await backupController.stop();
      await reclaimer.stop();
      await controller.stop();
    }));
    await election.start();
    const pruneTimer = setInterval(() => election.isLeader && void events.prune(), 60_000).unref();
    const monitor = await ServerMonitor.start(store, cache, me, health, Math.max(opts.leaderTtl ?? 10, 10), opts.healthIntervalMs ?? 15_000);
    log.info({ url }, 'kiver server listening');
    return new KiverServer(store, cache, controller, nodeController, app, tokens, url, events, pruneTimer, election, machines, monitor, probe, auth, backupController, roles, endpoints);
  }

  /**
   * `kiver up`'s agent runs in this process: its node credential is issued here
   * directly (as an admin's rekey would), so an upgraded or restored `kiver up`
   * never needs the join token. Keeps a credential the file already holds.
   */
  async ensureNodeCredential(node: string, file: string): Promise<void> {
    const held = await readSecretFile(file);
    const p = held ? await this.auth.verify(held) : undefined;
    if (p?.role === 'node' && p.node === node) return;
    const token = newToken('node');
    await this.auth.add(nodeCredentialId(node), 'node', token, node);
    await writeSecretFile(file, token);
  }

  async close(): Promise<void> {
    clearInterval(this.pruneTimer);
    await this.monitor.stop();
    this.probe.stop();
    await this.election.stop();
    this.machines.stopReaper();
    await this.backups.stop();
    backupMetrics.remove(this.cache);
    this.nodeController.stop();
    await this.roles.stop();
    await this.endpoints.stop();
    await this.controller.stop();
    await this.app.close();
    await this.cache.stop();
    await this.store.close();
  }
}

/**
 * What a server does for monitoring: keeps its member key (where Prometheus finds it,
 * on a lease so a dead server drops out) and refreshes the health code on /metrics.
 */
class ServerMonitor implements ClusterSource {
  private lease = 0;
  private last?: HealthReport;
  private timers: NodeJS.Timeout[] = [];
  private checking = false;

  private constructor(private readonly store: Store, readonly cache: StoreCache, private readonly me: { id: string; url: string },
    private readonly check: () => Promise<HealthReport>, private readonly ttl: number) {}

  static async start(store: Store, cache: StoreCache, me: { id: string; url: string }, check: () => Promise<HealthReport>, ttl: number, everyMs: number): Promise<ServerMonitor> {
    const m = new ServerMonitor(store, cache, me, check, ttl);
    await m.register().catch(() => {});
    m.timers.push(setInterval(() => void m.keepAlive(), (ttl * 1000) / 3).unref());
    m.timers.push(setInterval(() => void m.refresh(), everyMs).unref());
    clusterMetrics.add(m);
    void m.refresh();
    return m;
  }

  health(): HealthReport | undefined {
    return this.last;
  }

  private async register(): Promise<void> {
    this.lease = await this.store.grantLease(this.ttl);
    await this.store.put(K.serverMember(this.me.id), JSON.stringify({ url: this.me.url, since: new Date().toISOString() }), { lease: this.lease });
  }

  private async keepAlive(): Promise<void> {
    try {
      await this.store.keepAlive(this.lease);
    } catch {
      await this.register().catch(() => {}); // expired (or the store is down: retried next tick)
    }
  }

  private async refresh(): Promise<void> {
    if (this.checking) return;
    this.checking = true;
    try {
      this.last = await this.check();
    } finally {
      this.checking = false;
    }
  }

  async stop(): Promise<void> {
    clusterMetrics.remove(this);
    for (const t of this.timers) clearInterval(t);
    await this.store.delete(K.serverMember(this.me.id)).catch(() => {});
    await this.store.revokeLease(this.lease).catch(() => {});
  }
}
