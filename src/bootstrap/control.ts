/**
 * The control role of `kiver node init`: an etcd member over TLS (a new cluster, or
 * joined to one with --etcd-join), `kiver server` on that member, scheduled snapshots
 * (`kiver admin snapshot schedule`), and with --with-monitoring the monitoring pair
 * (`kiver monitoring up`) — as systemd units, or programs of Kiver's supervisor.
 *
 * Stacked like kubeadm's default: each server talks to the etcd member on its own host
 * (one store endpoint, so a re-run after other members joined changes nothing).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { isIPv6 } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { randomBytes } from 'node:crypto';
import { Etcd3 } from 'etcd3';
import { run } from '../image/exec.js';
import { KIVER_BIN, SYSTEMD_UNIT_DIR, SUPERVISE_DIR, type NodeHost, type ProcessManager } from './node-host.js';
import { programFile, programPid, readPrograms, startSupervisor, stopSupervisor, supervisorPid, type ProgramDef } from './supervisor.js';
import { nodeFilesStep, removeNodeFile, systemdService, writeNodeFile, type NodeFile } from './units.js';
import { caFiles, leafFiles, PKI_DIR, type LeafSpec } from './pki.js';
import type { Step } from './step.js';

export const CONTROL_DIR = '/var/lib/kiver';
export const ETCD_DATA = `${CONTROL_DIR}/etcd`;
export const SNAPSHOT_DIR = `${CONTROL_DIR}/snapshots`;
export const MONITORING_DIR = `${CONTROL_DIR}/monitoring`;
/** etcd's bootstrap settings (ETCD_INITIAL_CLUSTER…): written once; etcd ignores them once its data dir has a member. */
export const ETCD_ENV = '/etc/kiver/etcd-cluster.env';
export const CONTROL_CONFIG_FILE = '/etc/kiver/control.json';
/** What a joining control node copies from an existing one (--join-from DIR): node path → file name in DIR. */
export const BUNDLE: [string, string][] = [
  [caFiles.cert, 'ca.crt'], [caFiles.key, 'ca.key'],
  [`${CONTROL_DIR}/admin.token`, 'admin.token'], [`${CONTROL_DIR}/join.token`, 'join.token'],
  [`${CONTROL_DIR}/service-secrets.key`, 'service-secrets.key'],
];

export interface ControlSettings {
  node: string;
  /** The address peers, clients and the API are reached at. */
  address: string;
  clientPort: number;
  peerPort: number;
  apiPort: number;
  /** https://host:port of a member of the cluster to join; none = a new cluster. */
  etcdJoin?: string;
  /** A directory with the BUNDLE files (joining). */
  joinFrom?: string;
  snapshotEverySeconds: number;
  snapshotKeep: number;
  withMonitoring: boolean;
}

export interface ControlContext {
  host: NodeHost;
  manager: ProcessManager;
  c: ControlSettings;
}

const hp = (a: string, p: number) => `${isIPv6(a) ? `[${a}]` : a}:${p}`;
export const clientUrl = (c: ControlSettings) => `https://${hp(c.address, c.clientPort)}`;
export const peerUrl = (c: ControlSettings) => `https://${hp(c.address, c.peerPort)}`;
export const apiUrl = (c: ControlSettings) => `http://${hp(c.address, c.apiPort)}`;

export function controlLeaves(c: ControlSettings): LeafSpec[] {
  const sans = [...new Set([c.address, '127.0.0.1', 'localhost', c.node])];
  return [
    { name: 'etcd-member', cn: c.node, sans, usage: 'server+client' },
    { name: 'etcd-client', cn: `kiver-server-${c.node}`, sans: [], usage: 'client' },
  ];
}

/** The TLS files (as paths on this machine) a client of the cluster uses. */
export function clientTls(host: NodeHost) {
  const f = leafFiles('etcd-client');
  return { ca: host.path(f.ca), cert: host.path(f.cert), key: host.path(f.key) };
}

/** `kiver server`'s --store: the local member over TLS with this node's client certificate. */
export function storeUrl(ctx: ControlContext): string {
  const t = clientTls(ctx.host);
  return `etcd://${hp(ctx.c.address, ctx.c.clientPort)}?ca=${t.ca}&cert=${t.cert}&key=${t.key}`;
}

