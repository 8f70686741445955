/**
 * The node's log shipper, kept running by the agent as an infrastructure service: an
 * rsyslog container (Debian's rsyslog with imfile, image built offline like every Kiver
 * image) that follows the log guard's flat directory and forwards each line to a TCP
 * syslog endpoint, with CPU and memory quotas so a log flood cannot starve the replicas
 * (MISSION M11). What it runs is read from a JSON file (`kiver agent --shipper-config`,
 * written by `kiver node init`) at every check: a container that is missing, dead or
 * made from other settings is created again; no file, no shipper.
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type Docker from 'dockerode';
import type { Logger } from '../log.js';

export const SHIPPER_CONTAINER = 'kiver-log-shipper';
export const SHIPPER_LABEL = 'kiver.infra';

export interface ShipperConfig {
  /** TCP syslog receiver. */
  to: { host: string; port: number };
  /** CPUs (e.g. 0.2) and bytes. */
  cpu: number;
  memory: number;
  /** Paths on this machine: the log root (mounted read-only), the guard's flat directory in it, rsyslog's config file and spool. */
  logRoot: string;
  flatDir: string;
  confFile: string;
  spoolDir: string;
}

/** rsyslog.conf: imfile on every file of the flat directory → omfwd over TCP, queued in memory while the endpoint is away. */
export function rsyslogConf(flatDir: string, to: { host: string; port: number }): string {
  return [
    '# Written by the Kiver agent: the guard\'s flat directory → TCP syslog.',
    'global(workDirectory="/var/spool/rsyslog")',
    'module(load="imfile" mode="inotify")',
    `input(type="imfile" File="${flatDir}/*" Tag="kiver" addMetadata="on" reopenOnTruncate="on")`,
    `action(type="omfwd" Target="${to.host}" Port="${to.port}" Protocol="tcp" Template="RSYSLOG_SyslogProtocol23Format"`,
    '       queue.type="LinkedList" queue.size="100000" action.resumeRetryCount="-1" action.resumeInterval="2")',
    '',
  ].join('\n');
}

export function shipperSpec(c: ShipperConfig) {
  const conf = rsyslogConf(c.flatDir, c.to);
  const binds = [
    `${c.logRoot}:${c.logRoot}:ro`, // the same path inside: the flat directory's symlinks are absolute
    `${c.confFile}:/etc/rsyslog.conf:ro`,
    `${c.spoolDir}:/var/spool/rsyslog`,
  ];
  const quotas = { NanoCpus: Math.round(c.cpu * 1e9), Memory: c.memory, MemorySwap: c.memory };
  const hash = createHash('sha256').update(JSON.stringify({ conf, binds, quotas })).digest('hex').slice(0, 16);
  return { conf, binds, quotas, hash };
}

/** Whether the shipper runs as `hash` describes: ok, or why not. */
export async function shipperState(docker: Docker, hash: string): Promise<'ok' | 'missing' | 'stopped' | 'changed'> {
  let info: Docker.ContainerInspectInfo;
  try {
    info = await docker.getContainer(SHIPPER_CONTAINER).inspect();
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode === 404) return 'missing';
    throw err;
  }
  if (info.Config.Labels?.[`${SHIPPER_LABEL}.config`] !== hash) return 'changed';
  // Restarting: Docker's restart policy is at work (its backoff), not a dead container.
  return info.State.Running || info.State.Restarting ? 'ok' : 'stopped';
}

/** (Re)creates the shipper from `image`: config file written, old container removed, new one started. */
export async function runShipper(docker: Docker, c: ShipperConfig, image: string): Promise<void> {
  const spec = shipperSpec(c);
  await mkdir(dirname(c.confFile), { recursive: true });
  const tmp = `${c.confFile}.kiver-tmp`;
  await writeFile(tmp, spec.conf, { mode: 0o644 });
  await rename(tmp, c.confFile);
  await mkdir(c.spoolDir, { recursive: true, mode: 0o700 });
  await docker.getContainer(SHIPPER_CONTAINER).remove({ force: true }).catch(() => undefined);
  const ct = await docker.createContainer({
    name: SHIPPER_CONTAINER,
    Image: image,
    Labels: { [SHIPPER_LABEL]: 'log-shipper', [`${SHIPPER_LABEL}.config`]: spec.hash },
    HostConfig: {
      NetworkMode: 'host',
      Binds: spec.binds,
      RestartPolicy: { Name: 'always' },
      ...spec.quotas,
      LogConfig: { Type: 'json-file', Config: { 'max-size': '10m', 'max-file': '2' } },
    },
  });
  await ct.start();
}

export async function readShipperConfig(file: string): Promise<ShipperConfig | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  return JSON.parse(text) as ShipperConfig;
}

/**
 * The agent's loop for the shipper: checks every `intervalMs` and when kicked (Docker
 * events), one check at a time. `image()` returns the shipper image's ref (building it
 * when missing); it is called only when a container must be created.
 */
export class ShipperKeeper {
  private timer?: NodeJS.Timeout;
  private busy?: Promise<void>;
  private again = false;
  private lastError = '';

  constructor(private readonly docker: Docker, private readonly file: string, private readonly image: () => Promise<string>, private readonly log: Logger) {}

  start(intervalMs = 10_000): void {
    this.timer = setInterval(() => this.kick(), intervalMs);
    this.timer.unref();
    this.kick();
  }

  kick(): void {
    if (this.busy) {
      this.again = true;
      return;
    }
    this.busy = this.check().finally(() => {
      this.busy = undefined;
      if (this.again) {
        this.again = false;
        this.kick();
      }
    });
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.again = false;
    await this.busy;
  }

  private async check(): Promise<void> {
    try {
      const c = await readShipperConfig(this.file);
      if (!c) {
        // No settings: a shipper Kiver made goes (node init without --ship-logs-to).
        const list = await this.docker.listContainers({ all: true, filters: { label: [`${SHIPPER_LABEL}=log-shipper`] } });
        for (const x of list) await this.docker.getContainer(x.Id).remove({ force: true });
        if (list.length) this.log.info({ container: SHIPPER_CONTAINER }, 'log shipper removed: no shipper settings');
        return;
      }
      const state = await shipperState(this.docker, shipperSpec(c).hash);
      if (state === 'ok') return;
      await runShipper(this.docker, c, await this.image());
      this.lastError = '';
      this.log.info({ container: SHIPPER_CONTAINER, was: state, to: `${c.to.host}:${c.to.port}`, cpu: c.cpu, memory: c.memory }, 'log shipper (re)created');
    } catch (err) {
      const msg = (err as Error).message;
      if (msg !== this.lastError) this.log.warn({ err: msg, file: this.file }, 'log shipper: cannot run it; retrying');
      this.lastError = msg;
    }
  }
}
