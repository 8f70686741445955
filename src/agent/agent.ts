/**
 * The node agent: joins with the join token, heartbeats on a lease, long-polls
 * its assignments and reconciles them through Docker, level-triggered: every
 * pass compares what is assigned with what runs and fixes the difference, so a
 * restarted agent adopts running containers by label instead of recreating them.
 */
import os from 'node:os';
import type Docker from 'dockerode';
import { ApiClient } from '../client/api-client.js';
import { NotFoundError } from '../errors.js';
import type { Logger } from '../log.js';
import { createLogger } from '../log.js';
import { START_FAILED, type Replica, type StatusItem } from '../model/replica.js';
import { containerName, replicaId } from '../model/names.js';
import { DockerRuntime, ImageMissingError, dockerFromEnv, type ContainerState } from './runtime/docker.js';
import { AddressReporter } from './addresses.js';
import { ensureDirs, purgeDirs, type Roots } from './volumes.js';
import { BackupWorker } from '../backup/worker.js';
import { statfs } from 'node:fs/promises';
import type { Server } from 'node:http';
import { metrics, registry, serveMetrics } from '../metrics.js';
import type { NodeHealthReport } from '../model/node.js';
import { containerMetrics, type ContainerSource, type TrackedContainer } from './container-metrics.js';
import { LogGuard } from '../guard/index.js';
import { ShipperKeeper } from './log-shipper.js';
import { buildImage } from '../image/build.js';
import { DockerWatchdog, LIVE_RESTORE_HELP, checkLiveRestore, type DockerWatchdogOptions } from './watchdog.js';
import { UnauthenticatedError, UnavailableError } from '../errors.js';
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { readSecretFile, writeSecretFile } from '../secret-file.js';

export interface AgentOptions extends Roots {
  servers: string[];
  /** The node credential's file (0600). Read when present; written after a join with joinToken. */
  credentialFile: string;
  /** Used only to join when credentialFile does not exist yet. */
  joinToken?: string;
  node: string;
  /** Address clients use to reach this node's published ports. */
  address: string;
  /** Node labels, matched by services' placement constraints. */
  labels?: Record<string, string>;
  docker?: Docker;
  log?: Logger;
  /** Full reconcile at least this often (ms). */
  resyncMs?: number;
  cpus?: number;
  memory?: number;
  /** The log guard: links every file under logRoot into this flat dir for the shipper; false = off. */
  guardOut?: string | false;
  /** The Docker watchdog (restart command, failures, interval); false = off. */
  dockerWatchdog?: Pick<DockerWatchdogOptions, 'restartCommand' | 'failuresBeforeRestart' | 'intervalMs'> | false;
  /** Start even when dockerd runs without live-restore (then only warn). */
  allowNoLiveRestore?: boolean;
  /** host:port to serve this agent's /metrics on (a standalone agent); under `kiver up` the server's /metrics carries them. */
  metricsListen?: { host: string; port: number };
  /** How often to check Docker and the log partition for the heartbeat's health report (ms). */
  healthIntervalMs?: number;
  /** The log shipper's settings file (kiver node init writes it): the agent keeps that container running. */
  shipperConfig?: string;
  /** How often to ask for backup/restore jobs on this node (ms, default 2000). */
  backupPollMs?: number;
}

/** What the agent reports per replica: its status plus which replica it is about. */

const CRASHLOOP_RESTARTS = 3;
const CRASHLOOP_WINDOW_MS = 60_000;
/** Containers of one incarnation Docker would not start before the replica is `failed`. */
export const START_ATTEMPTS = 3;
/** A container still in Docker's `Created` state this long after the agent first saw it is stuck. */
const CREATED_DEADLINE_MS = 30_000;

