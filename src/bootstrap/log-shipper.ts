/**
 * The log shipper step of `kiver node init`: writes the shipper's settings for the
 * agent (`/etc/kiver/shipper.json`, read by `kiver agent --shipper-config`), builds its
 * image into the node's Docker, and waits until the agent runs it. The agent keeps it
 * running from then on (src/agent/log-shipper.ts): recreated when removed or dead,
 * settings changes applied without restarting the agent.
 */
import { existsSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { buildImage } from '../image/build.js';
import { imageRepo } from '../image/catalog.js';
import { SHIPPER_CONTAINER, shipperSpec, shipperState, type ShipperConfig } from '../agent/log-shipper.js';
import { dockerAnswers, dockerClientFor, removeNodeFile, writeNodeFile } from './units.js';
import type { InitContext } from './context.js';
import type { Step } from './step.js';

/** The shipper's settings for the agent (node path). */
export const SHIPPER_SETTINGS = '/etc/kiver/shipper.json';
export const SHIPPER_CONFIG = '/etc/kiver/shipper/rsyslog.conf';
export const SHIPPER_SPOOL = '/var/lib/kiver/shipper';

/** The guard's flat directory for a log root (the agent's default --guard-out). */
export const guardOut = (logRoot: string) => `${logRoot.replace(/\/+$/, '')}/.shipper`;

export function shipperConfig(ctx: InitContext): ShipperConfig | undefined {
  const { host, s } = ctx;
  if (!s.shipTo) return undefined;
  const logRoot = host.path(s.logRoot);
  return { to: s.shipTo, cpu: s.shipperCpu, memory: s.shipperMemory, logRoot, flatDir: guardOut(logRoot), confFile: host.path(SHIPPER_CONFIG), spoolDir: host.path(SHIPPER_SPOOL) };
}

const settingsText = (c: ShipperConfig) => `${JSON.stringify(c, null, 2)}\n`;

export function logShipperStep(ctx: InitContext, print: (l: string) => void): Step {
  return {
    name: 'log shipper',
    async check() {
      const { s, host } = ctx;
      const c = shipperConfig(ctx);
      if (!c) return existsSync(host.path(SHIPPER_SETTINGS)) ? [`remove ${SHIPPER_SETTINGS} (the agent removes ${SHIPPER_CONTAINER})`] : [];
      let cur = '';
      try {
        cur = readFileSync(host.path(SHIPPER_SETTINGS), 'utf8');
      } catch { /* none yet */ }
      if (cur === settingsText(c)) return [];
      const say = `${SHIPPER_CONTAINER} (${imageRepo('rsyslog')}, ${s.shipperCpu} CPU, ${Math.round(s.shipperMemory / 2 ** 20)} MiB) shipping ${guardOut(s.logRoot)} to tcp://${c.to.host}:${c.to.port}`;
      return [`${cur ? 'update' : 'write'} ${SHIPPER_SETTINGS}; the agent runs ${say}${(await dockerAnswers(host)) ? '' : `; build ${imageRepo('rsyslog')}`}`];
    },
    async apply() {
      const { host } = ctx;
      const c = shipperConfig(ctx);
      if (!c) {
        removeNodeFile(host, SHIPPER_SETTINGS);
        return [`removed ${SHIPPER_SETTINGS}: the agent removes ${SHIPPER_CONTAINER}`];
      }
      const docker = dockerClientFor(host);
      // Built here, where progress can be shown; the agent finds it cached.
      const img = await buildImage('rsyslog', { docker, onProgress: (p) => p.state === 'end' && print(`    image ${p.image} ${p.phase}: ${p.message}`) });
      writeNodeFile(host, { path: SHIPPER_SETTINGS, mode: 0o644, content: settingsText(c) });
      const hash = shipperSpec(c).hash;
      const deadline = Date.now() + 90_000;
      while ((await shipperState(docker, hash)) !== 'ok') {
        if (Date.now() > deadline) throw new Error(`the agent did not start ${SHIPPER_CONTAINER} within 90 s (see the agent's log)`);
        await sleep(250);
      }
      return [`wrote ${SHIPPER_SETTINGS}; the agent runs ${SHIPPER_CONTAINER} from ${img.ref}${img.cached ? '' : ' (built now)'}`];
    },
  };
}
