/**
 * Test hosts: N "hosts" on this machine, for tests that need several nodes (node loss,
 * drain, the Docker watchdog) and for trying things by hand. See docs/test-hosts.md.
 *
 *   root namespace:  bridge kvb<id> holding 10.A.B.1/24  (a server here listens on it)
 *        │ veth kvb<id>h<i>
 *   host i:          netns kvh<id>-<name>, eth0 = 10.A.B.(10+i)/24, default via .1,
 *                    its own dockerd (data-root, exec-root, pidfile, socket, docker0
 *                    10.A.(B+1+i).1/24, live-restore) and optionally its own `kiver agent`.
 *
 * Everything a run creates lives in one temp dir ($TMPDIR/kvh-<id>) whose hosts.json
 * describes it, so another process can act on it (the `restart-dockerd` CLI command the
 * Docker watchdog test uses as its restart command) or tear it down (`down`, sweepStale()).
 * Processes are found through /proc (by pidfile/argv, by network namespace), never by a
 * broad name. destroy() is idempotent and checks that nothing is left.
 *
 * Root only; needs ip, nsenter, iptables, dockerd, umount.
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, createReadStream, createWriteStream, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, statSync, unlinkSync, writeFileSync, rmdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import Docker from 'dockerode';
import {
  cmd, type CmdResult, intToIp, ipToInt, isAlive, killAndWait, linkNames, listProcs, mountsUnder, netnsNames, overlaps, parsePrefix,
  procStart, selfAndAncestors, unmountUnder, usedPrefixes, waitGone, withDescendants, type Proc,
} from './hosts-sys.js';

export const HOSTS_JS = fileURLToPath(import.meta.url);
/** bin/kiver.js of this checkout (dist/test/harness/hosts.js → ../../../bin). */
export const KIVER_BIN = resolve(dirname(HOSTS_JS), '../../../bin/kiver.js');

const RUN_PREFIX = 'kvh-'; // $TMPDIR/kvh-<id>
const NETNS_PREFIX = 'kvh'; // kvh<id>-<host name>
const LINK_PREFIX = 'kvb'; // bridge kvb<id>, veths kvb<id>h<i>
const RULE_COMMENT = 'kiver-test-hosts:';
const ID_RE = /^[0-9a-f]{6}$/;
const MAX_HOSTS = 15;

export interface AgentConfig {
  servers: string[];
  token: string;
  /** extra `kiver agent` arguments */
  args: string[];
  /** extra environment */
  env: Record<string, string>;
}

interface HostState {
  name: string;
  index: number;
  netns: string;
  veth: string;
  ip: string;
  /** docker0 inside the host: --bip */
  bip: string;
  dir: string;
  agent?: AgentConfig;
}

type Owner = { kind: 'process'; pid: number; start: number } | { kind: 'manual' };

interface RunState {
  version: 1;
  id: string;
  dir: string;
  owner: Owner;
  createdAt: string;
  bridge: string;
  bridgeIp: string;
  prefixLen: number;
  /** the /20 this run uses: bridge /24 + one /24 per host's docker0 */
  block: string;
  iptables: boolean;
  dockerdArgs: string[];
  hosts: HostState[];
}

export interface CreateHostsOptions {
  /** Host (and Kiver node) names; default host-0, host-1, ... */
  names?: string[];
  /** Images copied from the root dockerd into every host; default ['kiver/busybox:latest']; [] for none. */
  images?: string[];
  /** dockerd manages iptables inside each host's namespace (own tables; needed for -p); default true. */
  iptables?: boolean;
  /** Extra dockerd arguments for every host. */
  dockerdArgs?: string[];
  /** Root daemon to copy images from; default DOCKER_HOST or /var/run/docker.sock. */
  rootDocker?: Docker;
  /** Left running after this process exits (the `up` CLI): not torn down by the exit hook or sweepStale(). */
  manual?: boolean;
  /** Progress lines (default: none). */
  log?: (line: string) => void;
}

export interface HostsTimings {
  networkMs: number;
  dockerdMs: number;
  imageSaveMs: number;
  imageLoadMs: number;
  totalMs: number;
}

function pingWithin(docker: Docker, ms: number): Promise<boolean> {
  let t: NodeJS.Timeout | undefined;
  return Promise.race([
    docker.ping().then(() => true, () => false),
    new Promise<boolean>((r) => (t = setTimeout(() => r(false), ms))),
  ]).finally(() => clearTimeout(t));
}

function tail(file: string, lines = 15): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

function removeStalePidfile(file: string): void {
  let pid: number;
  try {
    pid = Number(readFileSync(file, 'utf8').trim());
  } catch {
    return;
  }
  if (!(pid > 0) || !isAlive(pid)) rmSync(file, { force: true });
}

/**
 * Starts argv in its own session with stdout/stderr appended to logFile, not waited
 * for (it outlives its starter); spawnError() tells whether it could not start at all.
 */
function spawnDetached(argv: string[], logFile: string, env: NodeJS.ProcessEnv) {
  const fd = openSync(logFile, 'a');
  const child = spawn(argv[0], argv.slice(1), { detached: true, stdio: ['ignore', fd, fd], env });
  closeSync(fd);
  let error: Error | undefined;
  child.on('error', (e) => (error = e));
  child.unref();
  return { child, spawnError: () => error };
}

function statusCode(err: unknown): number | undefined {
  return (err as { statusCode?: number }).statusCode;
}

/** One test host: a network namespace with its own dockerd and, when started, its own kiver agent. */
export class TestHost {
  readonly docker: Docker;

  constructor(private readonly hosts: TestHosts, readonly state: HostState) {
    this.docker = new Docker({ socketPath: this.dockerSocket });
  }

