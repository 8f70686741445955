/**
 * What runs on a node and how: the agent's credential file, the node's settings, and
 * either systemd units or the supervisor's program files. Written only when their
 * content differs; a later step (re)starts what changed.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import Docker from 'dockerode';
import { AGENT_UNIT, CREDENTIAL_FILE, DAEMON_JSON, KIVER_BIN, NODE_CONFIG_FILE, NODE_SECRET_FILE, SYSTEMD_UNIT_DIR, type NodeHost } from './node-host.js';
import { programFile, supervisorRestartArgv, type ProgramDef } from './supervisor.js';
import type { InitContext } from './context.js';
import type { Step } from './step.js';
import { InputError } from '../errors.js';
import { SHIPPER_SETTINGS } from './log-shipper.js';

export interface NodeFile {
  /** Node path. */
  path: string;
  mode: number;
  content: string;
  /** Shown instead of the content (secrets). */
  secret?: boolean;
}

/** The agent's command line on this node. */
export function agentArgv(ctx: InitContext): string[] {
  const { host, s } = ctx;
  return [
    process.execPath, KIVER_BIN, 'agent',
    '--server', s.servers.join(','),
    '--join-token-file', host.path(CREDENTIAL_FILE),
    '--credential-file', host.path(NODE_SECRET_FILE),
    '--node', s.node,
    ...(s.address ? ['--address', s.address] : []),
    '--data-root', host.path(s.dataRoot),
    '--log-root', host.path(s.logRoot),
    '--shipper-config', host.path(SHIPPER_SETTINGS),
    // The Docker watchdog restarts a hung dockerd: through systemd, or by killing it so the supervisor starts it again.
    '--docker-restart-cmd', ctx.manager === 'systemd' ? 'systemctl restart docker' : JSON.stringify(supervisorRestartArgv(host, 'dockerd')),
  ];
}

export function dockerdArgv(host: NodeHost): string[] {
  return [
    'dockerd', '--config-file', host.path(DAEMON_JSON),
    // A test root gets its own socket, pid file and exec root; a real node keeps Docker's defaults.
    ...(host.isRealRoot ? [] : ['-H', `unix://${host.dockerSocket}`, '--pidfile', host.path('/run/docker.pid'), '--exec-root', host.path('/run/docker')]),
  ];
}

export function dockerClientFor(host: NodeHost): Docker {
  return new Docker({ socketPath: host.dockerSocket });
}

export async function dockerAnswers(host: NodeHost, ms = 3000): Promise<boolean> {
  if (!existsSync(host.dockerSocket)) return false;
  let t: NodeJS.Timeout | undefined;
  return Promise.race([
    dockerClientFor(host).ping().then(() => true, () => false),
    new Promise<boolean>((r) => (t = setTimeout(() => r(false), ms))),
  ]).finally(() => clearTimeout(t));
}

/**
 * One ExecStart= argument. systemd expands `%` specifiers and `$VAR`s even inside quotes, so
 * both are doubled; a line break would end the directive, so control characters are refused.
 */
export function quoteArg(a: string): string {
  if (/[\x00-\x1f\x7f]/.test(a)) throw new InputError(`a systemd unit argument cannot hold control characters: ${JSON.stringify(a)}`);
  const escaped = a.replace(/%/g, '%%').replace(/\$/g, '$$$$');
  return /^[A-Za-z0-9_@%$+=:,./?&-]+$/.test(escaped) ? escaped : `"${escaped.replace(/(["\\])/g, '\\$1')}"`;
}

/** A systemd service that runs `argv` and is restarted whenever it exits. */
export function systemdService(o: { description: string; argv: string[]; after: string[]; envFile?: string; notify?: boolean; killMode: 'process' | 'control-group' }): string {
  return [
    '# Written by kiver node init; kiver node leave removes it.',
    '[Unit]',
    `Description=${o.description}`,
    `Wants=${o.after.join(' ')}`,
    `After=${o.after.join(' ')}`,
    '',
    '[Service]',
    ...(o.notify ? ['Type=notify'] : []),
    ...(o.envFile ? [`EnvironmentFile=${o.envFile}`] : []),
    `ExecStart=${o.argv.map(quoteArg).join(' ')}`,
    'Restart=always',
    'RestartSec=2',
    `KillMode=${o.killMode}`,
    '',
    '[Install]',
    'WantedBy=multi-user.target',
    '',
  ].join('\n');
}