export class Agent implements ContainerSource {
  readonly runtime: DockerRuntime;
  /** The containers this agent runs, for the cAdvisor-named metrics (refreshed every reconcile). */
  private tracked: TrackedContainer[] = [];
  private client: ApiClient;
  /** Set after the server refused the node credential (401): logged once, until it works again. */
  private rejected = false;
  private readonly log: Logger;
  private running = false;
  private assignments: Replica[] | undefined;
  private index: string | undefined;
  private leaseTtl = 15;
  private reconciling = false;
  private again = false;
  private timers: NodeJS.Timeout[] = [];
  private dockerEvents?: { stop(): void };
  private readonly lastReported = new Map<string, string>();
  private readonly addresses: AddressReporter;
  private readonly restarts = new Map<string, { count: number; at: number }[]>();
  /**
   * Restarts Docker's own RestartCount no longer shows, per replica incarnation.
   * Docker's restart policy does not apply to a container stopped from outside
   * (`docker stop`, and `docker kill` on Docker 20.10): the agent starts it again,
   * and `docker start` resets RestartCount to 0, so the agent carries the count.
   */
  private readonly restartBase = new Map<string, number>();
  /** Per incarnation: containers Docker would not start, and the last reason. */
  private readonly startFailures = new Map<string, { count: number; lastError: string }>();
  /** Container id → when the agent first saw it in `Created` (performance.now()). */
  private readonly createdSince = new Map<string, number>();
  /**
   * The disconnect policy, on this process's monotonic clock: when the last heartbeat (or
   * register) that succeeded was sent; whether every server has been out of reach for a
   * node grace since (then `wait` replicas are held stopped); when contact came back and
   * when the assignments in hand were asked for — only assignments asked for after the
   * return may start a `wait` replica again (older ones may predate its move).
   */
  private lastContact = performance.now();
  private cutOff = false;
  private contactBackAt = 0;
  private assignmentsSentAt = 0;
  private pollCycle = new AbortController();
  private readonly loops: Promise<void>[] = [];
  private pollAbort = new AbortController();
  private guard?: LogGuard;
  private shipper?: ShipperKeeper;
  /** Backup and restore jobs on this node (src/backup/worker.ts). */
  private backups?: BackupWorker;
  private watchdog?: DockerWatchdog;
  private metricsServer?: Server;
  private metricsUrl?: string;
  private health?: NodeHealthReport;
  /** Resolves after the first full reconcile (tests and `kiver up` wait on it). */
  readonly firstSync: Promise<void>;
  private firstSyncDone!: () => void;

  constructor(private readonly opts: AgentOptions) {
    this.log = opts.log ?? createLogger('kiver-agent');
    this.runtime = new DockerRuntime(opts.docker ?? dockerFromEnv(), opts.node);
    this.client = new ApiClient({ servers: opts.servers, token: '' });
    this.addresses = new AddressReporter(() => this.client, opts.node);
    this.firstSync = new Promise((r) => (this.firstSyncDone = r));
  }

  async start(): Promise<void> {
    await this.runtime.ping();
    const liveRestore = await checkLiveRestore(this.runtime.docker);
    if (!liveRestore && !this.opts.allowNoLiveRestore) throw new UnavailableError(`refusing to start: ${LIVE_RESTORE_HELP}`);
    if (!liveRestore) this.log.warn(`WARNING: ${LIVE_RESTORE_HELP}`);
    if (this.opts.guardOut !== false) {
      this.guard = new LogGuard({
        root: this.opts.logRoot, out: this.opts.guardOut ?? `${this.opts.logRoot}/.shipper`, registry, logger: this.log.child({ component: 'guard' }),
      });
      await this.guard.start();
    }
    this.running = true;
    containerMetrics().addSource(this);
    if (this.opts.metricsListen) {
      const { host, port } = this.opts.metricsListen;
      const served = await serveMetrics(host, port);
      this.metricsServer = served.server;
      const shown = host === '0.0.0.0' || host === '::' ? this.opts.address : host;
      this.metricsUrl = `http://${shown.includes(':') ? `[${shown}]` : shown}:${served.port}/metrics`;
    }
    await this.checkHealth();
    await this.register();
    if (!liveRestore) void this.event(`node/${this.opts.node}`, 'Warning', 'DockerNoLiveRestore', LIVE_RESTORE_HELP);
    await this.watchDockerEvents();
    if (this.opts.dockerWatchdog !== false) {
      this.watchdog = new DockerWatchdog({
        ...this.opts.dockerWatchdog,
        ping: () => this.runtime.ping(3000), registry, log: this.log.child({ component: 'docker-watchdog' }),
        onEvent: (type, reason, message) => void this.event(`node/${this.opts.node}`, type, reason, message),
        // dockerd was down: its event stream died with it; subscribe again and reconcile (adopts, never recreates).
        onRecovered: async () => { await this.watchDockerEvents(); this.kick(); },
      });
      this.watchdog.start();
    }
    if (this.opts.shipperConfig) {
      const docker = this.runtime.docker;
      this.shipper = new ShipperKeeper(docker, this.opts.shipperConfig, async () => (await buildImage('rsyslog', { docker })).ref, this.log.child({ component: 'log-shipper' }));
      this.shipper.start(this.opts.resyncMs ?? 10_000);
    }
    this.loops.push(this.heartbeatLoop(), this.assignmentLoop());
    this.backups = new BackupWorker({ client: () => this.client, node: this.opts.node, dataRoot: this.opts.dataRoot, log: this.log.child({ component: 'backup' }), pollMs: this.opts.backupPollMs });
    this.backups.start();
    this.timers.push(setInterval(() => void this.checkHealth(), this.opts.healthIntervalMs ?? 5000).unref());
    this.timers.push(setInterval(() => this.checkContact(), 250).unref());
    this.timers.push(setInterval(() => this.kick(), this.opts.resyncMs ?? 10_000).unref());
  }

