/**
 * Runs the real `kiver up` binary as a child process in a temp directory, as a
 * user would, and gives tests an API client with its admin token. Everything it
 * starts (process, containers of its node, directories) goes in cleanup().
 */
import { after, before } from 'node:test';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createServer } from 'node:net';
import { randomBytes } from 'node:crypto';
import type Docker from 'dockerode';
import { ApiClient } from '../../src/client/api-client.js';
import { ensureDocker, removeContainersByLabel } from './docker.js';

export const KIVER_BIN = resolve('bin/kiver.js');

/** Runs a command to its end; resolves with its exit code and output. */
export function runCommand(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((res, rej) => {
    const p = spawn(argv[0], argv.slice(1), { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('error', rej);
    p.on('close', (code) => res({ code: code ?? 1, stdout, stderr }));
  });
}

export async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => (typeof a === 'object' && a ? res(a.port) : rej(new Error('no port'))));
    });
  });
}

/** Polls fn until it returns a truthy value; throws with the last value/error at the deadline. */
export async function until<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 30_000, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
      last = v;
    } catch (err) {
      last = (err as Error).message;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last: ${JSON.stringify(last)?.slice(0, 500)}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Signals a child and waits for it to exit (no-op if it already has). */
async function killChild(p: ChildProcess | undefined, signal: NodeJS.Signals): Promise<void> {
  if (!p || p.exitCode !== null || p.signalCode !== null) return;
  const exited = new Promise((r) => p.once('exit', r));
  p.kill(signal);
  await exited;
}

/** A `kiver server` child process (for HA tests: several share one etcd). */
/** Runs the `kiver` CLI with this environment; resolves with exit code and output. */
export function runCli(env: NodeJS.ProcessEnv, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((res) => {
    const p = spawn(process.execPath, [KIVER_BIN, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('close', (code) => res({ code: code ?? 1, stdout, stderr }));
  });
}

export class ServerProcess {
  proc?: ChildProcess;
  output = '';
  constructor(
    readonly dataDir: string, readonly port: number, readonly store: string, readonly extra: string[] = [],
    /** host: the address to listen on (default 127.0.0.1); wrap: argv before node (e.g. a test host's nsenter). */
    private readonly where: { host?: string; wrap?: string[] } = {},
  ) {}

  get url(): string {
    return `http://${this.where.host ?? '127.0.0.1'}:${this.port}`;
  }

  async start(): Promise<void> {
    this.output = '';
    const argv = [
      process.execPath, KIVER_BIN, 'server', '--data-dir', this.dataDir, '--store', this.store, '--listen', `${this.where.host ?? '127.0.0.1'}:${this.port}`, ...this.extra,
    ];
    const wrap = this.where.wrap ?? [];
    this.proc = spawn(wrap[0] ?? argv[0], [...wrap.slice(1), ...(wrap.length ? argv : argv.slice(1))], { env: { ...process.env, KIVER_LOG_LEVEL: 'warn' }, stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc.stdout!.on('data', (d) => (this.output += d));
    this.proc.stderr!.on('data', (d) => (this.output += d));
    await until(`kiver server on ${this.port} (output: ${this.output})`, async () => {
      if (this.proc!.exitCode !== null) throw new Error(this.output);
      return (await fetch(`${this.url}/healthz`)).ok;
    }, 60_000); // it took 10–30 s to start at a load average of 20–30 on 2 cores
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    return killChild(this.proc, signal);
  }
}

export class KiverProcess {
  proc?: ChildProcess;
  output = '';
  client!: ApiClient;
  token = '';
  readonly node = `kt-${randomBytes(3).toString('hex')}`;
  url = '';

  private constructor(readonly dir: string, readonly port: number, readonly docker: Docker) {}

  get dataRoot() { return join(this.dir, 'data'); }
  get logRoot() { return join(this.dir, 'log'); }
  get env(): NodeJS.ProcessEnv {
    return { ...process.env, KIVER_HOME: join(this.dir, 'home'), KIVER_LOG_LEVEL: 'warn' };
  }

  static async create(): Promise<KiverProcess> {
    const docker = await ensureDocker();
    const dir = await mkdtemp(join(tmpdir(), 'kiver-test-'));
    return new KiverProcess(dir, await freePort(), docker);
  }

  /** Starts `kiver up` and waits until its API answers and its node is ready. */
  async start(): Promise<void> {
    this.output = '';
    this.proc = spawn(process.execPath, [
      KIVER_BIN, 'up', '--data-dir', join(this.dir, 'state'), '--listen', `127.0.0.1:${this.port}`,
      '--node', this.node, '--data-root', this.dataRoot, '--log-root', this.logRoot,
    ], { env: this.env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc.stdout!.on('data', (d) => (this.output += d));
    this.proc.stderr!.on('data', (d) => (this.output += d));
    this.url = `http://127.0.0.1:${this.port}`;
    await until(`kiver up to print its banner (output: ${this.output})`, async () => this.output.includes('Kiver is up') || (this.proc!.exitCode !== null ? Promise.reject(new Error(this.output)) : false), 30_000);
    this.token = (await readFile(join(this.dir, 'state', 'admin.token'), 'utf8')).trim();
    this.client = new ApiClient({ servers: [this.url], token: this.token });
    await until('node ready', async () => {
      const n = await this.client.get<{ ready: boolean }>(`/v1/nodes/${this.node}`);
      return n.ready;
    });
  }

  /** Runs the CLI against this instance; resolves with exit code and output. */
  async cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    return runCli(this.env, ...args);
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    return killChild(this.proc, signal);
  }

  async cleanup(): Promise<void> {
    await this.kill('SIGKILL');
    await removeContainersByLabel(this.docker, `kiver.node=${this.node}`);
    await rm(this.dir, { recursive: true, force: true });
  }
}

/** Hooks for a suite that runs one `kiver up`: started before, cleaned up after; the process is `.k`. */
export function kiverUpForSuite(): { k: KiverProcess } {
  const suite = {} as { k: KiverProcess };
  before(async () => {
    suite.k = await KiverProcess.create();
    await suite.k.start();
  });
  after(async () => {
    await suite.k?.cleanup();
  });
  return suite;
}