export function etcdArgv(ctx: ControlContext): string[] {
  const { host, c } = ctx;
  const m = leafFiles('etcd-member');
  const [ca, cert, key] = [host.path(m.ca), host.path(m.cert), host.path(m.key)];
  return [
    'etcd', '--name', c.node, '--data-dir', host.path(ETCD_DATA),
    '--listen-client-urls', clientUrl(c), '--advertise-client-urls', clientUrl(c),
    '--listen-peer-urls', peerUrl(c), '--initial-advertise-peer-urls', peerUrl(c),
    '--cert-file', cert, '--key-file', key, '--trusted-ca-file', ca, '--client-cert-auth',
    '--peer-cert-file', cert, '--peer-key-file', key, '--peer-trusted-ca-file', ca, '--peer-client-cert-auth',
    '--logger', 'zap', '--log-level', 'warn',
  ];
}

interface ControlProgram { name: string; unit: string; description: string; order: number; argv: string[]; envFile?: string; after: string[]; notify?: boolean }

export function controlPrograms(ctx: ControlContext): ControlProgram[] {
  const { host, c } = ctx;
  const kiver = [process.execPath, KIVER_BIN];
  const out: ControlProgram[] = [
    { name: 'etcd', unit: 'kiver-etcd.service', description: 'etcd member of the Kiver control plane', order: 5, argv: etcdArgv(ctx), envFile: host.path(ETCD_ENV), after: ['network-online.target'], notify: true },
    { name: 'server', unit: 'kiver-server.service', description: 'Kiver server', order: 15, after: ['kiver-etcd.service'],
      argv: [...kiver, 'server', '--data-dir', host.path(CONTROL_DIR), '--store', storeUrl(ctx), '--listen', hp(c.address, c.apiPort)] },
    { name: 'snapshots', unit: 'kiver-snapshots.service', description: 'Kiver control-plane snapshots', order: 40, after: ['kiver-etcd.service'],
      argv: [...kiver, 'admin', 'snapshot', 'schedule', host.path(SNAPSHOT_DIR), '--every', `${c.snapshotEverySeconds}s`, '--keep', String(c.snapshotKeep), '--store', storeUrl(ctx)] },
  ];
  if (c.withMonitoring) {
    out.push({ name: 'monitoring', unit: 'kiver-monitoring.service', description: 'Kiver monitoring pair (Prometheus, Alertmanager)', order: 45, after: ['kiver-server.service'],
      argv: [...kiver, 'monitoring', 'up', '--dir', host.path(MONITORING_DIR), '--kiver', apiUrl(c), '--token-file', host.path(`${CONTROL_DIR}/admin.token`)] });
  }
  return out;
}

/** Every file the control role writes for its processes: its settings and the units or program files. */
export function controlFiles(ctx: ControlContext): NodeFile[] {
  const { host, c } = ctx;
  const progs = controlPrograms(ctx);
  const files: NodeFile[] = [{
    path: CONTROL_CONFIG_FILE, mode: 0o644,
    content: `${JSON.stringify({ role: 'control', node: c.node, address: c.address, clientUrl: clientUrl(c), peerUrl: peerUrl(c), api: apiUrl(c), manager: ctx.manager, programs: progs.map((p) => (ctx.manager === 'systemd' ? p.unit : p.name)) }, null, 2)}\n`,
  }];
  for (const p of progs) {
    if (ctx.manager === 'systemd') {
      files.push({ path: `${SYSTEMD_UNIT_DIR}/${p.unit}`, mode: 0o644, content: systemdService({ description: p.description, argv: p.argv, after: p.after, envFile: p.envFile, notify: p.notify, killMode: 'control-group' }) });
    } else {
      const def: ProgramDef = { name: p.name, order: p.order, argv: p.argv, ...(p.envFile ? { envFile: p.envFile } : {}) };
      files.push({ path: programFile(host, p.name).slice(host.isRealRoot ? 0 : host.root.length), mode: 0o644, content: `${JSON.stringify(def, null, 2)}\n` });
    }
  }
  return files;
}