  private async watchDockerEvents(): Promise<void> {
    this.dockerEvents?.stop();
    this.dockerEvents = await this.runtime.events((action) => {
      if (['die', 'start', 'destroy', 'oom', 'stop', 'kill'].includes(action)) {
        this.kick();
        this.shipper?.kick();
      }
    });
  }

  /** Stops the agent; containers keep running (the next agent adopts them). */
  async stop(): Promise<void> {
    this.running = false;
    containerMetrics().removeSource(this);
    await this.watchdog?.stop();
    await this.backups?.stop();
    this.pollAbort.abort();
    this.pollCycle.abort();
    for (const t of this.timers) clearInterval(t);
    this.dockerEvents?.stop();
    await Promise.allSettled(this.loops);
    while (this.reconciling) await new Promise((r) => setTimeout(r, 10));
    await this.shipper?.stop();
    await this.guard?.stop();
    await new Promise<void>((r) => (this.metricsServer ? this.metricsServer.close(() => r()) : r()));
  }

  /** Where this agent serves /metrics, when it does (--metrics-listen). */
  get metricsEndpoint(): string | undefined {
    return this.metricsUrl;
  }

  /** Docker answering, log partition space: sent with every heartbeat, checked off the heartbeat's path. */
  private async checkHealth(): Promise<void> {
    let docker: NodeHealthReport['docker'] = { up: true };
    try {
      await this.runtime.ping(2000);
    } catch (err) {
      docker = { up: false, error: (err as Error).message.slice(0, 500) };
    }
    const st = await statfs(this.opts.logRoot).catch(() => undefined);
    this.health = {
      docker,
      ...(st ? { logDisk: { path: this.opts.logRoot, sizeBytes: st.blocks * st.bsize, freeBytes: st.bavail * st.bsize } } : {}),
    };
  }

  containers(): Iterable<TrackedContainer> {
    return this.tracked;
  }

  private async register(): Promise<void> {
    const sent = performance.now();
    const body = {
      name: this.opts.node,
      address: this.opts.address,
      cpus: this.opts.cpus ?? os.cpus().length,
      memory: this.opts.memory ?? os.totalmem(),
      ...(this.opts.labels && Object.keys(this.opts.labels).length ? { labels: this.opts.labels } : {}),
      dockerVersion: await this.runtime.version(),
      agentVersion: '0.1.0',
      ...(this.metricsUrl ? { metricsUrl: this.metricsUrl } : {}),
    };
    let credential = await readSecretFile(this.opts.credentialFile);
    let res: { leaseTtl: number; credential?: string };
    if (credential) {
      this.client = new ApiClient({ servers: this.opts.servers, token: credential });
      res = await this.call(() => this.client.post('/v1/agent/register', body, { timeoutMs: 10_000, idempotent: true }));
    } else {
      if (!this.opts.joinToken) throw new UnauthenticatedError(`node ${this.opts.node} has no credential at ${this.opts.credentialFile} and no join token to join with`);
      // A join is not idempotent (a second one is a 409): never retried on another server.
      const joiner = new ApiClient({ servers: this.opts.servers, token: this.opts.joinToken });
      res = await joiner.post('/v1/agent/register', body, { timeoutMs: 10_000 });
      if (!res.credential) throw new UnauthenticatedError('the server answered a join without a node credential');
      credential = res.credential;
      await mkdir(dirname(this.opts.credentialFile), { recursive: true, mode: 0o700 });
      await writeSecretFile(this.opts.credentialFile, credential);
      this.client = new ApiClient({ servers: this.opts.servers, token: credential });
      this.log.info({ node: this.opts.node, file: this.opts.credentialFile }, 'joined; node credential stored');
    }
    this.leaseTtl = res.leaseTtl;
    this.contact(sent);
    this.log.info({ node: this.opts.node }, 'registered');
  }

