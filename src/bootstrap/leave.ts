/**
 * `kiver node leave`: drains the node (through the API, with admin credentials), stops
 * and removes the agent (unit or supervised program), the log shipper and the node's
 * credential; data and logs stay unless --purge. Docker stays installed and running.
 */
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { run } from '../image/exec.js';
import { AGENT_UNIT, CREDENTIAL_FILE, NODE_CONFIG_FILE, NODE_SECRET_FILE, NodeHost, SHIPPER_CONTAINER, SYSTEMD_UNIT_DIR } from './node-host.js';
import { programFile, programPid, supervisorPid } from './supervisor.js';
import { dockerAnswers, dockerClientFor, removeNodeFile } from './units.js';
import { SHIPPER_CONFIG, SHIPPER_SETTINGS } from './log-shipper.js';
import { CONTROL_CONFIG_FILE, leaveControl, readControlConfig } from './control.js';
import { BootstrapError, type Printer } from './step.js';

export interface NodeConfig {
  role: string;
  node: string;
  servers: string[];
  dataRoot: string;
  logRoot: string;
  manager: 'systemd' | 'supervisor';
}

export function readNodeConfig(host: NodeHost): NodeConfig | undefined {
  try {
    return JSON.parse(readFileSync(host.path(NODE_CONFIG_FILE), 'utf8')) as NodeConfig;
  } catch {
    return undefined;
  }
}

export interface LeaveOptions {
  root: string;
  purge: boolean;
  /** Drains first; undefined = skip (--no-drain). */
  drain?: (node: string, print: Printer) => Promise<void>;
  /** Removes the node's record from the cluster once its agent is stopped (says what happened); undefined = keep it. */
  remove?: (node: string) => Promise<string>;
}

export async function nodeLeave(o: LeaveOptions, print: Printer): Promise<'left' | 'not-a-node'> {
  const host = new NodeHost(o.root);
  const cfg = readNodeConfig(host);
  const control = readControlConfig(host);
  if (!cfg && !control) {
    print(`nothing to do: neither ${host.path(NODE_CONFIG_FILE)} nor ${host.path(CONTROL_CONFIG_FILE)} exists (this host is not a Kiver node)`);
    return 'not-a-node';
  }
  const step = async (name: string, fn: () => Promise<string | undefined>) => {
    try {
      const did = await fn();
      if (did) print(`  done ${name}: ${did}`);
    } catch (err) {
      throw new BootstrapError(`node leave: ${name} failed: ${(err as Error).message}; run it again to continue`);
    }
  };
  if (control) {
    await leaveControl(host, step, o.purge);
    print(`control node ${control.node} left the control plane`);
  }
  if (!cfg) return 'left';
  if (o.drain) await step('drain', async () => { await o.drain!(cfg.node, print); return `node ${cfg.node} drained`; });
  await step('agent', async () => {
    if (cfg.manager === 'systemd') {
      await run('systemctl', ['disable', '--now', AGENT_UNIT]).catch(() => undefined);
      removeNodeFile(host, `${SYSTEMD_UNIT_DIR}/${AGENT_UNIT}`);
      await run('systemctl', ['daemon-reload']);
      return `stopped and removed ${AGENT_UNIT}`;
    }
    const pid = programPid(host, 'agent');
    rmSync(programFile(host, 'agent'), { force: true });
    const sup = supervisorPid(host);
    if (sup) process.kill(sup, 'SIGHUP');
    const deadline = Date.now() + 60_000;
    while (programPid(host, 'agent')) {
      if (Date.now() > deadline) throw new Error(`the agent (pid ${pid}) did not stop within 60 s`);
      await sleep(100);
    }
    return `stopped the agent${pid ? ` (pid ${pid})` : ''} and removed its supervised program`;
  });
  await step('node record', async () => (o.remove ? o.remove(cfg.node) : `node ${cfg.node} stays registered (cordoned only with a drain): kiver node rm ${cfg.node} removes it`));
  await step('log shipper', async () => {
    // The agent, which kept the shipper running, is stopped by now.
    removeNodeFile(host, SHIPPER_CONFIG);
    removeNodeFile(host, SHIPPER_SETTINGS);
    if (!(await dockerAnswers(host))) return 'Docker does not answer: no shipper container to remove';
    try {
      await dockerClientFor(host).getContainer(SHIPPER_CONTAINER).remove({ force: true });
    } catch (err) {
      if ((err as { statusCode?: number }).statusCode === 404) return undefined;
      throw err;
    }
    return `removed ${SHIPPER_CONTAINER}`;
  });
  await step('credential', async () => {
    const removed = [CREDENTIAL_FILE, NODE_SECRET_FILE, NODE_CONFIG_FILE].filter((f) => removeNodeFile(host, f));
    return removed.length ? `removed ${removed.join(', ')}` : undefined;
  });
  if (o.purge) {
    await step('purge', async () => {
      for (const root of [cfg.dataRoot, cfg.logRoot]) {
        const dir = host.path(root);
        let names: string[] = [];
        try {
          names = readdirSync(dir);
        } catch {
          continue;
        }
        // The directory itself may be a mount point (the log partition): empty it, keep it.
        for (const n of names) rmSync(join(dir, n), { recursive: true, force: true });
      }
      return `emptied ${cfg.dataRoot} and ${cfg.logRoot}`;
    });
  } else {
    print(`  kept ${cfg.dataRoot} and ${cfg.logRoot} (--purge removes them)`);
  }
  print(`node ${cfg.node} left; Docker stays installed and running`);
  return 'left';
}