/** Joining: the CA, tokens and the service-secret key copied from --join-from (each must match what is here already). */
export function bundleStep(ctx: ControlContext): Step {
  let todo: [string, string][] = [];
  return {
    name: 'control bundle',
    async check() {
      todo = [];
      if (!ctx.c.etcdJoin) return [];
      const missing: string[] = [];
      for (const [dest, name] of BUNDLE) {
        const here = ctx.host.path(dest);
        const from = ctx.c.joinFrom ? `${ctx.c.joinFrom}/${name}` : undefined;
        const have = existsSync(here);
        if (from && existsSync(from)) {
          if (!have) todo.push([from, dest]);
          else if (!readFileSync(here).equals(readFileSync(from))) throw new Error(`${dest} differs from ${from}: this host holds another cluster's ${name}; remove it first`);
        } else if (!have) missing.push(name);
      }
      if (missing.length) throw new Error(`--join-from: ${missing.join(', ')} missing; copy them from a control node (${BUNDLE.map(([d]) => d).join(', ')}) into a directory and pass it`);
      return todo.map(([from, dest]) => `copy ${from} → ${dest} (${dest.endsWith('.crt') ? '0644' : '0600'})`);
    },
    async apply() {
      for (const [from, dest] of todo) writeNodeFile(ctx.host, { path: dest, mode: dest.endsWith('.crt') ? 0o644 : 0o600, content: readFileSync(from, 'utf8') });
      return todo.map(([, dest]) => `copied ${dest}`);
    },
  };
}

/** An etcd client for the cluster at `endpoints`, with this node's client certificate. */
function etcdClient(host: NodeHost, endpoints: string[]): Etcd3 {
  const t = clientTls(host);
  return new Etcd3({
    hosts: endpoints,
    credentials: { rootCertificate: readFileSync(t.ca), privateKey: readFileSync(t.key), certChain: readFileSync(t.cert) },
    dialTimeout: 5000,
    // Members are dialled by IP; their certificates (one CA, ours) also name localhost, which grpc then checks without
    // setting an IP as the TLS server name (Node's DEP0123).
    grpcOptions: { 'grpc.ssl_target_name_override': 'localhost' },
  });
}

const envFile = (vars: Record<string, string>) => `# Written by kiver node init: etcd's bootstrap settings (ignored once the member has data).\n${Object.entries(vars).map(([k, v]) => `${k}=${v}`).join('\n')}\n`;

/**
 * etcd membership: a new cluster of this member, or this member added to the cluster at
 * --etcd-join (member add, once: a re-run finds it by its peer URL). Decided once — when
 * the member has data or the bootstrap file exists, there is nothing to do.
 */
export function membershipStep(ctx: ControlContext): Step {
  const { host, c } = ctx;
  return {
    name: 'etcd membership',
    async check() {
      if (existsSync(host.path(`${ETCD_DATA}/member`)) || existsSync(host.path(ETCD_ENV))) return [];
      if (!c.etcdJoin) return [`a new etcd cluster: ${c.node}=${peerUrl(c)} (${ETCD_ENV})`];
      return [`add member ${c.node} (${peerUrl(c)}) to the cluster at ${c.etcdJoin} (${ETCD_ENV})`];
    },
    async apply() {
      if (!c.etcdJoin) {
        writeNodeFile(host, { path: ETCD_ENV, mode: 0o600, content: envFile({ ETCD_INITIAL_CLUSTER: `${c.node}=${peerUrl(c)}`, ETCD_INITIAL_CLUSTER_STATE: 'new', ETCD_INITIAL_CLUSTER_TOKEN: `kiver-${randomBytes(6).toString('hex')}` }) });
        return [`wrote ${ETCD_ENV}: a new cluster`];
      }
      const client = etcdClient(host, [c.etcdJoin]);
      try {
        const deadline = () => ({ deadline: Date.now() + 10_000 });
        let { members } = await client.cluster.memberList({}, deadline());
        const me = peerUrl(c);
        let mine = members.find((m) => m.peerURLs.includes(me));
        let added = false;
        if (!mine) {
          const other = members.find((m) => !m.name);
          if (other) throw new Error(`member ${other.peerURLs.join(',')} was added but has not started; start it (or remove it) before adding another`);
          const r = await client.cluster.memberAdd({ peerURLs: [me] }, deadline());
          members = r.members;
          mine = r.member;
          added = true;
        }
        const initial = members.map((m) => `${m.ID === mine!.ID ? c.node : m.name}=${m.peerURLs[0]}`).join(',');
        writeNodeFile(host, { path: ETCD_ENV, mode: 0o600, content: envFile({ ETCD_INITIAL_CLUSTER: initial, ETCD_INITIAL_CLUSTER_STATE: 'existing' }) });
        return [`${added ? 'added' : 'found'} member ${c.node} (id ${BigInt(mine.ID).toString(16)}) in the cluster at ${c.etcdJoin}; ${members.length} member(s)`];
      } finally {
        client.close();
      }
    },
  };
}

export function controlFilesStep(ctx: ControlContext, changed: Set<string>): Step {
  return nodeFilesStep(ctx.manager === 'systemd' ? 'units' : 'supervised programs', ctx.host, () => controlFiles(ctx), changed);
}

