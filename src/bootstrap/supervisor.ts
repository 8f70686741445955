/**
 * The supervisor fallback: where systemd is absent (containers, CI machines) Kiver runs
 * dockerd and the agent itself. `kiver node supervise` reads one JSON file per program
 * from /etc/kiver/supervise/, starts them in order, restarts a program that exits
 * (backoff 1 s doubling to 30 s, back to 1 s after a minute of running), re-reads the
 * files on SIGHUP (starts new, stops removed, restarts changed programs) and stops
 * everything in reverse order on SIGTERM. Pid files in /run/kiver/, logs in /var/log/kiver/.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { KIVER_BIN, SUPERVISE_DIR, type NodeHost } from './node-host.js';

export interface ProgramDef {
  name: string;
  /** Start order (lower first); stopped in reverse. */
  order: number;
  argv: string[];
  env?: Record<string, string>;
  /** Environment variables removed from the supervisor's own. */
  unsetEnv?: string[];
  /** KEY=VALUE lines read at each start (like systemd's EnvironmentFile=); a missing file adds nothing. */
  envFile?: string;
}

/** KEY=VALUE lines; blank lines and # comments skipped. */
export function readEnvFile(file: string | undefined): Record<string, string> {
  if (!file) return {};
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return {};
  }
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^\s*([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (m) out[m[1]] = m[2].trim();
  }
  return out;
}

const BACKOFF_MIN_MS = 1000;
const BACKOFF_MAX_MS = 30_000;
const HEALTHY_AFTER_MS = 60_000;
const STOP_GRACE_MS = 20_000;

export function programFile(host: NodeHost, name: string): string {
  return host.path(`${SUPERVISE_DIR}/${name}.json`);
}

export function readPrograms(host: NodeHost): ProgramDef[] {
  const dir = host.path(SUPERVISE_DIR);
  let names: string[] = [];
  try {
    names = readdirSync(dir).filter((n) => n.endsWith('.json'));
  } catch {
    return [];
  }
  return names.map((n) => JSON.parse(readFileSync(join(dir, n), 'utf8')) as ProgramDef).sort((a, b) => a.order - b.order || a.name.localeCompare(b.name));
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    // A zombie is not alive (PID 1 of a container may reap late).
    return !/^\S+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return true;
  }
}

export function readPid(file: string): number | undefined {
  try {
    const pid = Number(readFileSync(file, 'utf8').trim());
    return pid > 0 && isAlive(pid) ? pid : undefined;
  } catch {
    return undefined;
  }
}

export const supervisorPidFile = (host: NodeHost) => join(host.runDir, 'supervisor.pid');
export const programPidFile = (host: NodeHost, name: string) => join(host.runDir, `${name}.pid`);

/** The running supervisor's pid, if any. */
export function supervisorPid(host: NodeHost): number | undefined {
  return readPid(supervisorPidFile(host));
}

/** Starts `kiver node supervise` detached (own session: it outlives `kiver node init`) and waits for its pid file. */
export async function startSupervisor(host: NodeHost): Promise<number> {
  mkdirSync(host.logDir, { recursive: true });
  const fd = openSync(join(host.logDir, 'supervisor.log'), 'a');
  const args = [KIVER_BIN, 'node', 'supervise', ...(host.isRealRoot ? [] : ['--root', host.root])];
  const child = spawn(process.execPath, args, { detached: true, stdio: ['ignore', fd, fd] });
  closeSync(fd);
  child.unref();
  const deadline = Date.now() + 15_000;
  for (;;) {
    const pid = supervisorPid(host);
    if (pid) return pid;
    if (child.exitCode !== null) throw new Error(`kiver node supervise exited (${child.exitCode}); see ${join(host.logDir, 'supervisor.log')}`);
    if (Date.now() > deadline) throw new Error(`kiver node supervise did not start within 15 s; see ${join(host.logDir, 'supervisor.log')}`);
    await sleep(50);
  }
}

/** Stops the supervisor (and so everything it runs) and waits until it is gone. */
export async function stopSupervisor(host: NodeHost, timeoutMs = 60_000): Promise<boolean> {
  const pid = supervisorPid(host);
  if (!pid) return false;
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + timeoutMs;
  while (isAlive(pid)) {
    if (Date.now() > deadline) throw new Error(`supervisor (pid ${pid}) did not stop within ${timeoutMs} ms`);
    await sleep(100);
  }
  return true;
}

interface Running {
  def: ProgramDef;
  key: string;
  child?: ChildProcess;
  startedAt: number;
  backoffMs: number;
  timer?: NodeJS.Timeout;
  stopping: boolean;
  exited?: Promise<void>;
}