  get name(): string { return this.state.name; }
  get index(): number { return this.state.index; }
  /** Address on the shared bridge; what other hosts and the root namespace reach it by. */
  get ip(): string { return this.state.ip; }
  get netns(): string { return this.state.netns; }
  get netnsPath(): string { return `/var/run/netns/${this.state.netns}`; }
  get dir(): string { return this.state.dir; }
  get dockerSocket(): string { return join(this.dir, 'docker.sock'); }
  get dockerHost(): string { return `unix://${this.dockerSocket}`; }
  get dockerdLogFile(): string { return join(this.dir, 'dockerd.log'); }
  get agentLogFile(): string { return join(this.dir, 'agent.log'); }
  /** `kiver agent --data-root` / `--log-root` of this host. */
  get dataRoot(): string { return join(this.dir, 'data'); }
  get logRoot(): string { return join(this.dir, 'log'); }
  private get dockerDataRoot(): string { return join(this.dir, 'docker'); }
  private get execRoot(): string { return join(this.dir, 'x'); }
  private get pidfile(): string { return join(this.dir, 'dockerd.pid'); }

  /** argv that runs `argv` inside this host's network namespace. */
  nsenter(argv: string[]): string[] {
    return ['nsenter', `--net=${this.netnsPath}`, '--', ...argv];
  }

  /** Runs a command in this host's network namespace. */
  exec(argv: string[], opts: { allowFail?: boolean; timeoutMs?: number } = {}): Promise<CmdResult> {
    return cmd(this.nsenter(argv), opts);
  }

  /** The dockerd command line (without nsenter); the same on every (re)start. */
  dockerdArgv(): string[] {
    const s = this.hosts.state;
    return [
      'dockerd',
      '--config-file', join(s.dir, 'daemon.json'), // never the machine's /etc/docker/daemon.json
      '--data-root', this.dockerDataRoot,
      '--exec-root', this.execRoot,
      '--pidfile', this.pidfile,
      '-H', this.dockerHost,
      '--bip', this.state.bip,
      '--live-restore',
      '--userland-proxy=false',
      `--iptables=${s.iptables}`,
      ...s.dockerdArgs,
    ];
  }

  /** The argv another process (e.g. the Docker watchdog) runs to restart this host's dockerd. */
  get restartDockerdCommand(): string[] {
    return [process.execPath, HOSTS_JS, 'restart-dockerd', this.hosts.dir, this.name];
  }

  /** Live processes of this host: anything in its namespace or naming its directory, and their descendants. */
  processes(procs = listProcs()): Proc[] {
    let ino: number | undefined;
    try {
      ino = statSync(this.netnsPath).ino;
    } catch {
      /* namespace gone */
    }
    const marker = this.dir + '/';
    const self = selfAndAncestors();
    const roots = procs.filter((p) => !self.has(p.pid) && p.argv.length > 0 && ((ino !== undefined && p.netns === ino) || p.argv.some((a) => a.includes(marker))));
    const pids = withDescendants(roots.map((p) => p.pid), procs, self);
    return procs.filter((p) => pids.has(p.pid) && p.state !== 'Z');
  }

  private findProc(match: (argv: string[]) => boolean): number | undefined {
    return listProcs().find((p) => p.state !== 'Z' && match(p.argv))?.pid;
  }

  /** pid of this host's dockerd, if it runs. */
  dockerdPid(): number | undefined {
    return this.findProc((a) => (a[0] ?? '').endsWith('dockerd') && a.includes(this.pidfile));
  }

  /** pid of this host's containerd (started by its dockerd), if it runs. */
  containerdPid(): number | undefined {
    return this.findProc((a) => (a[0] ?? '').endsWith('containerd') && a.some((x) => x.startsWith(this.execRoot + '/')));
  }

  /** True when this host's dockerd answers a ping within ms. */
  dockerAnswers(ms = 2000): Promise<boolean> {
    return pingWithin(this.docker, ms);
  }