  /**
   * Runs a call with the node credential; a 401 means the credential was revoked
   * (`kiver node rekey`) or belongs to another cluster: said once, clearly.
   */
  private async call<T>(fn: () => Promise<T>): Promise<T> {
    try {
      const v = await fn();
      this.rejected = false;
      return v;
    } catch (err) {
      if (err instanceof UnauthenticatedError && !this.rejected) {
        this.rejected = true;
        this.log.error({ node: this.opts.node, file: this.opts.credentialFile },
          `the server refused node ${this.opts.node}'s credential (401: ${err.message}): it was revoked (kiver node rekey ${this.opts.node}) or is from another cluster; `
          + `containers keep running; to join again, remove ${this.opts.credentialFile} and restart the agent with the join token`);
      }
      throw err;
    }
  }

  private async sleep(ms: number): Promise<void> {
    await new Promise<void>((resolve) => {
      const onAbort = () => { clearTimeout(t); resolve(); };
      const t = setTimeout(() => { this.pollAbort.signal.removeEventListener('abort', onAbort); resolve(); }, ms);
      this.pollAbort.signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  private async heartbeatLoop(): Promise<void> {
    let ok = true;
    while (this.running) {
      // After a failure, try again soon (another server may answer) rather than a third of the TTL later.
      await this.sleep(ok ? (this.leaseTtl * 1000) / 3 : 1000);
      if (!this.running) return;
      try {
        // A heartbeat that takes more than a fraction of the lease is as good as lost: try the next server.
        const sent = performance.now();
        await this.call(() => this.client.post('/v1/agent/heartbeat', { node: this.opts.node, ...(this.health ? { health: this.health } : {}) }, { timeoutMs: this.heartbeatDeadlineMs(), idempotent: true }));
        this.contact(sent);
        ok = true;
      } catch (err) {
        ok = false;
        metrics.heartbeatFailures.inc();
        if (err instanceof NotFoundError) {
          this.log.warn('node lease lost; registering again');
          await this.register().then(() => (ok = true), (e) => this.log.warn({ err: (e as Error).message }, 'register failed'));
        } else if (!(err instanceof UnauthenticatedError)) {
          this.log.warn({ err: (err as Error).message }, 'heartbeat failed');
        }
      }
    }
  }

  /** A heartbeat or register sent at `sent` succeeded. */
  private contact(sent: number): void {
    this.lastContact = Math.max(this.lastContact, sent);
    if (!this.cutOff) return;
    this.cutOff = false;
    this.contactBackAt = performance.now();
    this.log.warn('a server answers again; asking for fresh assignments before starting held replicas');
    this.pollCycle.abort(); // the long poll in flight may be stale
  }

  /**
   * Every server out of reach for a node grace (the lease may have lapsed, and the server
   * may move `wait` replicas after a margin): stop them here first.
   */
  private checkContact(): void {
    if (this.cutOff || performance.now() - this.lastContact <= this.leaseTtl * 1000) return;
    this.cutOff = true;
    this.log.warn({ graceSeconds: this.leaseTtl }, 'no server reachable for a node grace; stopping replicas whose service says on-node-lost wait');
    this.kick();
  }

  /** Whether `wait` replicas must stay stopped: cut off, or back but without assignments asked for since. */
  private holdingWait(): boolean {
    return this.cutOff || this.assignmentsSentAt < this.contactBackAt;
  }

  /** Deadline of one heartbeat attempt at one server: a fifth of the lease TTL, at least 1 s. */
  private heartbeatDeadlineMs(): number {
    return Math.max(1000, (this.leaseTtl * 1000) / 5);
  }

  private async assignmentLoop(): Promise<void> {
    while (this.running) {
      try {
        const q = new URLSearchParams({ node: this.opts.node, wait: '25' });
        if (this.index) q.set('index', this.index);
        if (this.assignmentsSentAt < this.contactBackAt) {
          q.delete('index'); // answer at once
          q.set('fresh', 'true');
        }
        if (this.pollCycle.signal.aborted) this.pollCycle = new AbortController();
        const sent = performance.now();
        const res = await this.call(() => this.client.get<{ index: string; replicas: Replica[] }>(`/v1/agent/assignments?${q}`, {
          timeoutMs: 35_000, signal: this.pollCycle.signal,
        }));
        if (!this.running) return;
        this.assignmentsSentAt = sent;
        this.index = res.index;
        this.assignments = res.replicas;
        this.kick();
      } catch (err) {
        if (!this.running) return;
        if (this.pollCycle.signal.aborted) continue; // contact came back: ask again at once
        if (err instanceof UnauthenticatedError) {
          await this.sleep(5000); // said once by call(); the server may accept it again after a restore
          continue;
        }
        this.log.warn({ err: (err as Error).message }, 'fetching assignments failed; retrying');
        await this.sleep(1000);
      }
    }
  }

  /** Requests a reconcile pass; passes never overlap, and a request during one runs another. */
  kick(): void {
    if (!this.running || !this.assignments) return;
    if (this.reconciling) {
      this.again = true;
      return;
    }
    this.reconciling = true;
    void (async () => {
      do {
        this.again = false;
        try {
          await this.reconcile(this.assignments!);
          this.firstSyncDone();
        } catch (err) {
          this.log.warn({ err: (err as Error).message }, 'reconcile failed');
        }
      } while (this.again && this.running);
      this.reconciling = false;
    })();
  }

  private async event(object: string, type: 'Normal' | 'Warning', reason: string, message: string): Promise<void> {
    await this.client.post('/v1/agent/events', { object, type, reason, message }, { timeoutMs: 10_000, idempotent: true }).catch(() => {});
  }

  /** Cores no cpuset replica owns; '' when none are owned (then Docker's default: all). */
  private sharedPool(assigned: Replica[]): string {
    const owned = new Set<number>();
    for (const r of assigned) if (r.desired === 'run' && r.spec.cpuPolicy === 'cpuset') for (const c of r.spec.cpuset ?? []) owned.add(c);
    if (owned.size === 0) return '';
    const cpus = this.opts.cpus ?? os.cpus().length;
    return Array.from({ length: cpus }, (_, i) => i).filter((c) => !owned.has(c)).join(',');
  }

  private stateOf(r: Replica, s: ContainerState): { state: StatusItem['state']; lastError?: string } {
    const id = replicaId(r.service, r.ordinal);
    const hist = (this.restarts.get(id) ?? []).filter((h) => Date.now() - h.at < CRASHLOOP_WINDOW_MS);
    if (hist.length === 0 || hist[hist.length - 1].count !== s.restartCount) hist.push({ count: s.restartCount, at: Date.now() });
    this.restarts.set(id, hist);
    const recent = hist[hist.length - 1].count - hist[0].count;
    const exited = s.exitCode !== 0 ? `exited with code ${s.exitCode}${s.oomKilled ? ' (out of memory)' : ''}` : undefined;
    const upFor = Date.now() - Date.parse(s.startedAt ?? '');
    if (recent >= CRASHLOOP_RESTARTS && (!s.running || s.restarting || upFor < 10_000)) {
      return { state: 'crashloop', lastError: `${exited ?? 'exited'}; restarted ${recent} times in the last minute` };
    }
    if (s.restarting) return { state: 'restarting', lastError: exited };
    if (s.running) return { state: 'running', lastError: s.restartCount > 0 ? exited : undefined };
    if (s.status === 'created') return { state: 'creating' };
    return { state: 'exited', lastError: s.error ?? exited };
  }

  async reconcile(assigned: Replica[]): Promise<void> {
    metrics.agentReconciles.inc();
    const endTimer = metrics.agentReconcileSeconds.startTimer();
    const tracked: TrackedContainer[] = [];
    const containers = await this.runtime.list();
    const byName = new Map(containers.map((c) => [c.name, c]));
    const pool = this.sharedPool(assigned);
    const reports: StatusItem[] = [];
    const counts = new Map<string, number>();

    for (const r of assigned) {
      const id = replicaId(r.service, r.ordinal);
      const name = containerName(r.service, r.ordinal);
      let c = byName.get(name);
      byName.delete(name);
      const base = { service: r.service, ordinal: r.ordinal, uid: r.uid, generation: r.generation };

      if (r.desired === 'delete') {
        if (c) {
          await this.runtime.remove(c.id);
          metrics.agentActions.inc({ action: 'remove' });
        }
        if (r.purge) await purgeDirs(this.opts, r.service, r.ordinal);
        reports.push({ ...base, state: 'removed', restartCount: 0 });
        continue;
      }
      if (c && (c.uid !== r.uid || c.generation !== r.generation)) {
        this.log.info({ replica: id, from: c.generation, to: r.generation }, 'recreating container for a new generation');
        await this.runtime.remove(c.id);
        metrics.agentActions.inc({ action: 'replace' });
        c = undefined;
        this.restarts.delete(id);
      }
      if (r.spec.onNodeLost === 'wait' && this.holdingWait()) {
        // At most one copy: the server may have moved it meanwhile. Data stays; nothing reported.
        if (c && ['running', 'restarting', 'paused'].includes(c.state)) {
          await this.runtime.stop(c.id).catch((err) => this.log.warn({ replica: id, err: (err as Error).message }, 'stopping a held replica failed'));
          metrics.agentActions.inc({ action: 'stop' });
          this.log.warn({ replica: id }, 'stopped: no server reachable and its service says on-node-lost wait');
        }
        continue;
      }
      const incarnation = `${id}@${r.uid}@${r.generation}`;
      const gaveUp = this.startFailures.get(incarnation);
      if (gaveUp && gaveUp.count >= START_ATTEMPTS) {
        // Given up on this incarnation; the controller places it anew (new uid, fresh ports).
        if (c) await this.runtime.remove(c.id).catch(() => {});
        reports.push({ ...base, state: 'failed', restartCount: 0, lastError: gaveUp.lastError });
        counts.set('failed', (counts.get('failed') ?? 0) + 1);
        continue;
      }
      let containerId = c?.id;
      let created = false;
      if (!containerId) {
        try {
          await this.runtime.ensureImage(r.spec.image);
          const dirs = await ensureDirs(this.opts, r.service, r.ordinal);
          containerId = await this.runtime.create(r, dirs, pool);
          created = true;
          metrics.agentActions.inc({ action: 'create' });
        } catch (err) {
          const msg = (err as Error).message;
          const reason = err instanceof ImageMissingError ? 'ImageMissing' : 'CreateFailed';
          void this.event(`replica/${id}`, 'Warning', reason, msg);
          reports.push({ ...base, state: 'failed', restartCount: 0, lastError: msg });
          counts.set('failed', (counts.get('failed') ?? 0) + 1);
          continue;
        }
      }
      let s = await this.runtime.inspect(containerId);
      if (!s) continue; // removed under us; the next pass recreates it
      if (!this.restartBase.has(incarnation)) {
        this.restartBase.set(incarnation, Math.max(0, ((r as { lastRestartCount?: number }).lastRestartCount ?? 0) - s.restartCount));
      }
      if (s.status === 'created' && !this.createdSince.has(containerId)) this.createdSince.set(containerId, performance.now());
      if (!s.running && !s.restarting && (s.status === 'exited' || s.status === 'created')) {
        // Just created, stopped from outside, or left stopped (or half-started) by a daemon restart:
        // desired state is running.
        const stuck = s.status === 'created' && !created && performance.now() - this.createdSince.get(containerId)! > CREATED_DEADLINE_MS;
        if (s.status === 'exited') this.restartBase.set(incarnation, this.restartBase.get(incarnation)! + s.restartCount + 1);
        let startError: string | undefined;
        try {
          await this.runtime.start(containerId);
          metrics.agentActions.inc({ action: 'start' });
          if (stuck) startError = 'container stuck in Created (never started) after a successful start call';
        } catch (err) {
          startError = (err as Error).message;
        }
        const after = startError ? undefined : await this.runtime.inspect(containerId);
        if (!startError && after?.status === 'created' && stuck) startError = `container stuck in Created for over ${CREATED_DEADLINE_MS / 1000} s`;
        if (startError) {
          // Never swallowed: the cause goes to the status and one event; the container is
          // removed so the next pass creates a fresh one (Docker allocates its ports anew).
          const f = { count: (this.startFailures.get(incarnation)?.count ?? 0) + 1, lastError: `${START_FAILED}${startError}` };
          this.startFailures.set(incarnation, f);
          this.createdSince.delete(containerId);
          await this.runtime.remove(containerId).catch(() => {});
          const prefix = s.status === 'exited' ? `container ${name} was stopped (exit code ${s.exitCode}); ` : `container ${name}: `;
          const last = f.count >= START_ATTEMPTS ? ` (gave up after ${f.count} containers; the replica is failed)` : '';
          void this.event(`replica/${id}`, 'Warning', 'StartFailed', `${prefix}${f.lastError}${last}`);
          const state = f.count >= START_ATTEMPTS ? 'failed' : 'creating';
          reports.push({ ...base, state, restartCount: 0, lastError: f.lastError });
          counts.set(state, (counts.get(state) ?? 0) + 1);
          continue;
        }
        this.createdSince.delete(containerId);
        this.startFailures.delete(incarnation);
        void this.event(`replica/${id}`, 'Normal', s.status === 'exited' ? 'Restarted' : 'Started', s.status === 'exited'
          ? `container ${name} was stopped (exit code ${s.exitCode}); started it again`
          : `container ${name} started on ${this.opts.node}`);
        s = after ?? s;
      }
      s = { ...s, restartCount: s.restartCount + this.restartBase.get(incarnation)! };
      tracked.push({
        id: s.id, name, image: s.image, service: r.service, replica: id, node: this.opts.node,
        pid: s.running ? s.pid : 0, createdSeconds: Date.parse(s.created) / 1000,
      });
      if (r.spec.cpuPolicy !== 'cpuset' && s.cpusetCpus !== pool && !(pool === '' && s.cpusetCpus === '')) {
        const cpus = this.opts.cpus ?? os.cpus().length;
        await this.runtime.updateCpuset(containerId, pool || `0-${cpus - 1}`).catch(() => {});
      }
      const st = this.stateOf(r, s);
      if (st.state === 'crashloop') void this.event(`replica/${id}`, 'Warning', 'CrashLoop', st.lastError ?? 'crash loop');
      counts.set(st.state, (counts.get(st.state) ?? 0) + 1);
      const rep: StatusItem = { ...base, state: st.state, containerId, restartCount: s.restartCount, exitCode: s.exitCode };
      if (s.startedAt) rep.startedAt = s.startedAt;
      if (st.lastError) rep.lastError = st.lastError;
      reports.push(rep);
    }

    // Containers no longer assigned here (deleted, or moved while this agent was away).
    for (const c of byName.values()) {
      this.log.info({ container: c.name }, 'removing container that is no longer assigned to this node');
      await this.runtime.remove(c.id);
      metrics.agentActions.inc({ action: 'remove' });
    }
    for (const state of ['running', 'restarting', 'crashloop', 'exited', 'failed', 'creating']) {
      metrics.agentContainers.set({ state }, counts.get(state) ?? 0);
    }
    this.tracked = tracked;
    endTimer();
    await this.report(reports);
    // Fixed addresses held here, after this pass's creates and removals (see addresses.ts).
    if (this.addresses.tracking || assigned.some((r) => r.spec.network) || containers.some((c) => c.ip)) {
      await this.addresses.report(await this.runtime.list()).catch((err) => this.log.warn({ err: (err as Error).message }, 'reporting held addresses failed; will retry'));
    }
  }

  private async report(reports: StatusItem[]): Promise<void> {
    const changed = reports.filter((r) => this.lastReported.get(`${r.service}/${r.ordinal}`) !== JSON.stringify(r));
    if (changed.length === 0) return;
    await this.call(() => this.client.put('/v1/agent/status', { node: this.opts.node, statuses: changed }));
    for (const r of changed) this.lastReported.set(`${r.service}/${r.ordinal}`, JSON.stringify(r));
  }
}