/** The supervisor process itself (`kiver node supervise`). Resolves when it has stopped. */
export async function runSupervisor(host: NodeHost): Promise<void> {
  mkdirSync(host.runDir, { recursive: true });
  mkdirSync(host.logDir, { recursive: true });
  const pidFile = supervisorPidFile(host);
  const other = readPid(pidFile);
  if (other && other !== process.pid) throw new Error(`a supervisor runs already (pid ${other})`);
  writeFileSync(pidFile, `${process.pid}\n`);
  const say = (l: string) => process.stdout.write(`${new Date().toISOString()} ${l}\n`);
  const running = new Map<string, Running>();

  const start = (r: Running) => {
    if (r.stopping) return;
    const fd = openSync(join(host.logDir, `${r.def.name}.log`), 'a');
    const env: NodeJS.ProcessEnv = { ...process.env, ...readEnvFile(r.def.envFile), ...r.def.env };
    for (const k of r.def.unsetEnv ?? []) delete env[k];
    const child = spawn(r.def.argv[0], r.def.argv.slice(1), { stdio: ['ignore', fd, fd], env });
    closeSync(fd);
    r.child = child;
    r.startedAt = Date.now();
    r.exited = new Promise((res) => child.once('close', () => res()));
    if (child.pid) writeFileSync(programPidFile(host, r.def.name), `${child.pid}\n`);
    say(`started ${r.def.name} (pid ${child.pid})`);
    child.once('error', (e) => say(`${r.def.name}: ${e.message}`));
    child.once('close', (code, signal) => {
      r.child = undefined;
      rmSync(programPidFile(host, r.def.name), { force: true });
      if (r.stopping) return;
      if (Date.now() - r.startedAt > HEALTHY_AFTER_MS) r.backoffMs = BACKOFF_MIN_MS;
      say(`${r.def.name} exited (${signal ?? code}); restarting in ${r.backoffMs} ms`);
      r.timer = setTimeout(() => start(r), r.backoffMs);
      r.backoffMs = Math.min(r.backoffMs * 2, BACKOFF_MAX_MS);
    });
  };

  const stop = async (r: Running) => {
    r.stopping = true;
    clearTimeout(r.timer);
    const c = r.child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    c.kill('SIGTERM');
    const t = setTimeout(() => c.kill('SIGKILL'), STOP_GRACE_MS);
    await r.exited;
    clearTimeout(t);
    say(`stopped ${r.def.name}`);
  };

  let chain = Promise.resolve();
  const serial = (fn: () => Promise<void>) => (chain = chain.then(fn, fn));

  const reload = async () => {
    let defs: ProgramDef[];
    try {
      defs = readPrograms(host);
    } catch (err) {
      say(`cannot read ${host.path(SUPERVISE_DIR)}: ${(err as Error).message}; keeping the running set`);
      return;
    }
    const wanted = new Map(defs.map((d) => [d.name, d]));
    for (const r of [...running.values()].sort((a, b) => b.def.order - a.def.order)) {
      const d = wanted.get(r.def.name);
      if (!d || JSON.stringify(d) !== r.key) {
        await stop(r);
        running.delete(r.def.name);
      }
    }
    for (const d of defs) {
      if (running.has(d.name)) continue;
      const r: Running = { def: d, key: JSON.stringify(d), startedAt: 0, backoffMs: BACKOFF_MIN_MS, stopping: false };
      running.set(d.name, r);
      start(r);
    }
  };

  await new Promise<void>((resolveDone) => {
    process.on('SIGHUP', () => void serial(async () => {
      say('SIGHUP: re-reading programs');
      await reload();
    }));
    const shutdown = (sig: string) => void serial(async () => {
      say(`${sig}: stopping`);
      for (const r of [...running.values()].sort((a, b) => b.def.order - a.def.order)) await stop(r);
      rmSync(pidFile, { force: true });
      resolveDone();
    });
    process.on('SIGTERM', () => shutdown('SIGTERM'));
    process.on('SIGINT', () => shutdown('SIGINT'));
    void serial(reload);
  });
}

/** argv that restarts one supervised program from any process (the agent's Docker watchdog). */
export function supervisorRestartArgv(host: NodeHost, name: string): string[] {
  return [process.execPath, KIVER_BIN, 'node', 'supervise', '--restart', name, ...(host.isRealRoot ? [] : ['--root', host.root])];
}

/**
 * Restarts a supervised program: SIGKILL (a hung dockerd ignores SIGTERM; live-restore
 * keeps its containers), then waits until the supervisor runs it again.
 */
export async function restartProgram(host: NodeHost, name: string, timeoutMs = 60_000): Promise<number> {
  if (!supervisorPid(host)) throw new Error('no supervisor runs here (kiver node init starts it)');
  const pid = programPid(host, name);
  if (!pid) throw new Error(`the supervisor runs no program "${name}"`);
  process.kill(pid, 'SIGKILL');
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const now = programPid(host, name);
    if (now && now !== pid) return now;
    if (Date.now() > deadline) throw new Error(`${name} was not restarted within ${timeoutMs / 1000} s`);
    await sleep(100);
  }
}

/** Was this program started by the supervisor and does it run now? */
export function programPid(host: NodeHost, name: string): number | undefined {
  return readPid(programPidFile(host, name));
}

export function hasProgramFile(host: NodeHost, name: string): boolean {
  return existsSync(programFile(host, name));
}