  /** Starts this host's dockerd (detached, in its namespace) and waits until it answers. */
  async startDockerd(timeoutMs = 60_000): Promise<void> {
    if (this.dockerdPid() !== undefined) {
      if (await this.dockerAnswers(5000)) return;
      throw new Error(`dockerd of ${this.name} runs (pid ${this.dockerdPid()}) but does not answer`);
    }
    mkdirSync(this.dir, { recursive: true });
    // A killed dockerd's (and containerd's) pidfile stays behind, and its pid can still be a
    // zombie: dockerd would refuse to start ("pid file found") or wait for a dead containerd.
    for (const f of [this.pidfile, join(this.execRoot, 'containerd', 'containerd.pid')]) removeStalePidfile(f);
    const env = { ...process.env };
    delete env.DOCKER_HOST;
    delete env.NOTIFY_SOCKET;
    const { child, spawnError } = spawnDetached(this.nsenter(this.dockerdArgv()), this.dockerdLogFile, env);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (await this.dockerAnswers(1000)) return;
      const dockerdErr = spawnError();
      if (dockerdErr) throw new Error(`cannot start dockerd for ${this.name}: ${dockerdErr.message}`);
      if (child.exitCode !== null || child.signalCode !== null || (child.pid !== undefined && !isAlive(child.pid))) {
        throw new Error(`dockerd of ${this.name} exited (${child.exitCode ?? child.signalCode}); ${this.dockerdLogFile}:\n${tail(this.dockerdLogFile)}`);
      }
      if (Date.now() > deadline) throw new Error(`dockerd of ${this.name} did not answer within ${timeoutMs} ms; ${this.dockerdLogFile}:\n${tail(this.dockerdLogFile)}`);
      await sleep(50);
    }
  }

  /**
   * Sends `signal` to this host's dockerd. SIGKILL waits until dockerd and its containerd
   * are gone (containerd dies with it; container shims and containers keep running).
   */
  async killDockerd(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const pid = this.dockerdPid();
    if (pid === undefined) return;
    const containerd = this.containerdPid();
    process.kill(pid, signal);
    if (signal === 'SIGKILL') {
      const left = await waitGone([pid, ...(containerd ? [containerd] : [])], 10_000);
      if (left.length > 0) await killAndWait(left, 'SIGKILL', 5000);
    }
  }

  /** Freezes / thaws dockerd (SIGSTOP / SIGCONT): a hung daemon. */
  async pauseDockerd(): Promise<void> { await this.killDockerd('SIGSTOP'); }
  async resumeDockerd(): Promise<void> { await this.killDockerd('SIGCONT'); }

  /** Stops dockerd like `systemctl stop docker`: SIGTERM (and SIGCONT, in case it is frozen), SIGKILL after graceMs. */
  async stopDockerd(graceMs = 10_000): Promise<void> {
    const pid = this.dockerdPid();
    if (pid === undefined) return;
    const containerd = this.containerdPid();
    const pids = [pid, ...(containerd ? [containerd] : [])];
    try {
      process.kill(pid, 'SIGTERM');
      process.kill(pid, 'SIGCONT');
    } catch {
      /* gone */
    }
    const left = await waitGone(pids, graceMs);
    if (left.length > 0) await killAndWait(left, 'SIGKILL', 5000);
  }

  /** Like `systemctl restart docker`: stop (if running), start, wait until it answers. Containers survive (live-restore). */
  async restartDockerd(): Promise<void> {
    await this.stopDockerd();
    await this.startDockerd();
  }

  /** Loads an image tar (from `docker save`) into this host's dockerd. */
  async loadImageTar(tar: string): Promise<void> {
    const res = await this.docker.loadImage(createReadStream(tar));
    await new Promise<void>((ok, fail) => this.docker.modem.followProgress(res, (err: Error | null) => (err ? fail(err) : ok())));
  }

  /** Force-removes every container of this host's dockerd. */
  async removeAllContainers(): Promise<number> {
    const list = await this.docker.listContainers({ all: true });
    await Promise.all(list.map(async (c) => {
      try {
        await this.docker.getContainer(c.Id).remove({ force: true, v: true });
      } catch (err) {
        if (statusCode(err) !== 404 && statusCode(err) !== 409) throw err;
      }
    }));
    return list.length;
  }

  // -------------------------------------------------------------------------
  // the agent

  /** pid of this host's `kiver agent`, if it runs. */
  agentPid(): number | undefined {
    return this.findProc((a) => a.includes(KIVER_BIN) && a.includes('agent') && a.includes(this.dataRoot));
  }

  agentLog(): string {
    try {
      return readFileSync(this.agentLogFile, 'utf8');
    } catch {
      return '';
    }
  }

  /**
   * Starts `kiver agent` in this host's namespace against `servers` (reach the root
   * namespace at hosts.bridgeIp), with DOCKER_HOST = this host's dockerd, and waits until
   * it has joined. The configuration is kept, so start() after powerOff() restarts it.
   */
  async startAgent(cfg: { servers: string | string[]; token: string; args?: string[]; env?: Record<string, string> }, timeoutMs = 30_000): Promise<void> {
    this.state.agent = {
      servers: typeof cfg.servers === 'string' ? cfg.servers.split(',') : cfg.servers,
      token: cfg.token, args: cfg.args ?? [], env: cfg.env ?? {},
    };
    this.hosts.save();
    await this.spawnAgent(timeoutMs);
  }

  private async spawnAgent(timeoutMs: number): Promise<void> {
    const a = this.state.agent;
    if (!a) throw new Error(`host ${this.name} has no agent configuration; call startAgent()`);
    if (this.agentPid() !== undefined) return;
    const argv = [
      process.execPath, KIVER_BIN, 'agent', '--server', a.servers.join(','), '--node', this.name, '--address', this.ip,
      '--data-root', this.dataRoot, '--log-root', this.logRoot, ...a.args,
    ];
    const env: NodeJS.ProcessEnv = {
      ...process.env, KIVER_LOG_LEVEL: 'info', ...a.env,
      DOCKER_HOST: this.dockerHost, KIVER_JOIN_TOKEN: a.token, KIVER_HOME: join(this.dir, 'home'),
    };
    const offset = this.agentLog().length;
    const { child, spawnError } = spawnDetached(this.nsenter(argv), this.agentLogFile, env);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.agentLog().slice(offset).includes(`Kiver agent ${this.name} joined`)) return;
      const agentErr = spawnError();
      if (agentErr) throw new Error(`cannot start the agent of ${this.name}: ${agentErr.message}`);
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(`agent of ${this.name} exited (${child.exitCode ?? child.signalCode}):\n${this.agentLog().slice(offset).slice(-3000)}`);
      }
      if (Date.now() > deadline) throw new Error(`agent of ${this.name} did not join within ${timeoutMs} ms:\n${this.agentLog().slice(offset).slice(-3000)}`);
      await sleep(50);
    }
  }

  /** Stops the agent (SIGTERM, SIGKILL after graceMs). Its containers keep running. */
  async stopAgent(graceMs = 10_000): Promise<void> {
    const pid = this.agentPid();
    if (pid === undefined) return;
    const left = await killAndWait([pid], 'SIGTERM', graceMs);
    if (left.length > 0) await killAndWait(left, 'SIGKILL', 5000);
  }

  /** kill -9 of the agent. */
  async killAgent(): Promise<void> {
    const pid = this.agentPid();
    if (pid !== undefined) await killAndWait([pid], 'SIGKILL');
  }

  // -------------------------------------------------------------------------
  // the whole host

  /** kill -9 of the agent and dockerd; containers keep running (live-restore), the network stays up. */
  async kill(): Promise<void> {
    await this.killAgent();
    await this.killDockerd('SIGKILL');
  }

  /**
   * The host dies: agent, dockerd, containerd, every container and every other process in
   * its namespace get SIGKILL, and its link to the bridge goes down. start() boots it again.
   */
  async powerOff(): Promise<void> {
    await this.kill();
    const sockets = this.shimSockets();
    for (let round = 0; round < 3; round++) {
      const pids = this.processes().map((p) => p.pid);
      if (pids.length === 0) break;
      const left = await killAndWait(pids, 'SIGKILL', 10_000);
      if (left.length > 0 && round === 2) throw new Error(`processes of ${this.name} survive SIGKILL: ${left.join(', ')}`);
    }
    this.removeShimSockets(sockets);
    await this.disconnect();
  }

  /** Takes the host off the bridge (its veth goes down): a network partition. */
  async disconnect(): Promise<void> {
    await cmd(['ip', 'link', 'set', this.state.veth, 'down'], { allowFail: true });
  }

  /** Puts the host back on the bridge. */
  async connect(): Promise<void> {
    await cmd(['ip', 'link', 'set', this.state.veth, 'up']);
  }

  /**
   * Brings the host (back) up: link up, dockerd, and the agent if one was started before
   * (agent: false leaves it off). Containers with a restart policy come back as after a reboot.
   */
  async start(opts: { agent?: boolean } = {}): Promise<void> {
    await this.connect();
    await this.startDockerd();
    if (opts.agent !== false && this.state.agent) await this.spawnAgent(30_000);
  }

  /** Unix sockets of this host's container shims (containerd leaves them when a shim is killed). */
  shimSockets(): string[] {
    const dir = join(this.execRoot, 'containerd', 'daemon', 'io.containerd.runtime.v2.task');
    const out: string[] = [];
    let namespaces: string[] = [];
    try {
      namespaces = readdirSync(dir);
    } catch {
      return out;
    }
    for (const ns of namespaces) {
      let ids: string[] = [];
      try {
        ids = readdirSync(join(dir, ns));
      } catch {
        continue;
      }
      for (const id of ids) {
        try {
          const addr = readFileSync(join(dir, ns, id, 'address'), 'utf8').trim().replace(/^unix:\/\//, '');
          if (addr.startsWith('/run/containerd/s/')) out.push(addr);
        } catch {
          /* no address file */
        }
      }
    }
    return out;
  }

  /** Removes shim sockets no live process has open (their shim is dead). */
  removeShimSockets(sockets: string[]): void {
    for (const s of sockets) {
      try {
        unlinkSync(s);
      } catch {
        /* gone */
      }
    }
  }

  /** Container ids this host's dockerd knows (from its data-root). */
  containerIds(): string[] {
    try {
      return readdirSync(join(this.dockerDataRoot, 'containers')).filter((n) => /^[0-9a-f]{64}$/.test(n));
    } catch {
      return [];
    }
  }
}

