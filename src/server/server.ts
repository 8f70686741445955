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
  /** Leader lease TTL in seconds. */
  leaderTtl?: number;
  /** Bare-metal provisioning: TFTP root, the URL machines use, reaper interval/max age, OS profiles, BMC options. */
  machines?: ProvisioningOptions;
  log?: Logger;
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
    readonly auth: TokenAuth,
  ) {}

  static async start(opts: ServerOptions): Promise<KiverServer> {
    const log = opts.log ?? createLogger('kiver-server');
    storeSpace.log = log;
    const { host, port } = parseListen(opts.listen);
    await makeDataDirPrivate(opts.dataDir, log);
    const store = await openStore(opts.store ?? `sqlite:${join(opts.dataDir, 'kiver.db')}`);
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
    const election = new LeaderElection(store, me, log, opts.leaderTtl ?? 10);
    const controller = new ServiceController(store, cache, nodes, events, log, 32, () => election.fence());
    const nodeController = new NodeController(cache, nodes, events);
    const secrets = opts.secretKeyFile
      ? await SecretBox.loadOrCreate(dirname(opts.secretKeyFile), basename(opts.secretKeyFile))
      : await SecretBox.loadOrCreate(opts.dataDir, SERVICE_SECRET_KEY_FILE);
    // BMC passwords are sealed with the same (cluster-shared) key, bound to machine/<name>/bmc.
    const machines = new Provisioning(store, secrets, log, opts.dataDir, opts.machines);
    const tokenFiles = { admin: tokens.adminTokenFile, join: tokens.joinTokenFile };
    const hostPorts = { reserved: [] as number[], allowLow: opts.allowLowHostPorts === true };
    const app = await buildApi({ store, cache, auth, events, log, secrets, tokenFiles, hostPorts, nodeLeaseTtl: opts.nodeLeaseTtl ?? 30, machines });
    await app.listen({ host, port });
    const addr = app.server.address();
    const actualPort = typeof addr === 'object' && addr ? addr.port : port;
    hostPorts.reserved.push(actualPort); // a replica publishing the API's port would take it on a `kiver up` node
    const url = `http://${host.includes(':') ? `[${host}]` : host}:${actualPort}`;
    me.url = url;
    machines.setServerUrl(url);
    // Only the leader runs controllers; every server serves the API.
    election.on('elected', () => {
      controller.start();
      nodeController.start();
      machines.startReaper();
    });
    election.on('deposed', () => {
      nodeController.stop();
      void controller.stop();
      machines.stopReaper();
    });
    await election.start();
    const pruneTimer = setInterval(() => election.isLeader && void events.prune(), 60_000).unref();
    log.info({ url }, 'kiver server listening');
    return new KiverServer(store, cache, controller, nodeController, app, tokens, url, events, pruneTimer, election, machines, auth);
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
    await this.election.stop();
    this.machines.stopReaper();
    this.nodeController.stop();
    await this.controller.stop();
    await this.app.close();
    await this.cache.stop();
    await this.store.close();
  }
}
