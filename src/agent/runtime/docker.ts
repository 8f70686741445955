/**
 * The Docker driver: everything the agent does to containers goes through the
 * Docker Engine API (dockerode). Containers carry Kiver's labels so a restarted
 * agent adopts them instead of recreating them.
 */
import Docker from 'dockerode';
import type { ContainerSpec, Replica } from '../../model/replica.js';
import { containerName, replicaId } from '../../model/names.js';
import { KiverError, UnavailableError } from '../../errors.js';
import { RECIPES } from '../../image/catalog.js';
import { ensurePoolNetwork } from './pool-network.js';

export const LABEL = {
  managed: 'kiver.managed',
  node: 'kiver.node',
  service: 'kiver.service',
  ordinal: 'kiver.ordinal',
  replica: 'kiver.replica',
  uid: 'kiver.uid',
  generation: 'kiver.generation',
  /** The replica's fixed address (src/ipam/): what the agent reports its containers hold. */
  ip: 'kiver.ip',
  pool: 'kiver.pool',
} as const;

/** Mount points inside every container. */
export const DATA_MOUNT = '/data';
export const LOG_MOUNT = '/log';

export interface ManagedContainer {
  id: string;
  name: string;
  service: string;
  ordinal: number;
  uid: string;
  generation: number;
  state: string;
  /** Fixed address, when the replica has one. */
  ip?: string;
}

export interface ContainerState {
  id: string;
  running: boolean;
  restarting: boolean;
  status: string;
  exitCode: number;
  restartCount: number;
  startedAt?: string;
  error?: string;
  oomKilled: boolean;
  cpusetCpus: string;
  /** Host pid of the init process (0 when stopped), image reference and creation time: for container metrics. */
  pid: number;
  image: string;
  created: string;
}

export class ImageMissingError extends KiverError {
  override readonly status: number = 404;
  override readonly code: string = 'image_missing';
}

export function dockerFromEnv(socketPath?: string): Docker {
  const host = process.env.DOCKER_HOST;
  if (socketPath) return new Docker({ socketPath });
  if (host?.startsWith('unix://')) return new Docker({ socketPath: host.slice(7) });
  return new Docker({ socketPath: '/var/run/docker.sock' });
}

/** Host-side CPU settings for a replica; `sharedPool` are the cores no cpuset replica owns. */
export function cpuConfig(spec: ContainerSpec, sharedPool: string): Docker.HostConfig {
  switch (spec.cpuPolicy) {
    case 'cpuset':
      return { CpusetCpus: (spec.cpuset ?? []).join(',') };
    case 'quota':
      // CpuQuota 0 would mean "no limit" to Docker, and below 1000 (1 ms) it refuses: never less than that.
      return { CpuPeriod: 100_000, CpuQuota: Math.max(1000, Math.round(spec.cpu * 100_000)), CpusetCpus: sharedPool };
    default:
      return { CpuShares: Math.max(2, Math.round(spec.cpu * 1024)), CpusetCpus: sharedPool };
  }
}

export class DockerRuntime {
  constructor(readonly docker: Docker, readonly node: string) {}

  async ping(timeoutMs = 3000): Promise<void> {
    const t = new Promise<never>((_, rej) => setTimeout(() => rej(new Error('timeout')), timeoutMs).unref());
    try {
      await Promise.race([this.docker.ping(), t]);
    } catch (err) {
      throw new UnavailableError(
        `Docker daemon not reachable (${(err as Error).message}). Start it (e.g. \`dockerd &\` or \`systemctl start docker\`) or set DOCKER_HOST=unix:///path/to/docker.sock`,
      );
    }
  }

  async version(): Promise<string> {
    return (await this.docker.version()).Version;
  }