/** A set of test hosts on one bridge. */
export class TestHosts {
  readonly hosts: TestHost[];
  timings: HostsTimings = { networkMs: 0, dockerdMs: 0, imageSaveMs: 0, imageLoadMs: 0, totalMs: 0 };
  private destroying?: Promise<void>;
  private readonly exitHook = () => this.destroyFromExitHook();
  /** what destroy() must verify is gone (collected before the run dir disappears) */
  private readonly seen = { containerIds: new Set<string>(), shimSockets: new Set<string>() };

  constructor(readonly state: RunState, private readonly owned: boolean) {
    this.hosts = state.hosts.map((h) => new TestHost(this, h));
  }

  get id(): string { return this.state.id; }
  get dir(): string { return this.state.dir; }
  get bridge(): string { return this.state.bridge; }
  /** The root namespace's address on the bridge: listen here (or on 0.0.0.0) to be reachable from every host. */
  get bridgeIp(): string { return this.state.bridgeIp; }
  get cidr(): string { return `${intToIp(ipToInt(this.state.bridgeIp) & 0xffffff00)}/${this.state.prefixLen}`; }

  host(name: string): TestHost {
    const h = this.hosts.find((x) => x.name === name);
    if (!h) throw new Error(`no test host ${name} (have ${this.hosts.map((x) => x.name).join(', ')})`);
    return h;
  }

  /** URL of a server in the root namespace listening on bridgeIp:port. */
  serverUrl(port: number): string {
    return `http://${this.bridgeIp}:${port}`;
  }

  save(): void {
    writeFileSync(join(this.dir, 'hosts.json'), JSON.stringify(this.state, null, 2) + '\n', { mode: 0o600 });
  }

  /** Opens a run created by createHosts() (in this or another process) from its directory. */
  static open(dir: string): TestHosts {
    const state = JSON.parse(readFileSync(join(dir, 'hosts.json'), 'utf8')) as RunState;
    if (state.version !== 1) throw new Error(`${dir}/hosts.json: unknown version ${state.version}`);
    return new TestHosts(state, false);
  }

  /** Is the process that created this run gone (and the run not a manual one)? */
  get stale(): boolean {
    const o = this.state.owner;
    return o.kind === 'process' && !isAlive(o.pid, o.start);
  }

  // -------------------------------------------------------------------------
  // set-up

  async setUp(opts: CreateHostsOptions): Promise<void> {
    const log = opts.log ?? (() => undefined);
    const t0 = Date.now();
    await this.setUpNetwork();
    this.timings.networkMs = Date.now() - t0;
    log(`network: bridge ${this.bridge} ${this.bridgeIp}/${this.state.prefixLen}, ${this.hosts.length} namespaces (${this.timings.networkMs} ms)`);
    writeFileSync(join(this.dir, 'daemon.json'), '{}\n');
    const t1 = Date.now();
    await Promise.all(this.hosts.map((h) => h.startDockerd()));
    this.timings.dockerdMs = Date.now() - t1;
    log(`dockerd answers on ${this.hosts.length} hosts (${this.timings.dockerdMs} ms)`);
    const images = opts.images ?? ['kiver/busybox:latest'];
    if (images.length > 0) {
      const t = await this.loadImages(images, opts.rootDocker);
      log(`images ${images.join(', ')}: save ${t.saveMs} ms, load into ${this.hosts.length} hosts ${t.loadMs} ms`);
    }
    this.timings.totalMs = Date.now() - t0;
  }