function systemdUnit(ctx: InitContext): string {
  // KillMode=process: containers are Docker's; only the agent stops.
  return systemdService({ description: 'Kiver node agent', argv: agentArgv(ctx), after: ['network-online.target', 'docker.service'], killMode: 'process' });
}

/** Every file this role writes for its processes. */
export function nodeFiles(ctx: InitContext, withAgent = true): NodeFile[] {
  const { s, host } = ctx;
  const prog = (d: ProgramDef): NodeFile => ({ path: programFile(host, d.name).slice(host.isRealRoot ? 0 : host.root.length), mode: 0o644, content: `${JSON.stringify(d, null, 2)}\n` });
  const dockerd = prog({ name: 'dockerd', order: 10, argv: dockerdArgv(host), unsetEnv: ['DOCKER_HOST', 'NOTIFY_SOCKET'] });
  if (!withAgent) return ctx.manager === 'supervisor' && !ctx.foreignDockerd ? [dockerd] : [];
  const files: NodeFile[] = [
    { path: CREDENTIAL_FILE, mode: 0o600, content: `${s.joinToken}\n`, secret: true },
    {
      path: NODE_CONFIG_FILE, mode: 0o644,
      content: `${JSON.stringify({ role: 'compute', node: s.node, servers: s.servers, dataRoot: s.dataRoot, logRoot: s.logRoot, manager: ctx.manager }, null, 2)}\n`,
    },
  ];
  if (ctx.manager === 'systemd') {
    files.push({ path: `${SYSTEMD_UNIT_DIR}/${AGENT_UNIT}`, mode: 0o644, content: systemdUnit(ctx) });
    return files;
  }
  if (!ctx.foreignDockerd) files.push(dockerd);
  files.push(prog({ name: 'agent', order: 20, argv: agentArgv(ctx), env: { DOCKER_HOST: `unix://${host.dockerSocket}` } }));
  return files;
}

function differs(host: NodeHost, f: NodeFile): 'create' | 'update' | undefined {
  try {
    return readFileSync(host.path(f.path), 'utf8') === f.content ? undefined : 'update';
  } catch {
    return 'create';
  }
}

export function writeNodeFile(host: NodeHost, f: NodeFile): void {
  const p = host.path(f.path);
  mkdirSync(dirname(p), { recursive: true });
  const tmp = `${p}.kiver-tmp`;
  writeFileSync(tmp, f.content, { mode: f.mode });
  chmodSync(tmp, f.mode);
  renameSync(tmp, p);
}

export function removeNodeFile(host: NodeHost, path: string): boolean {
  const p = host.path(path);
  if (!existsSync(p)) return false;
  rmSync(p, { force: true });
  return true;
}

/** Writes `files()` where they differ; remembers which changed (for the step that restarts processes). */
export function nodeFilesStep(name: string, host: NodeHost, files: () => NodeFile[], changed: Set<string>, before?: () => Promise<void>): Step {
  let todo: { f: NodeFile; what: 'create' | 'update' }[] = [];
  return {
    name,
    async check() {
      await before?.();
      todo = [];
      for (const f of files()) {
        const what = differs(host, f);
        if (what) todo.push({ f, what });
      }
      changed.clear();
      for (const t of todo) changed.add(t.f.path);
      return todo.map(({ f, what }) => `${what} ${f.path} (${`0${f.mode.toString(8)}`}${f.secret ? ', secret' : ''})`);
    },
    async apply() {
      for (const { f } of todo) writeNodeFile(host, f);
      return todo.map(({ f, what }) => `${what === 'create' ? 'wrote' : 'updated'} ${f.path}`);
    },
  };
}

/** Files step: the credential, node settings and unit/program files. Remembers which changed for the services step. */
export function unitFilesStep(ctx: InitContext, changed: Set<string>, withAgent = true): Step {
  return nodeFilesStep(ctx.manager === 'systemd' ? 'units' : 'supervised programs', ctx.host, () => nodeFiles(ctx, withAgent), changed, async () => {
    // dockerd that runs already and was not started by Kiver's supervisor is left alone.
    if (ctx.manager === 'supervisor') {
      const ours = existsSync(programFile(ctx.host, 'dockerd'));
      ctx.foreignDockerd = !ours && (await dockerAnswers(ctx.host));
    }
  });
}