function httpsJson(url: string, tls: { ca: string; cert: string; key: string }): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { ca: readFileSync(tls.ca), cert: readFileSync(tls.cert), key: readFileSync(tls.key), servername: '', timeout: 3000 }, (res) => {
      let data = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (data += d));
      res.on('end', () => {
        try {
          resolve(JSON.parse(data) as Record<string, unknown>);
        } catch (err) {
          reject(err);
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

/** The local member says healthy over TLS (it has a leader, so the cluster has quorum). */
export async function memberHealthy(ctx: ControlContext): Promise<boolean> {
  const body = await httpsJson(`${clientUrl(ctx.c)}/health`, clientTls(ctx.host)).catch(() => undefined);
  return body?.health === 'true';
}

async function serverReady(ctx: ControlContext): Promise<boolean> {
  try {
    const res = await fetch(`${apiUrl(ctx.c)}/readyz`, { signal: AbortSignal.timeout(3000) });
    await res.arrayBuffer();
    return res.status === 200;
  } catch {
    return false;
  }
}

async function waitFor(what: string, fn: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${timeoutMs / 1000} s`);
    await sleep(250);
  }
}

const systemctlOk = (...args: string[]) => run('systemctl', args, { capture: true }).then(() => true, () => false);

/**
 * Starts what changed: the supervisor (or a reload of it), or systemd units (Debian's
 * own etcd.service disabled: it would take the same ports with its defaults). Then
 * waits until the member is healthy over TLS and the server is ready.
 */
export function controlProcessesStep(ctx: ControlContext, changed: Set<string>): Step {
  type Action = { say: string; run: () => Promise<string> };
  let actions: Action[] = [];
  const sup = ctx.manager === 'supervisor';
  return {
    name: sup ? 'supervisor' : 'systemd',
    async check() {
      actions = [];
      const { host } = ctx;
      const progs = controlPrograms(ctx);
      if (sup) {
        const pid = supervisorPid(host);
        if (!pid) actions.push({ say: `start the supervisor (kiver node supervise${host.isRealRoot ? '' : ` --root ${host.root}`}): it runs ${progs.map((p) => p.name).join(', ')}, restarting with backoff`, run: async () => `started the supervisor (pid ${await startSupervisor(host)})` });
        else if ([...changed].some((f) => f.startsWith(SUPERVISE_DIR))) actions.push({ say: 'reload the supervisor (SIGHUP): start new programs, restart changed ones', run: async () => { process.kill(pid, 'SIGHUP'); return `reloaded the supervisor (pid ${pid})`; } });
        else {
          const down = progs.filter((p) => !programPid(host, p.name));
          // The supervisor restarts a program that exits; one not running now is in its backoff.
          if (down.length) actions.push({ say: `wait for ${down.map((p) => p.name).join(', ')} (the supervisor restarts them with backoff)`, run: async () => 'waited' });
        }
      } else {
        if (changed.size > 0) actions.push({ say: 'systemctl daemon-reload', run: async () => { await run('systemctl', ['daemon-reload']); return 'reloaded systemd'; } });
        // Debian's etcd-server enables etcd.service (a default member on the same ports); masked, even before the package is in.
        // is-enabled prints the state and exits non-zero for most of them: read stdout whatever the status.
        const state = spawnSync('systemctl', ['is-enabled', 'etcd.service'], { encoding: 'utf8' }).stdout?.trim();
        if (state !== 'masked') {
          actions.push({ say: "systemctl mask --now etcd.service (Debian's default member; Kiver runs kiver-etcd.service)", run: async () => { await run('systemctl', ['mask', '--now', 'etcd.service']); return 'masked etcd.service'; } });
        }
        for (const p of progs) {
          if (!(await systemctlOk('is-active', '--quiet', p.unit))) actions.push({ say: `systemctl enable --now ${p.unit}`, run: async () => { await run('systemctl', ['enable', '--now', p.unit]); return `started ${p.unit}`; } });
          else if (changed.has(`${SYSTEMD_UNIT_DIR}/${p.unit}`)) actions.push({ say: `systemctl restart ${p.unit}`, run: async () => { await run('systemctl', ['restart', p.unit]); return `restarted ${p.unit}`; } });
        }
      }
      return actions.map((a) => a.say);
    },
    async apply() {
      const did: string[] = [];
      for (const a of actions) did.push(await a.run());
      await waitFor(`etcd member ${ctx.c.node} healthy at ${clientUrl(ctx.c)}`, () => memberHealthy(ctx), 120_000);
      did.push(`etcd member ${ctx.c.node} healthy over TLS at ${clientUrl(ctx.c)}`);
      await waitFor(`kiver server ready at ${apiUrl(ctx.c)}`, () => serverReady(ctx), 120_000);
      did.push(`kiver server ready at ${apiUrl(ctx.c)}`);
      return did;
    },
  };
}

export interface ControlConfig { node: string; clientUrl: string; peerUrl: string; manager: ProcessManager; programs: string[] }

export function readControlConfig(host: NodeHost): ControlConfig | undefined {
  try {
    return JSON.parse(readFileSync(host.path(CONTROL_CONFIG_FILE), 'utf8')) as ControlConfig;
  } catch {
    return undefined;
  }
}

/** Removes this member from its cluster (asking the member itself); whether it was removed. */
async function removeSelfFromEtcd(host: NodeHost, cc: ControlConfig): Promise<{ removed: boolean; say: string }> {
  const client = etcdClient(host, [cc.clientUrl]);
  try {
    const { members } = await client.cluster.memberList({}, { deadline: Date.now() + 10_000 });
    const me = members.find((m) => m.peerURLs.includes(cc.peerUrl));
    if (!me) return { removed: true, say: 'not a member of the etcd cluster (any more)' };
    if (members.length === 1) return { removed: false, say: 'the last etcd member: the cluster stops with it; its data stays in place' };
    await client.cluster.memberRemove({ ID: me.ID }, { deadline: Date.now() + 10_000 });
    return { removed: true, say: `removed etcd member ${cc.node} (id ${BigInt(me.ID).toString(16)}); ${members.length - 1} member(s) left` };
  } finally {
    client.close();
  }
}

/**
 * `kiver node leave` on a control node, first: the etcd member removed from the cluster,
 * then etcd, the server, snapshots and monitoring stopped and their units/programs
 * removed. A removed member's data cannot rejoin, so it goes; the CA, tokens and
 * snapshots stay unless --purge.
 */
export async function leaveControl(host: NodeHost, step: (name: string, fn: () => Promise<string | undefined>) => Promise<void>, purge: boolean): Promise<void> {
  const cc = readControlConfig(host);
  if (!cc) return;
  let removed = false;
  await step('etcd member', async () => {
    const r = await removeSelfFromEtcd(host, cc);
    removed = r.removed;
    return r.say;
  });
  await step('control plane', async () => {
    if (cc.manager === 'systemd') {
      for (const u of cc.programs) {
        await run('systemctl', ['disable', '--now', u]).catch(() => undefined);
        removeNodeFile(host, `${SYSTEMD_UNIT_DIR}/${u}`);
      }
      await run('systemctl', ['daemon-reload']);
      return `stopped and removed ${cc.programs.join(', ')}`;
    }
    for (const n of cc.programs) removeNodeFile(host, `${SUPERVISE_DIR}/${n}.json`);
    const sup = supervisorPid(host);
    if (sup) {
      if (readPrograms(host).length === 0) await stopSupervisor(host);
      else {
        process.kill(sup, 'SIGHUP');
        await waitFor(`${cc.programs.join(', ')} to stop`, async () => cc.programs.every((n) => !programPid(host, n)), 60_000);
      }
    }
    return `stopped ${cc.programs.join(', ')} and removed their supervised programs`;
  });
  await step('control files', async () => {
    const gone = [CONTROL_CONFIG_FILE, ETCD_ENV].filter((f) => removeNodeFile(host, f));
    if (removed || purge) {
      rmSync(host.path(ETCD_DATA), { recursive: true, force: true });
      gone.push(ETCD_DATA);
    }
    if (purge) {
      for (const d of [PKI_DIR, SNAPSHOT_DIR, MONITORING_DIR, ...BUNDLE.map(([f]) => f)]) rmSync(host.path(d), { recursive: true, force: true });
      gone.push(`${CONTROL_DIR} (CA, tokens, snapshots)`);
    }
    return `removed ${gone.join(', ')}${purge ? '' : `; kept the CA, tokens and snapshots in ${CONTROL_DIR} (--purge removes them)`}`;
  });
}

/** What to do on the next control node (printed after the first one's apply). */
export function bundleHint(ctx: ControlContext): string {
  return `to add a control node: copy ${BUNDLE.map(([d]) => d).join(' ')} into a directory DIR on it and run\n  kiver node init --role control --etcd-join ${clientUrl(ctx.c)} --join-from DIR --address ITS_ADDRESS --yes`;
}
