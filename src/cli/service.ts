import type { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { clientFromEnv } from './config.js';
import { age, format, formatBytes, print, printErr, table } from './output.js';
import { collect, parseBackupPolicy, parseBytes, parseDuration, parseInteger, parseLabels, parseNumber, parseOnNodeLost, parseParams, parsePins } from './flags.js';
import { registerServiceCatalog, roleCells } from './service-catalog.js';
import { InputError, UnavailableError } from '../errors.js';
import { DEFAULTS, MAX_APPLY, type ServiceView } from '../model/service.js';
import { parse as parseYaml } from 'yaml';

import type { ReplicaView } from '../model/replica.js';


function parseEnv(pairs: string[], flag = 'env'): Record<string, string> {
  const env: Record<string, string> = {};
  for (const p of pairs) {
    const i = p.indexOf('=');
    if (i <= 0) throw new InputError(`--${flag}: expected KEY=VALUE, got "${p}"`, flag);
    env[p.slice(0, i)] = p.slice(i + 1);
  }
  return env;
}

/** KEY=VALUE or KEY=@FILE (keeps the value out of the process list and shell history). */
function parseSecretEnv(pairs: string[]): Record<string, string> {
  const env = parseEnv(pairs, 'secret-env');
  for (const [k, v] of Object.entries(env)) {
    if (v.startsWith('@')) {
      try {
        env[k] = readFileSync(v.slice(1), 'utf8').replace(/\n$/, '');
      } catch (err) {
        throw new InputError(`--secret-env ${k}: cannot read ${v.slice(1)} (${(err as NodeJS.ErrnoException).code})`, 'secret-env');
      }
    }
  }
  return env;
}

/** "6379" (Kiver picks the host port) or "16379:6379" or "53/udp". */
function parsePorts(specs: string[]) {
  return specs.map((s) => {
    const m = /^(?:(\d{1,5}):)?(\d{1,5})(?:\/(tcp|udp))?$/.exec(s);
    if (!m) throw new InputError(`--port: expected [HOST:]CONTAINER[/tcp|udp], got "${s}"`, 'ports');
    return { container: Number(m[2]), ...(m[1] ? { host: Number(m[1]) } : {}), ...(m[3] ? { protocol: m[3] as 'tcp' | 'udp' } : {}) };
  });
}


function endpoint(r: ReplicaView): string {
  if (r.ip) return r.ip;
  return r.ports.map((p) => `${p.host}->${p.container}`).join(',') || '-';
}

function replicaTable(rs: ReplicaView[], roles?: ServiceView['roles']): string {
  return table(
    rs.map((r) => [r.id, r.node || '-', r.state, ...(roles ? roleCells(roles, r.ordinal) : []), r.restartCount, (r.containerId ?? '').slice(0, 12) || '-', endpoint(r), age(r.startedAt), r.lastError ?? '']),
    ['REPLICA', 'NODE', 'STATE', ...(roles ? ['ROLE', 'LAG'] : []), 'RESTARTS', 'CONTAINER', 'ADDRESS/PORTS', 'UP', 'LAST ERROR'],
  );
}

function serviceTable(ss: ServiceView[]): string {
  return table(
    ss.map((s) => [
      s.name, s.spec.image, `${s.status.running}/${s.status.desired}`, `${s.spec.cpu} ${s.spec.cpuPolicy}`, formatBytes(s.spec.memory),
      s.status.restarts, s.deleting ? 'deleting' : s.status.pending > 0 ? `${s.status.pending} pending` : '', age(s.createdAt),
    ]),
    ['NAME', 'IMAGE', 'RUNNING', 'CPU', 'MEMORY', 'RESTARTS', 'NOTE', 'AGE'],
  );
}

function detail(s: ServiceView): string {
  const lines = [
    `Name:        ${s.name}`,
    `Image:       ${s.spec.image}${s.spec.type ? `  (type ${s.spec.type}${s.roles ? `, ${s.roles.phase}` : ''})` : ''}`,
    `Command:     ${s.spec.command.length ? JSON.stringify(s.spec.command) : '(image default)'}`,
    `Replicas:    ${s.status.running} running / ${s.status.desired} desired (${s.status.updated} at generation ${s.generation})`,
    `CPU:         ${s.spec.cpu} (${s.spec.cpuPolicy})`,
    `Memory:      ${formatBytes(s.spec.memory)}`,
    `Env:         ${Object.keys(s.spec.env).join(', ') || '-'}`,
    `Secret env:  ${Object.keys(s.spec.secretEnv ?? {}).join(', ') || '-'} (values never shown)`,
    `Ports:       ${s.spec.ports.map((p) => `${p.host ? `${p.host}:` : ''}${p.container}/${p.protocol ?? 'tcp'}`).join(', ') || '-'}`,
    s.spec.app ? `App:         ${s.spec.app}` : '',
    s.spec.constraints ? `Constraints: ${Object.entries(s.spec.constraints).map(([k, v]) => `${k}=${v}`).join(', ')}` : '',
    s.deleting ? 'Status:      deleting' : '',
    '',
    replicaTable(s.replicas, s.roles),
  ];
  return lines.filter((l, i) => l !== '' || i === lines.length - 2).join('\n');
}

/** Polls until every desired replica runs at the current generation (or the deadline passes). */
async function waitReady(name: string, timeoutS: number, quiet: boolean): Promise<ServiceView> {
  const client = clientFromEnv();
  const deadline = Date.now() + timeoutS * 1000;
  let last = '';
  for (;;) {
    const s = await client.get<ServiceView>(`/v1/services/${name}`);
    const line = `${name}: ${s.status.updated}/${s.status.desired} running at generation ${s.generation}`;
    if (!quiet && line !== last) printErr(line);
    last = line;
    if (s.status.updated === s.status.desired && s.replicas.filter((r) => r.desired === 'run').length === s.status.desired) return s;
    if (Date.now() > deadline) {
      const why = s.replicas.filter((r) => r.state !== 'running').map((r) => `${r.id} ${r.state}${r.lastError ? `: ${r.lastError}` : ''}`);
      throw new UnavailableError(`${name} not ready after ${timeoutS}s: ${why.join('; ') || 'waiting for replicas'}`);
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}

export function registerService(program: Command): void {
  const svc = program.command('service').alias('svc').description('create and manage services');

  svc.command('create <name>')
    .description('create a service (default 3 replicas, spread over nodes)')
    .option('--type <type>', 'app (default: your --image) | mysql | redis (managed: primary + replicas, failover; see kiver catalog ls)')
    .option('--param <name=value>', "a parameter of the type, e.g. max_connections=500 (repeatable)", collect, [])
    .option('--image <ref>', 'container image, e.g. kiver/redis:latest (type app)')
    .option('--cmd <command>', 'command, run with /bin/sh -c')
    .option('--replicas <n>', `replica count (default ${DEFAULTS.replicas})`)
    .option('--cpu <cores>', `CPU cores per replica, reserved by the scheduler; with shares also the weight (default ${DEFAULTS.cpu})`)
    .option('--cpu-policy <policy>', `shares | cpuset | quota (default ${DEFAULTS.cpuPolicy})`)
    .option('--memory <size>', `memory limit per replica, e.g. 512m (default ${DEFAULTS.memory / 2 ** 20}m)`)
    .option('--env <KEY=VALUE>', 'environment variable (repeatable)', collect, [])
    .option('--secret-env <KEY=VALUE|KEY=@FILE>', 'secret variable, encrypted at rest, never shown (repeatable)', collect, [])
    .option('--port <[host:]container>', 'port to publish (repeatable); host port chosen by Kiver if omitted', collect, [])
    .option('--local-data', 'replicas own data on their node: never moved when the node is lost or drained')
    .option('--constraint <key=value>', 'place replicas only on nodes with this label (repeatable: all must match)', collect, [])
    .option('--on-node-lost <policy>', 'replace (default; local-data: wait) | wait: at most one copy, stopped by a cut-off agent before it moves')
    .option('--backup-schedule <cron>', 'scheduled backups (cron, e.g. "0 2 * * *"; see kiver backup policy set)')
    .option('--backup-tz <zone>', 'time zone of --backup-schedule (default UTC)')
    .option('--backup-target <name>', 'backup target of the schedule')
    .option('--backup-keep <n>', 'completed backups kept at least (default 7)')
    .option('--backup-keep-days <n>', 'completed backups younger than this many days are kept too')
    .option('--app <name>', "the app it belongs to: replicas take addresses from the service's pools, then the app's, then global pools")
    .option('--ip <ordinal=address>', 'pin an address to an ordinal (repeatable)', collect, [])
    .option('--ip-grace <duration>', 'how long a deleted replica keeps its address for a re-created service (default 10m)')
    .option('--wait', 'wait until every replica runs')
    .option('--timeout <seconds>', 'with --wait', '120')
    .action(async (name: string, o, cmd: Command) => {
      const constraints = parseLabels(o.constraint, 'constraint');
      // Only what the user gave: defaults live on the server (model/service.ts applyDefaults).
      const body: Record<string, unknown> = { name };
      if (o.image !== undefined) body.image = o.image;
      if (o.type !== undefined) body.type = o.type;
      if (o.param.length) body.params = parseParams(o.param);
      if (o.cmd) body.command = ['/bin/sh', '-c', o.cmd];
      if (o.env.length) body.env = parseEnv(o.env);
      if (o.secretEnv.length) body.secretEnv = parseSecretEnv(o.secretEnv);
      if (o.port.length) body.ports = parsePorts(o.port);
      if (o.cpu !== undefined) body.cpu = parseNumber(o.cpu, 'cpu');
      if (o.cpuPolicy !== undefined) body.cpuPolicy = o.cpuPolicy;
      if (o.memory !== undefined) body.memory = parseBytes(o.memory);
      if (o.replicas !== undefined) body.replicas = parseInteger(o.replicas, 'replicas');
      if (o.localData) body.localData = true;
      if (Object.keys(constraints).length) body.constraints = constraints;
      if (o.onNodeLost) body.onNodeLost = parseOnNodeLost(o.onNodeLost);
      const backup = parseBackupPolicy({ schedule: o.backupSchedule, tz: o.backupTz, target: o.backupTarget, keep: o.backupKeep, keepDays: o.backupKeepDays }, 'backup-');
      if (backup) body.backup = backup;
      if (o.app) body.app = o.app;
      if (o.ip.length) body.ips = parsePins(o.ip);
      if (o.ipGrace !== undefined) body.ipGraceSeconds = parseDuration(o.ipGrace, 'ip-grace');
      let s = await clientFromEnv().post<ServiceView>('/v1/services', body);
      if (o.wait) s = await waitReady(name, parseNumber(o.timeout, 'timeout'), format(cmd) === 'json');
      print(cmd, s, () => (o.wait ? detail(s) : `service ${name} created (${s.spec.replicas} replicas)`));
    });

  svc.command('apply')
    .description('create or update every service in a YAML/JSON file (a list of specs) in one request; unchanged ones are left alone')
    .requiredOption('-f, --file <file>', "the file ('-' for stdin): a list of service specs as POST /v1/services takes them (memory may be 64Mi)")
    .action(async (o: { file: string }, cmd: Command) => {
      const services = readServiceList(o.file === '-' ? readFileSync(0, 'utf8') : readFileSync(o.file, 'utf8'));
      const total = { created: [] as string[], updated: [] as string[], unchanged: [] as string[] };
      for (let i = 0; i < services.length; i += MAX_APPLY) {
        const r = await clientFromEnv().post<typeof total>('/v1/services/apply', { services: services.slice(i, i + MAX_APPLY) });
        for (const k of ['created', 'updated', 'unchanged'] as const) total[k].push(...r[k]);
      }
      print(cmd, total, () => `${total.created.length} created, ${total.updated.length} updated, ${total.unchanged.length} unchanged`);
    });
  registerServiceCatalog(svc);

  svc.command('ls').alias('list').description('list services').action(async (_o, cmd: Command) => {
    const ss = await clientFromEnv().get<ServiceView[]>('/v1/services');
    print(cmd, ss, () => serviceTable(ss));
  });

  svc.command('get <name>').description('show a service and its replicas').action(async (name: string, _o, cmd: Command) => {
    const s = await clientFromEnv().get<ServiceView>(`/v1/services/${encodeURIComponent(name)}`);
    print(cmd, s, () => detail(s));
  });

  svc.command('scale <name> <replicas>')
    .description('set the replica count')
    .option('--wait', 'wait until every replica runs')
    .option('--timeout <seconds>', 'with --wait', '120')
    .action(async (name: string, n: string, o, cmd: Command) => {
      let s = await clientFromEnv().put<ServiceView>(`/v1/services/${encodeURIComponent(name)}/scale`, { replicas: parseInteger(n, 'replicas') });
      if (o.wait) s = await waitReady(name, parseNumber(o.timeout, 'timeout'), format(cmd) === 'json');
      print(cmd, s, () => `service ${name} scaled to ${s.spec.replicas}`);
    });

  svc.command('update <name>')
    .description('change a service; containers are replaced one replica at a time')
    .option('--image <ref>', 'new image')
    .option('--cmd <command>', 'new command, run with /bin/sh -c')
    .option('--cpu <cores>', 'CPU cores per replica')
    .option('--cpu-policy <policy>', 'shares | cpuset | quota')
    .option('--memory <size>', 'memory limit per replica')
    .option('--env <KEY=VALUE>', 'replace the environment (repeatable)', collect, [])
    .option('--secret-env <KEY=VALUE|KEY=@FILE>', 'replace the secret variables (repeatable)', collect, [])
    .option('--on-node-lost <policy>', 'replace | wait (takes effect without recreating containers)')
    .option('--wait', 'wait until the rollout finishes')
    .option('--timeout <seconds>', 'with --wait', '300')
    .action(async (name: string, o, cmd: Command) => {
      const patch: Record<string, unknown> = {};
      if (o.image) patch.image = o.image;
      if (o.cmd) patch.command = ['/bin/sh', '-c', o.cmd];
      if (o.cpu) patch.cpu = parseNumber(o.cpu, 'cpu');
      if (o.cpuPolicy) patch.cpuPolicy = o.cpuPolicy;
      if (o.memory) patch.memory = parseBytes(o.memory);
      if (o.env.length) patch.env = parseEnv(o.env);
      if (o.secretEnv.length) patch.secretEnv = parseSecretEnv(o.secretEnv);
      if (o.onNodeLost) patch.onNodeLost = parseOnNodeLost(o.onNodeLost);
      if (Object.keys(patch).length === 0) throw new InputError('nothing to update: give at least one of --image, --cmd, --cpu, --cpu-policy, --memory, --env, --on-node-lost');
      let s = await clientFromEnv().patch<ServiceView>(`/v1/services/${encodeURIComponent(name)}`, patch);
      if (o.wait) s = await waitReady(name, parseNumber(o.timeout, 'timeout'), format(cmd) === 'json');
      print(cmd, s, () => `service ${name} updated (generation ${s.generation})`);
    });

  svc.command('delete <name>').alias('rm')
    .description('delete a service; its data directories stay unless --purge')
    .option('--purge', 'also delete the data and log directories')
    .action(async (name: string, o, cmd: Command) => {
      const res = await clientFromEnv().delete<unknown>(`/v1/services/${encodeURIComponent(name)}${o.purge ? '?purge=true' : ''}`);
      print(cmd, res, () => `service ${name} deleting${o.purge ? ' (purging data)' : ' (data directories kept)'}`);
    });
}

/** A YAML/JSON list of service specs (or `{ services: [...] }`); a memory like "64Mi" becomes bytes. */
function readServiceList(text: string): Record<string, unknown>[] {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new InputError(`--file: not YAML or JSON (${(err as Error).message.split('\n')[0]})`, 'file');
  }
  const list = Array.isArray(doc) ? doc : (doc as { services?: unknown } | null)?.services;
  if (!Array.isArray(list) || list.length === 0) throw new InputError('--file: expected a non-empty list of services', 'file');
  return list.map((e, i) => {
    if (!e || typeof e !== 'object' || Array.isArray(e)) throw new InputError(`--file: services/${i} is not an object`, `services/${i}`);
    const spec = { ...(e as Record<string, unknown>) };
    if (typeof spec.memory === 'string') spec.memory = parseBytes(spec.memory, `services/${i}/memory`);
    return spec;
  });
}
