/**
 * Starts or restarts what runs on the node — dockerd and the agent — under systemd or
 * Kiver's supervisor, only as far as the earlier steps changed something, then waits
 * until Docker answers and the agent has joined.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { run } from '../image/exec.js';
import { AGENT_UNIT, SUPERVISE_DIR, SYSTEMD_UNIT_DIR } from './node-host.js';
import { programPid, startSupervisor, supervisorPid } from './supervisor.js';
import { dockerAnswers } from './units.js';
import { nodeJoined } from './server-probe.js';
import type { InitContext } from './context.js';
import type { Step } from './step.js';

async function waitFor(what: string, fn: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${timeoutMs / 1000} s`);
    await sleep(200);
  }
}

async function systemctlOk(...args: string[]): Promise<boolean> {
  return run('systemctl', args, { capture: true }).then(() => true, () => false);
}

/** Runs dockerd under the supervisor or systemd and waits until it answers (the docker part of `kiver up` too). */
export function dockerReady(ctx: InitContext): Promise<void> {
  return waitFor(`Docker answering on ${ctx.host.dockerSocket}`, () => dockerAnswers(ctx.host), 90_000);
}

export function processesStep(ctx: InitContext, changedFiles: Set<string>, withAgent = true): Step {
  const sup = ctx.manager === 'supervisor';
  type Action = { say: string; run: () => Promise<string> };
  let actions: Action[] = [];
  const agentFilesChanged = () => [...changedFiles].some((f) => f.includes('/agent.json') || f.endsWith(AGENT_UNIT) || f.endsWith('node.credential'));
  return {
    name: sup ? 'supervisor' : 'systemd',
    async check() {
      actions = [];
      const { host } = ctx;
      if (sup) {
        const pid = supervisorPid(host);
        if (!pid) {
          actions.push({ say: `start the supervisor (kiver node supervise${host.isRealRoot ? '' : ` --root ${host.root}`}): it runs ${[ctx.foreignDockerd ? '' : 'dockerd', withAgent ? 'the agent' : ''].filter(Boolean).join(' and ')}, restarting with backoff`, run: async () => `started the supervisor (pid ${await startSupervisor(host)})` });
        } else if ([...changedFiles].some((f) => f.startsWith(SUPERVISE_DIR))) {
          actions.push({ say: 'reload the supervisor (SIGHUP): restart the programs whose definition changed', run: async () => { process.kill(pid, 'SIGHUP'); return `reloaded the supervisor (pid ${pid})`; } });
        } else if (agentFilesChanged()) {
          actions.push({ say: 'restart the agent (its credential changed)', run: async () => { const a = programPid(host, 'agent'); if (a) process.kill(a, 'SIGTERM'); return 'restarted the agent'; } });
        }
        const dpid = programPid(host, 'dockerd');
        if (pid && dpid && ctx.dockerdRestart && !changedFiles.has(`${SUPERVISE_DIR}/dockerd.json`)) {
          actions.push({
            say: `restart dockerd (${ctx.dockerdRestart}; live-restore keeps containers running)`,
            run: async () => {
              process.kill(dpid, 'SIGTERM');
              await waitFor('dockerd to stop', async () => programPid(host, 'dockerd') !== dpid, 60_000);
              return `restarted dockerd (${ctx.dockerdRestart})`;
            },
          });
        } else if (pid && dpid && ctx.dockerdReload) {
          actions.push({ say: 'reload dockerd (SIGHUP): only reloadable keys changed', run: async () => { process.kill(dpid, 'SIGHUP'); return 'reloaded dockerd'; } });
        } else if (ctx.foreignDockerd && (ctx.dockerdRestart || ctx.dockerdReload)) {
          actions.push({ say: `note: dockerd was not started by Kiver; restart it yourself to apply the new daemon.json (${ctx.dockerdRestart ?? 'reloadable keys'})`, run: async () => 'left the running dockerd alone' });
        }
      } else {
        const dockerActive = await systemctlOk('is-active', '--quiet', 'docker');
        if (changedFiles.size > 0) actions.push({ say: 'systemctl daemon-reload', run: async () => { await run('systemctl', ['daemon-reload']); return 'reloaded systemd'; } });
        if (!dockerActive) actions.push({ say: 'systemctl enable --now docker', run: async () => { await run('systemctl', ['enable', '--now', 'docker']); return 'started docker.service'; } });
        else if (ctx.dockerdRestart) actions.push({ say: `systemctl restart docker (${ctx.dockerdRestart})`, run: async () => { await run('systemctl', ['restart', 'docker']); return 'restarted docker.service'; } });
        else if (ctx.dockerdReload) actions.push({ say: 'systemctl reload docker', run: async () => { await run('systemctl', ['reload', 'docker']); return 'reloaded docker.service'; } });
        if (withAgent) {
          const agentActive = await systemctlOk('is-active', '--quiet', AGENT_UNIT);
          if (!agentActive) actions.push({ say: `systemctl enable --now ${AGENT_UNIT}`, run: async () => { await run('systemctl', ['enable', '--now', AGENT_UNIT]); return `started ${AGENT_UNIT}`; } });
          else if (agentFilesChanged()) actions.push({ say: `systemctl restart ${AGENT_UNIT}`, run: async () => { await run('systemctl', ['restart', AGENT_UNIT]); return `restarted ${AGENT_UNIT} (${SYSTEMD_UNIT_DIR})`; } });
        }
      }
      return actions.map((a) => a.say);
    },
    async apply() {
      const did: string[] = [];
      for (const a of actions) did.push(await a.run());
      await dockerReady(ctx);
      did.push(`Docker answers on ${ctx.host.dockerSocket}`);
      if (withAgent) {
        const { servers, joinToken, node } = ctx.s;
        await waitFor(`node ${node} joining ${servers.join(',')}`, () => nodeJoined(servers, joinToken, node), 90_000);
        did.push(`node ${node} joined ${servers.join(',')}`);
      }
      return did;
    },
  };
}