  private async setUpNetwork(): Promise<void> {
    const s = this.state;
    await cmd(['ip', 'link', 'add', s.bridge, 'type', 'bridge']);
    await cmd(['ip', 'addr', 'add', `${s.bridgeIp}/${s.prefixLen}`, 'dev', s.bridge]);
    await cmd(['ip', 'link', 'set', s.bridge, 'up']);
    // Another run may have picked the same block in the same instant: the later one backs off.
    const clash = (await usedPrefixes()).find((u) => u.dev !== s.bridge && overlaps(u.prefix, parsePrefix(s.block)));
    if (clash) throw new SubnetClash(`${s.block} overlaps ${intToIp(clash.prefix.net)}/${clash.prefix.len} on ${clash.dev}`);
    // With br_netfilter loaded (Docker loads it) bridged frames pass the root namespace's
    // FORWARD chain, whose policy Docker sets to DROP: accept this bridge's own traffic
    // (host to host) and nothing else (hosts cannot reach beyond the bridge).
    await cmd(['iptables', '-w', '-I', 'FORWARD', '1', ...ruleSpec(s.bridge)]);
    await Promise.all(s.hosts.map(async (h) => {
      await cmd(['ip', 'netns', 'add', h.netns]);
      await cmd(['ip', 'link', 'add', h.veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', h.netns]);
      await cmd(['ip', 'link', 'set', h.veth, 'master', s.bridge, 'up']);
      await cmd(['ip', '-n', h.netns, 'link', 'set', 'lo', 'up']);
      await cmd(['ip', '-n', h.netns, 'addr', 'add', `${h.ip}/${s.prefixLen}`, 'dev', 'eth0']);
      await cmd(['ip', '-n', h.netns, 'link', 'set', 'eth0', 'up']);
      await cmd(['ip', '-n', h.netns, 'route', 'add', 'default', 'via', s.bridgeIp]);
    }));
  }

  /**
   * Copies images from the root dockerd into every host whose dockerd runs: `docker save`
   * once into the run dir, then `docker load` into all hosts in parallel.
   */
  async loadImages(refs: string[], rootDocker?: Docker): Promise<{ saveMs: number; loadMs: number }> {
    const root = rootDocker ?? rootDockerFromEnv();
    mkdirSync(join(this.dir, 'images'), { recursive: true });
    const t0 = Date.now();
    const tars: string[] = [];
    for (const ref of refs) {
      const tar = join(this.dir, 'images', `${ref.replace(/[^a-zA-Z0-9_.-]/g, '_')}.tar`);
      if (!existsSync(tar)) {
        try {
          await root.getImage(ref).inspect();
        } catch (err) {
          throw new Error(`image ${ref} is not in the root dockerd (${statusCode(err) ?? (err as Error).message}); build it with \`./bin/kiver.js image build ${ref.replace(/^kiver\//, '').split(':')[0]}\``);
        }
        await pipeline(await root.getImage(ref).get(), createWriteStream(tar + '.part'));
        await cmd(['mv', tar + '.part', tar]);
      }
      tars.push(tar);
    }
    const saveMs = Date.now() - t0;
    const t1 = Date.now();
    const up = await Promise.all(this.hosts.map(async (h) => ((await h.dockerAnswers(2000)) ? h : undefined)));
    await Promise.all(up.filter((h): h is TestHost => !!h).map(async (h) => {
      for (const tar of tars) await h.loadImageTar(tar);
    }));
    const loadMs = Date.now() - t1;
    this.timings.imageSaveMs += saveMs;
    this.timings.imageLoadMs += loadMs;
    return { saveMs, loadMs };
  }

  // -------------------------------------------------------------------------
  // tear-down

  /** Removes everything this run created; idempotent; throws when something could not be removed. */
  destroy(): Promise<void> {
    this.destroying ??= this.tearDown();
    return this.destroying;
  }

  private destroyFromExitHook(): void {
    if (this.destroying) return;
    // 'exit' handlers cannot wait for promises: tear down from a child process.
    process.stderr.write(`test hosts ${this.dir} were not destroyed; tearing them down\n`);
    spawnSync(process.execPath, [HOSTS_JS, 'down', this.dir], { stdio: 'inherit', timeout: 120_000 });
  }

  registerExitHook(): void {
    if (this.owned) process.on('exit', this.exitHook);
  }

  private async tearDown(): Promise<void> {
    const s = this.state;
    if (!existsSync(this.dir) && this.leftovers().length === 0) {
      process.off('exit', this.exitHook);
      return;
    }
    for (const h of this.hosts) {
      for (const id of h.containerIds()) this.seen.containerIds.add(id);
      for (const sock of h.shimSockets()) this.seen.shimSockets.add(sock);
    }
    // 1. agents, then containers through their own dockerd (it cleans up mounts and cgroups), then dockerd.
    await Promise.all(this.hosts.map((h) => h.killAgent()));
    await Promise.all(this.hosts.map(async (h) => {
      if (h.dockerdPid() !== undefined && (await h.dockerAnswers(2000))) {
        await h.removeAllContainers().catch(() => undefined);
      }
      await h.stopDockerd(10_000);
    }));
    // 2. whatever is left (a killed host's shims and containers, anything started in a namespace).
    for (let round = 0; round < 3; round++) {
      const procs = listProcs();
      const pids = new Set<number>();
      for (const h of this.hosts) for (const p of h.processes(procs)) pids.add(p.pid);
      const marker = this.dir + '/';
      const self = selfAndAncestors();
      for (const p of procs) if (!self.has(p.pid) && p.argv.some((a) => a.includes(marker))) pids.add(p.pid);
      if (pids.size === 0) break;
      await killAndWait(withDescendants(pids, procs, self), 'SIGKILL', 10_000);
    }
    // 3. what killed shims leave: their sockets, the containers' cgroups.
    for (const sock of this.seen.shimSockets) {
      try {
        unlinkSync(sock);
      } catch {
        /* gone */
      }
    }
    for (const id of this.seen.containerIds) for (const dir of cgroupDirs(id)) {
      try {
        rmdirSync(dir);
      } catch {
        /* busy or gone: reported below */
      }
    }
    // 4. mounts (overlay, nsfs, shm, the data-root's own bind mount).
    await unmountUnder(this.dir);
    // 5. network.
    for (const h of s.hosts) {
      await cmd(['ip', 'link', 'del', h.veth], { allowFail: true });
      await cmd(['ip', 'netns', 'del', h.netns], { allowFail: true });
    }
    await cmd(['ip', 'link', 'del', s.bridge], { allowFail: true });
    await deleteRule(s.bridge);
    // 6. files, unless something is still mounted there.
    if (mountsUnder(this.dir).length === 0) rmSync(this.dir, { recursive: true, force: true });
    process.off('exit', this.exitHook);
    const left = this.leftovers();
    if (left.length > 0) throw new Error(`test hosts ${s.id}: destroy left ${left.join('; ')}`);
  }

  /** What of this run still exists on the machine (empty after destroy()). */
  leftovers(): string[] {
    const s = this.state;
    const out: string[] = [];
    const ns = netnsNames().filter((n) => n.startsWith(`${NETNS_PREFIX}${s.id}-`));
    if (ns.length > 0) out.push(`namespaces ${ns.join(', ')}`);
    const links = linkNames().filter((n) => n.startsWith(s.bridge));
    if (links.length > 0) out.push(`links ${links.join(', ')}`);
    const marker = this.dir + '/';
    const self = selfAndAncestors();
    const procs = listProcs().filter((p) => !self.has(p.pid) && p.state !== 'Z' && p.argv.some((a) => a.includes(marker)));
    if (procs.length > 0) out.push(`processes ${procs.map((p) => `${p.pid} (${p.argv.slice(0, 3).join(' ')})`).join(', ')}`);
    const mounts = mountsUnder(this.dir);
    if (mounts.length > 0) out.push(`mounts ${mounts.slice(0, 5).join(', ')}${mounts.length > 5 ? ` and ${mounts.length - 5} more` : ''}`);
    if (ruleExists(s.bridge)) out.push(`iptables rule for ${s.bridge}`);
    if (existsSync(this.dir)) out.push(`directory ${this.dir}`);
    const socks = [...this.seen.shimSockets].filter((x) => existsSync(x));
    if (socks.length > 0) out.push(`shim sockets ${socks.join(', ')}`);
    const cgroups = [...this.seen.containerIds].flatMap((id) => cgroupDirs(id));
    if (cgroups.length > 0) out.push(`cgroups ${cgroups.slice(0, 3).join(', ')}${cgroups.length > 3 ? ` and ${cgroups.length - 3} more` : ''}`);
    return out;
  }
}

class SubnetClash extends Error {}

function ruleSpec(bridge: string): string[] {
  return ['-i', bridge, '-o', bridge, '-m', 'comment', '--comment', `${RULE_COMMENT}${bridge}`, '-j', 'ACCEPT'];
}

function ruleExists(bridge: string): boolean {
  const r = spawnSync('iptables', ['-w', '-C', 'FORWARD', ...ruleSpec(bridge)], { stdio: 'ignore' });
  return r.status === 0;
}

async function deleteRule(bridge: string): Promise<void> {
  for (let i = 0; i < 10 && ruleExists(bridge); i++) await cmd(['iptables', '-w', '-D', 'FORWARD', ...ruleSpec(bridge)], { allowFail: true });
}

/** Bridges named in FORWARD rules of the harness (also of runs whose directory is gone). */
async function ruleBridges(): Promise<string[]> {
  const r = await cmd(['iptables', '-w', '-S', 'FORWARD'], { allowFail: true });
  const out: string[] = [];
  for (const m of r.stdout.matchAll(new RegExp(`${RULE_COMMENT}(${LINK_PREFIX}[0-9a-f]{6})`, 'g'))) out.push(m[1]);
  return [...new Set(out)];
}

/** A container's cgroup directories that exist (cgroupfs driver, v1 or v2). */
function cgroupDirs(id: string): string[] {
  const out: string[] = [];
  const root = '/sys/fs/cgroup';
  const candidates = [join(root, 'docker', id)];
  try {
    for (const c of readdirSync(root)) candidates.push(join(root, c, 'docker', id));
  } catch {
    /* no cgroupfs */
  }
  for (const c of candidates) if (existsSync(c)) out.push(c);
  return out;
}

export function rootDockerFromEnv(): Docker {
  const host = process.env.DOCKER_HOST;
  return new Docker({ socketPath: host?.startsWith('unix://') ? host.slice(7) : '/var/run/docker.sock' });
}

function preflight(): void {
  if (process.getuid?.() !== 0) throw new Error('test hosts need root (network namespaces, bridges, dockerd)');
  for (const tool of ['ip', 'nsenter', 'iptables', 'dockerd', 'umount']) {
    const r = spawnSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    if (r.status !== 0) throw new Error(`test hosts need \`${tool}\` (Debian: iproute2, util-linux, iptables, docker.io)`);
  }
}

/** Existing runs' /20 blocks (their docker0 subnets are only visible inside their namespaces). */
function blocksInUse(): string[] {
  const out: string[] = [];
  for (const n of safeReaddir(tmpdir())) {
    if (!n.startsWith(RUN_PREFIX)) continue;
    try {
      out.push((JSON.parse(readFileSync(join(tmpdir(), n, 'hosts.json'), 'utf8')) as RunState).block);
    } catch {
      /* not a run */
    }
  }
  return out;
}

function safeReaddir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

async function pickBlock(): Promise<string> {
  const used = [...(await usedPrefixes()).map((u) => u.prefix), ...blocksInUse().map(parsePrefix)];
  for (let i = 0; i < 200; i++) {
    const a = 64 + Math.floor(Math.random() * 190); // 10.64-253: clear of the usual 10.0-10.63
    if (a === 77) continue; // the machine lab's subnet
    const b = 16 * Math.floor(Math.random() * 16);
    const block = `10.${a}.${b}.0/20`;
    if (!used.some((u) => overlaps(u, parsePrefix(block)))) return block;
  }
  throw new Error('no free 10.x /20 block for test hosts');
}

/**
 * Creates n test hosts (see the file comment). On failure everything created so far is
 * torn down. Call destroy() in a finally/after hook; a process that exits without it
 * tears its hosts down from an 'exit' hook, and sweepStale() removes runs of processes
 * that died harder than that.
 */
export async function createHosts(n: number, opts: CreateHostsOptions = {}): Promise<TestHosts> {
  preflight();
  const names = opts.names ?? Array.from({ length: n }, (_, i) => `host-${i}`);
  if (names.length !== n || n < 1 || n > MAX_HOSTS) throw new Error(`createHosts: 1..${MAX_HOSTS} hosts, with as many names`);
  for (const name of names) if (!/^[a-z0-9]([a-z0-9.-]{0,30}[a-z0-9])?$/.test(name)) throw new Error(`createHosts: bad host name "${name}"`);
  if (new Set(names).size !== names.length) throw new Error('createHosts: host names repeat');
  for (let attempt = 0; ; attempt++) {
    const hosts = await newRun(names, opts);
    try {
      await hosts.setUp(opts);
      return hosts;
    } catch (err) {
      await hosts.destroy().catch((e) => process.stderr.write(`test hosts: cleanup after a failed set-up: ${(e as Error).message}\n`));
      if (err instanceof SubnetClash && attempt < 5) continue;
      throw err;
    }
  }
}

async function newRun(names: string[], opts: CreateHostsOptions): Promise<TestHosts> {
  let id = '';
  let dir = '';
  for (;;) {
    id = randomBytes(3).toString('hex');
    dir = join(tmpdir(), `${RUN_PREFIX}${id}`);
    if (linkNames().includes(`${LINK_PREFIX}${id}`)) continue;
    try {
      mkdirSync(dir, { mode: 0o755 });
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
  // Unix socket paths are limited to 108 bytes: containerd's sits in <exec-root>/containerd/.
  if (join(dir, names.reduce((a, b) => (a.length >= b.length ? a : b)), 'x/containerd/containerd.sock.ttrpc').length > 100) {
    throw new Error(`test hosts: TMPDIR ${tmpdir()} is too long for unix socket paths; use a shorter TMPDIR`);
  }
  const block = await pickBlock();
  const base = parsePrefix(block).net;
  const bridge = `${LINK_PREFIX}${id}`;
  const state: RunState = {
    version: 1,
    id,
    dir,
    owner: opts.manual ? { kind: 'manual' } : { kind: 'process', pid: process.pid, start: procStart(process.pid) ?? 0 },
    createdAt: new Date().toISOString(),
    bridge,
    bridgeIp: intToIp(base + 1),
    prefixLen: 24,
    block,
    iptables: opts.iptables ?? true,
    dockerdArgs: opts.dockerdArgs ?? [],
    hosts: names.map((name, i) => ({
      name,
      index: i,
      netns: `${NETNS_PREFIX}${id}-${name}`,
      veth: `${bridge}h${i}`,
      ip: intToIp(base + 10 + i),
      bip: `${intToIp(base + (1 + i) * 256 + 1)}/24`,
      dir: join(dir, name),
    })),
  };
  for (const h of state.hosts) mkdirSync(h.dir, { recursive: true });
  const hosts = new TestHosts(state, true);
  hosts.save(); // before anything exists, so a crash at any later line is sweepable
  if (!opts.manual) hosts.registerExitHook();
  return hosts;
}

/** Every run directory on this machine ($TMPDIR/kvh-<id> with a hosts.json). */
export function listRuns(): TestHosts[] {
  const out: TestHosts[] = [];
  for (const n of safeReaddir(tmpdir())) {
    if (!n.startsWith(RUN_PREFIX) || !ID_RE.test(n.slice(RUN_PREFIX.length))) continue;
    try {
      out.push(TestHosts.open(join(tmpdir(), n)));
    } catch {
      /* half-created or foreign */
    }
  }
  return out;
}

/**
 * Removes what earlier runs left behind: runs whose creating process is gone (manual runs
 * only with includeManual), and orphans by name — namespaces kvh<id>-*, links kvb<id>*,
 * FORWARD rules, processes and mounts under $TMPDIR/kvh-<id>/ — whose run directory is
 * gone. Never touches a run whose creator still lives. Returns what it removed.
 */
export async function sweepStale(opts: { includeManual?: boolean } = {}): Promise<string[]> {
  const removed: string[] = [];
  const runs = listRuns();
  const liveIds = new Set<string>();
  for (const run of runs) {
    const sweep = run.stale || (opts.includeManual === true && run.state.owner.kind === 'manual');
    if (!sweep) {
      liveIds.add(run.id);
      continue;
    }
    try {
      await run.destroy();
      removed.push(`run ${run.dir}`);
    } catch (err) {
      // e.g. another process sweeping the same run at the same time
      removed.push(`run ${run.dir} (incompletely: ${(err as Error).message})`);
    }
  }
  const known = (id: string) => liveIds.has(id) || existsSync(join(tmpdir(), `${RUN_PREFIX}${id}`, 'hosts.json'));
  // Orphans: their run directory is gone (or never got a hosts.json).
  const self = selfAndAncestors();
  const procs = listProcs();
  const orphanNs = netnsNames().filter((n) => {
    const m = new RegExp(`^${NETNS_PREFIX}([0-9a-f]{6})-`).exec(n);
    return m && !known(m[1]);
  });
  const pids = new Set<number>();
  for (const ns of orphanNs) {
    let ino: number | undefined;
    try {
      ino = statSync(`/var/run/netns/${ns}`).ino;
    } catch {
      continue;
    }
    for (const p of procs) if (p.netns === ino && p.argv.length > 0 && !self.has(p.pid)) pids.add(p.pid);
  }
  const orphanDirs = new Set<string>();
  for (const p of procs) {
    for (const a of p.argv) {
      const m = new RegExp(`(${tmpdir().replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/${RUN_PREFIX}([0-9a-f]{6}))/`).exec(a);
      if (m && !known(m[2]) && !self.has(p.pid)) {
        pids.add(p.pid);
        orphanDirs.add(m[1]);
      }
    }
  }
  for (const n of safeReaddir(tmpdir())) {
    const id = n.slice(RUN_PREFIX.length);
    if (n.startsWith(RUN_PREFIX) && ID_RE.test(id) && !known(id)) orphanDirs.add(join(tmpdir(), n));
  }
  if (pids.size > 0) {
    await killAndWait(withDescendants(pids, procs, self), 'SIGKILL', 10_000);
    removed.push(`processes ${[...pids].join(', ')}`);
  }
  for (const ns of orphanNs) {
    await cmd(['ip', 'netns', 'del', ns], { allowFail: true });
    removed.push(`namespace ${ns}`);
  }
  for (const l of linkNames()) {
    const m = new RegExp(`^${LINK_PREFIX}([0-9a-f]{6})`).exec(l);
    if (m && !known(m[1]) && existsSync(`/sys/class/net/${l}`)) {
      await cmd(['ip', 'link', 'del', l], { allowFail: true });
      removed.push(`link ${l}`);
    }
  }
  for (const b of await ruleBridges()) {
    if (!known(b.slice(LINK_PREFIX.length))) {
      await deleteRule(b);
      removed.push(`iptables rule ${b}`);
    }
  }
  for (const d of orphanDirs) {
    const left = await unmountUnder(d);
    if (left.length === 0) rmSync(d, { recursive: true, force: true });
    removed.push(`directory ${d}${left.length > 0 ? ` (still mounted: ${left.join(', ')})` : ''}`);
  }
  return removed;
}

// ---------------------------------------------------------------------------
// CLI: node dist/test/harness/hosts.js <command>

const USAGE = `usage: node dist/test/harness/hosts.js <command>
  up N [--names a,b,c] [--image REF]... [--no-images]   create N hosts and leave them running
  ls                                                    list runs
  down [DIR...]                                         destroy runs (default: manual and stale ones)
  sweep                                                 remove leftovers of crashed runs
  env DIR HOST                                          print DOCKER_HOST and the nsenter prefix of a host
  restart-dockerd DIR HOST | kill-dockerd DIR HOST      restart / kill -9 a host's dockerd
  kill DIR HOST | power-off DIR HOST | power-on DIR HOST`;

function describe(run: TestHosts): string {
  const o = run.state.owner;
  const owner = o.kind === 'manual' ? 'manual' : `pid ${o.pid}${run.stale ? ' (gone: stale)' : ''}`;
  const lines = [`${run.dir}  bridge ${run.bridge} ${run.bridgeIp}/${run.state.prefixLen}  owner ${owner}`];
  for (const h of run.hosts) {
    const d = h.dockerdPid();
    const a = h.agentPid();
    lines.push(`  ${h.name.padEnd(10)} ${h.ip.padEnd(15)} netns ${h.netns}  dockerd ${d ?? '-'}  agent ${a ?? '-'}  DOCKER_HOST=${h.dockerHost}`);
  }
  return lines.join('\n');
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  const runHost = (): TestHost => {
    if (rest.length < 2) throw new Error(`${command} needs DIR HOST`);
    return TestHosts.open(resolve(rest[0])).host(rest[1]);
  };
  switch (command) {
    case 'up': {
      const n = Number(rest[0]);
      if (!Number.isInteger(n)) throw new Error('up N');
      const images: string[] = [];
      let names: string[] | undefined;
      let noImages = false;
      for (let i = 1; i < rest.length; i++) {
        if (rest[i] === '--names') names = rest[++i].split(',');
        else if (rest[i] === '--image') images.push(rest[++i]);
        else if (rest[i] === '--no-images') noImages = true;
        else throw new Error(`unknown option ${rest[i]}`);
      }
      const t0 = Date.now();
      const run = await createHosts(n, {
        names, manual: true, images: noImages ? [] : images.length > 0 ? images : undefined, log: (l) => process.stderr.write(`${l}\n`),
      });
      process.stdout.write(`${describe(run)}\nup in ${Date.now() - t0} ms; timings ${JSON.stringify(run.timings)}\n`);
      process.stdout.write(`a server for these hosts listens on ${run.bridgeIp} (or 0.0.0.0); a host's shell: nsenter --net=${run.hosts[0].netnsPath} bash\n`);
      process.stdout.write(`tear down: node ${HOSTS_JS} down ${run.dir}\n`);
      return 0;
    }
    case 'ls': {
      for (const run of listRuns()) process.stdout.write(`${describe(run)}\n`);
      return 0;
    }
    case 'down': {
      const runs = rest.length > 0 ? rest.map((d) => TestHosts.open(resolve(d))) : listRuns().filter((r) => r.stale || r.state.owner.kind === 'manual');
      let failed = 0;
      for (const run of runs) {
        const t0 = Date.now();
        try {
          await run.destroy();
          process.stdout.write(`destroyed ${run.dir} in ${Date.now() - t0} ms\n`);
        } catch (err) {
          failed++;
          process.stderr.write(`${(err as Error).message}\n`);
        }
      }
      if (rest.length === 0) for (const r of await sweepStale()) process.stdout.write(`swept ${r}\n`);
      return failed > 0 ? 1 : 0;
    }
    case 'sweep': {
      for (const r of await sweepStale()) process.stdout.write(`removed ${r}\n`);
      return 0;
    }
    case 'env': {
      const h = runHost();
      process.stdout.write(`export DOCKER_HOST=${h.dockerHost}\n# in the host: ${h.nsenter(['bash']).join(' ')}\n`);
      return 0;
    }
    case 'restart-dockerd': await runHost().restartDockerd(); return 0;
    case 'kill-dockerd': await runHost().killDockerd('SIGKILL'); return 0;
    case 'kill': await runHost().kill(); return 0;
    case 'power-off': await runHost().powerOff(); return 0;
    case 'power-on': await runHost().start(); return 0;
    default:
      process.stderr.write(`${USAGE}\n`);
      return 2;
  }
}

if (process.argv[1] && resolve(process.argv[1]) === HOSTS_JS) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err) => {
      process.stderr.write(`${(err as Error).message}\n`);
      process.exit(1);
    },
  );
}
