/**
 * The node's log shipper: an rsyslog container (Debian's rsyslog with imfile, image
 * built offline like every Kiver image) that follows the log guard's flat directory
 * and forwards each line to a TCP syslog endpoint, with CPU and memory quotas so a
 * log flood cannot starve the replicas (MISSION M11).
 */
import { createHash } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { buildImage } from '../image/build.js';
import { imageRepo } from '../image/catalog.js';
import { SHIPPER_CONTAINER } from './node-host.js';
import { dockerAnswers, dockerClientFor, writeNodeFile } from './units.js';
import type { InitContext } from './context.js';
import type { Step } from './step.js';

export const SHIPPER_CONFIG = '/etc/kiver/shipper/rsyslog.conf';
export const SHIPPER_SPOOL = '/var/lib/kiver/shipper';
export const SHIPPER_LABEL = 'kiver.infra';

/** The guard's flat directory for a log root (the agent's default --guard-out). */
export const guardOut = (logRoot: string) => `${logRoot.replace(/\/+$/, '')}/.shipper`;

/** rsyslog.conf: imfile on every file of the flat directory → omfwd over TCP, queued in memory while the endpoint is away. */
export function rsyslogConf(flatDir: string, to: { host: string; port: number }): string {
  return [
    '# Written by kiver node init: the guard\'s flat directory → TCP syslog.',
    'global(workDirectory="/var/spool/rsyslog")',
    'module(load="imfile" mode="inotify")',
    `input(type="imfile" File="${flatDir}/*" Tag="kiver" addMetadata="on" reopenOnTruncate="on")`,
    `action(type="omfwd" Target="${to.host}" Port="${to.port}" Protocol="tcp" Template="RSYSLOG_SyslogProtocol23Format"`,
    '       queue.type="LinkedList" queue.size="100000" action.resumeRetryCount="-1" action.resumeInterval="2")',
    '',
  ].join('\n');
}

export function shipperSpec(ctx: InitContext) {
  const { host, s } = ctx;
  const logRoot = host.path(s.logRoot);
  const conf = rsyslogConf(guardOut(logRoot), s.shipTo!);
  const binds = [
    `${logRoot}:${logRoot}:ro`, // the same path inside: the flat directory's symlinks are absolute
    `${host.path(SHIPPER_CONFIG)}:/etc/rsyslog.conf:ro`,
    `${host.path(SHIPPER_SPOOL)}:/var/spool/rsyslog`,
  ];
  const quotas = { NanoCpus: Math.round(s.shipperCpu * 1e9), Memory: s.shipperMemory, MemorySwap: s.shipperMemory };
  const hash = createHash('sha256').update(JSON.stringify({ conf, binds, quotas })).digest('hex').slice(0, 16);
  return { conf, binds, quotas, hash };
}

export function logShipperStep(ctx: InitContext, print: (l: string) => void): Step {
  return {
    name: 'log shipper',
    async check() {
      const { s } = ctx;
      if (!s.shipTo) return [];
      const spec = shipperSpec(ctx);
      const say = `run ${SHIPPER_CONTAINER} (${imageRepo('rsyslog')}, ${s.shipperCpu} CPU, ${Math.round(s.shipperMemory / 2 ** 20)} MiB) shipping ${guardOut(s.logRoot)} to tcp://${s.shipTo.host}:${s.shipTo.port}`;
      if (!(await dockerAnswers(ctx.host))) return [`build ${imageRepo('rsyslog')} and ${say}`];
      try {
        const info = await dockerClientFor(ctx.host).getContainer(SHIPPER_CONTAINER).inspect();
        if (info.Config.Labels?.[`${SHIPPER_LABEL}.config`] === spec.hash && info.State.Running) return [];
        return [`re-create: ${say}`];
      } catch {
        return [say];
      }
    },
    async apply() {
      const { host } = ctx;
      const spec = shipperSpec(ctx);
      const docker = dockerClientFor(host);
      writeNodeFile(host, { path: SHIPPER_CONFIG, mode: 0o644, content: spec.conf });
      mkdirSync(host.path(SHIPPER_SPOOL), { recursive: true, mode: 0o700 });
      const img = await buildImage('rsyslog', { docker, onProgress: (p) => p.state === 'end' && print(`    image ${p.image} ${p.phase}: ${p.message}`) });
      await docker.getContainer(SHIPPER_CONTAINER).remove({ force: true }).catch(() => undefined);
      const c = await docker.createContainer({
        name: SHIPPER_CONTAINER,
        Image: img.ref,
        Labels: { [SHIPPER_LABEL]: 'log-shipper', [`${SHIPPER_LABEL}.config`]: spec.hash },
        HostConfig: {
          NetworkMode: 'host',
          Binds: spec.binds,
          RestartPolicy: { Name: 'always' },
          ...spec.quotas,
          LogConfig: { Type: 'json-file', Config: { 'max-size': '10m', 'max-file': '2' } },
        },
      });
      await c.start();
      return [`started ${SHIPPER_CONTAINER} from ${img.ref}${img.cached ? '' : ' (built now)'}`];
    },
  };
}