  /** Containers this node's agent manages, running or not. */
  async list(): Promise<ManagedContainer[]> {
    const cs = await this.docker.listContainers({ all: true, filters: { label: [`${LABEL.managed}=true`, `${LABEL.node}=${this.node}`] } });
    return cs.map((c) => ({
      id: c.Id,
      name: (c.Names[0] ?? '').replace(/^\//, ''),
      service: c.Labels[LABEL.service],
      ordinal: Number(c.Labels[LABEL.ordinal]),
      uid: c.Labels[LABEL.uid],
      generation: Number(c.Labels[LABEL.generation]),
      state: c.State,
      ...(c.Labels[LABEL.ip] ? { ip: c.Labels[LABEL.ip] } : {}),
    }));
  }

  async inspect(id: string): Promise<ContainerState | undefined> {
    try {
      const i = await this.docker.getContainer(id).inspect();
      return {
        id: i.Id,
        running: i.State.Running,
        restarting: i.State.Restarting,
        status: i.State.Status,
        exitCode: i.State.ExitCode,
        restartCount: i.RestartCount,
        startedAt: i.State.StartedAt,
        error: i.State.Error || undefined,
        oomKilled: i.State.OOMKilled,
        cpusetCpus: i.HostConfig.CpusetCpus ?? '',
        pid: i.State.Pid ?? 0,
        image: i.Config.Image,
        created: i.Created,
      };
    } catch (err) {
      if ((err as { statusCode?: number }).statusCode === 404) return undefined;
      throw err;
    }
  }

  /** Ensures the image is present; pulls only refs that name a registry host (no Docker Hub here). */
  async ensureImage(ref: string): Promise<void> {
    try {
      await this.docker.getImage(ref).inspect();
      return;
    } catch (err) {
      if ((err as { statusCode?: number }).statusCode !== 404) throw err;
    }
    const first = ref.split('/')[0];
    const hasRegistry = ref.includes('/') && (first.includes('.') || first.includes(':') || first === 'localhost');
    if (!hasRegistry) {
      const name = ref.replace(/^kiver\//, '').split(':')[0];
      const buildable = ref.startsWith('kiver/') && RECIPES.some((r) => r.name === name);
      throw new ImageMissingError(
        `image ${ref} is not on node ${this.node}; ` +
          (buildable ? `build it there with \`kiver image build ${name}\`` : 'push it to a registry the node can reach and use registry/name:tag'),
      );
    }
    const stream = await this.docker.pull(ref);
    await new Promise<void>((resolve, reject) =>
      this.docker.modem.followProgress(stream, (err: Error | null) => (err ? reject(new ImageMissingError(`pull ${ref}: ${err.message}`)) : resolve())),
    );
  }

  /** Creates the replica's container (not started: start() is separate so its error is its own). */
  async create(r: Replica, dirs: { data: string; log: string }, sharedPool: string): Promise<string> {
    const spec = r.spec;
    const exposed: Record<string, object> = {};
    const bindings: Record<string, { HostIp: string; HostPort: string }[]> = {};
    for (const p of spec.ports) {
      const k = `${p.container}/${p.protocol}`;
      exposed[k] = {};
      bindings[k] = [{ HostIp: '', HostPort: String(p.host) }];
    }
    const net = spec.network;
    // On a fixed address traffic goes straight to the container: nothing is published (no docker-proxy, no NAT).
    if (net) await ensurePoolNetwork(this.docker, net);
    const c = await this.docker.createContainer({
      name: containerName(r.service, r.ordinal),
      Image: spec.image,
      Cmd: spec.command.length > 0 ? spec.command : undefined,
      Env: [
        ...Object.entries({ ...spec.env, ...spec.secretEnv }).map(([k, v]) => `${k}=${v}`),
        `KIVER_SERVICE=${r.service}`,
        `KIVER_ORDINAL=${r.ordinal}`,
        `KIVER_REPLICA=${replicaId(r.service, r.ordinal)}`,
        `KIVER_DATA_DIR=${DATA_MOUNT}`,
        `KIVER_LOG_DIR=${LOG_MOUNT}`,
      ],
      Labels: {
        [LABEL.managed]: 'true',
        [LABEL.node]: this.node,
        [LABEL.service]: r.service,
        [LABEL.ordinal]: String(r.ordinal),
        [LABEL.replica]: replicaId(r.service, r.ordinal),
        [LABEL.uid]: r.uid,
        [LABEL.generation]: String(r.generation),
        ...(net ? { [LABEL.ip]: net.ip, [LABEL.pool]: net.pool } : {}),
      },
      ExposedPorts: exposed,
      ...(net ? { NetworkingConfig: { EndpointsConfig: { [net.network]: { IPAMConfig: net.family === 4 ? { IPv4Address: net.ip } : { IPv6Address: net.ip } } } } } : {}),
      HostConfig: {
        RestartPolicy: { Name: 'always', MaximumRetryCount: 0 },
        Memory: spec.memory,
        Binds: [`${dirs.data}:${DATA_MOUNT}`, `${dirs.log}:${LOG_MOUNT}`],
        PortBindings: net ? {} : bindings,
        ...(net ? { NetworkMode: net.network } : {}),
        LogConfig: { Type: 'json-file', Config: { 'max-size': '10m', 'max-file': '3' } },
        ...cpuConfig(spec, sharedPool),
      },
    });
    return c.id;
  }

  async start(id: string): Promise<void> {
    await this.docker.getContainer(id).start();
  }

  /** Stops a container (SIGTERM, SIGKILL after `seconds`); it stays, with its data, for a later start. */
  async stop(id: string, seconds = 2): Promise<void> {
    try {
      await this.docker.getContainer(id).stop({ t: seconds });
    } catch (err) {
      const code = (err as { statusCode?: number }).statusCode;
      if (code !== 304 && code !== 404) throw err; // 304: already stopped
    }
  }

  async updateCpuset(id: string, cpus: string): Promise<void> {
    await this.docker.getContainer(id).update({ CpusetCpus: cpus });
  }

  async remove(id: string): Promise<void> {
    try {
      await this.docker.getContainer(id).remove({ force: true });
    } catch (err) {
      if ((err as { statusCode?: number }).statusCode !== 404) throw err;
    }
  }

  /** Calls onEvent for every container event of this node's managed containers until stop(). */
  async events(onEvent: (action: string, labels: Record<string, string>) => void): Promise<{ stop(): void }> {
    const stream = (await this.docker.getEvents({
      filters: { type: ['container'], label: [`${LABEL.managed}=true`, `${LABEL.node}=${this.node}`] },
    })) as NodeJS.ReadableStream & { destroy(): void };
    let buf = '';
    stream.on('data', (chunk: Buffer) => {
      buf += chunk.toString('utf8');
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        try {
          const ev = JSON.parse(line) as { Action: string; Actor?: { Attributes?: Record<string, string> } };
          onEvent(ev.Action, ev.Actor?.Attributes ?? {});
        } catch {
          /* partial or foreign line */
        }
      }
    });
    stream.on('error', () => {});
    return { stop: () => stream.destroy() };
  }
}
