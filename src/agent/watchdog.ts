/**
 * The Docker watchdog: the agent pings dockerd every `intervalMs`; after
 * `failuresBeforeRestart` failed pings in a row it runs a restart command (an argv,
 * never a shell string; default `systemctl restart docker`), then waits out an
 * exponential, capped backoff before it may restart again. Every restart is an event
 * and a metric; when the daemon answers again the agent is told (onRecovered) so it can
 * re-sync — with live-restore the containers kept running, so a re-sync adopts them
 * instead of recreating them. checkLiveRestore() is the start-up check that makes this
 * safe: without live-restore a dockerd restart stops every container.
 */
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import type { Readable } from 'node:stream';
import { Counter, Gauge, type Registry } from 'prom-client';

export type WatchdogEventType = 'Normal' | 'Warning';

export interface CommandResult {
  /** exit code; null when killed by a signal or not started */
  code: number | null;
  signal?: string | null;
  /** the end of stdout + stderr, or why it did not start */
  output: string;
}

export interface DockerWatchdogOptions {
  /** Probes the daemon; rejects when it does not answer (the agent passes its DockerRuntime ping). */
  ping: () => Promise<void>;
  /** argv run to restart the daemon; false = only probe, report and meter, never restart. */
  restartCommand?: string[] | false;
  /** Failed pings in a row before a restart (default 3). */
  failuresBeforeRestart?: number;
  /** Time between pings (default 5000 ms). */
  intervalMs?: number;
  /** A ping not settled after this long counts as failed (default 5000 ms). */
  pingTimeoutMs?: number;
  /** Minimum time after a restart before the next one: initialMs * factor^n, at most maxMs (default 10 s → 5 min, ×2). */
  backoff?: { initialMs?: number; maxMs?: number; factor?: number };
  /** The backoff starts over once the daemon has answered for this long (default 10 min). */
  stableMs?: number;
  /** The restart command is killed after this long (default 120 s). */
  restartTimeoutMs?: number;
  /** Called for every event; the agent records it as a Kiver event on its node. */
  onEvent?: (type: WatchdogEventType, reason: string, message: string) => void;
  /** Called when the daemon answers again after failed pings (also when it healed without a restart). */
  onRecovered?: () => void | Promise<void>;
  /** Registry for the kiver_agent_docker_* metrics (default: none, metrics are kept on the instance). */
  registry?: Registry;
  log?: { info(obj: object, msg: string): void; warn(obj: object, msg: string): void; error(obj: object, msg: string): void };
  /** Test seams. */
  runCommand?: (argv: string[], timeoutMs: number) => Promise<CommandResult>;
  now?: () => number;
}

export interface WatchdogStatus {
  up: boolean | undefined;
  consecutiveFailures: number;
  restarts: number;
  /** when the current outage began (ms epoch) */
  downSince?: number;
  lastRestartAt?: number;
  /** no restart before this time (ms epoch) */
  nextRestartAt?: number;
}

export const DEFAULT_RESTART_COMMAND = ['systemctl', 'restart', 'docker'];
const MAX_EVENT_MESSAGE = 1900; // the API accepts 2000

interface WatchdogMetrics {
  restarts: Counter<'result'>;
  pingFailures: Counter;
  up: Gauge;
}

function getOrCreate<T>(registry: Registry | undefined, name: string, make: (registers: Registry[]) => T): T {
  const existing = registry?.getSingleMetric(name);
  return (existing as T | undefined) ?? make(registry ? [registry] : []);
}

function watchdogMetrics(registry: Registry | undefined): WatchdogMetrics {
  return {
    restarts: getOrCreate(registry, 'kiver_agent_docker_restarts_total', (registers) => new Counter({
      name: 'kiver_agent_docker_restarts_total', help: 'Docker daemon restarts by the watchdog, by result of the restart command',
      labelNames: ['result'] as const, registers,
    })),
    pingFailures: getOrCreate(registry, 'kiver_agent_docker_ping_failures_total', (registers) => new Counter({
      name: 'kiver_agent_docker_ping_failures_total', help: 'Docker daemon pings that failed or timed out', registers,
    })),
    up: getOrCreate(registry, 'kiver_agent_docker_up', (registers) => new Gauge({
      name: 'kiver_agent_docker_up', help: '1 when the last ping of the Docker daemon succeeded, else 0', registers,
    })),
  };
}

function formatMs(ms: number): string {
  if (ms < 1000) return `${ms} ms`;
  if (ms < 120_000) return `${Math.round(ms / 100) / 10} s`;
  return `${Math.round(ms / 6000) / 10} min`;
}

/** Runs argv without a shell; resolves on exit (a daemon the command leaves behind may keep its pipes). */
export function runCommand(argv: string[], timeoutMs: number, signal?: AbortSignal): Promise<CommandResult> {
  return new Promise((resolve) => {
    let output = '';
    const keep = (d: Buffer) => {
      output = (output + d.toString('utf8')).slice(-4000);
    };
    let child: ChildProcessByStdio<null, Readable, Readable>;
    try {
      child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (err) {
      resolve({ code: null, output: (err as Error).message });
      return;
    }
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    const kill = () => child.kill('SIGKILL');
    const timer = setTimeout(() => {
      output += `\n(killed after ${formatMs(timeoutMs)})`;
      kill();
    }, timeoutMs);
    signal?.addEventListener('abort', kill, { once: true });
    let done = false;
    const finish = (r: CommandResult) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', kill);
      child.stdout.destroy();
      child.stderr.destroy();
      resolve(r);
    };
    child.on('error', (err) => finish({ code: null, output: `${output}${err.message}` }));
    child.on('exit', (code, sig) => setImmediate(() => finish({ code, signal: sig, output: output.trim() })));
  });
}

export class DockerWatchdog {
  readonly metrics: WatchdogMetrics;
  private readonly failuresBeforeRestart: number;
  private readonly intervalMs: number;
  private readonly pingTimeoutMs: number;
  private readonly initialMs: number;
  private readonly maxMs: number;
  private readonly factor: number;
  private readonly stableMs: number;
  private readonly restartTimeoutMs: number;
  private readonly restartCommand: string[] | false;
  private readonly now: () => number;
  private readonly run: (argv: string[], timeoutMs: number) => Promise<CommandResult>;

  private up: boolean | undefined;
  private failures = 0;
  private restarts = 0;
  /** restarts since the daemon was last stable: the backoff exponent */
  private level = 0;
  private downSince?: number;
  private healthySince?: number;
  private lastRestartAt?: number;
  private nextRestartAt = 0;
  private restartsThisOutage = 0;
  private deferredLogged = false;
  private timer?: NodeJS.Timeout;
  private running = false;
  private current?: Promise<void>;
  private restarting = false;

  constructor(private readonly opts: DockerWatchdogOptions) {
    this.failuresBeforeRestart = Math.max(1, opts.failuresBeforeRestart ?? 3);
    this.intervalMs = opts.intervalMs ?? 5000;
    this.pingTimeoutMs = opts.pingTimeoutMs ?? 5000;
    this.initialMs = opts.backoff?.initialMs ?? 10_000;
    this.maxMs = opts.backoff?.maxMs ?? 300_000;
    this.factor = opts.backoff?.factor ?? 2;
    this.stableMs = opts.stableMs ?? 600_000;
    this.restartTimeoutMs = opts.restartTimeoutMs ?? 120_000;
    this.restartCommand = opts.restartCommand === undefined ? DEFAULT_RESTART_COMMAND : opts.restartCommand;
    if (this.restartCommand !== false && (this.restartCommand.length === 0 || this.restartCommand[0] === '')) {
      throw new Error('DockerWatchdog: restartCommand must be a non-empty argv (or false)');
    }
    this.now = opts.now ?? Date.now;
    this.run = opts.runCommand ?? runCommand;
    this.metrics = watchdogMetrics(opts.registry);
  }

  /** Delay after the n-th restart (n from 0) before another one may run. */
  backoffMs(n: number): number {
    return Math.min(this.maxMs, Math.round(this.initialMs * this.factor ** n));
  }

  status(): WatchdogStatus {
    return {
      up: this.up,
      consecutiveFailures: this.failures,
      restarts: this.restarts,
      downSince: this.downSince,
      lastRestartAt: this.lastRestartAt,
      nextRestartAt: this.lastRestartAt === undefined ? undefined : this.nextRestartAt,
    };
  }

  /** Starts probing every intervalMs (the first probe after one interval). */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.schedule();
  }

  /**
   * Stops probing. Waits for a probe in flight, but not for a restart command: that one is
   * left to finish on its own (killing `systemctl restart docker`, or a script, half-way could
   * leave dockerd stopped with nobody left to start it).
   */
  async stop(): Promise<void> {
    this.running = false;
    clearTimeout(this.timer);
    if (!this.restarting) await this.current;
  }

  private schedule(): void {
    this.timer = setTimeout(() => {
      this.current = this.tick()
        .catch((err) => this.opts.log?.error({ err: (err as Error).message }, 'docker watchdog probe failed'))
        .finally(() => {
          this.current = undefined;
          if (this.running) this.schedule();
        });
    }, this.intervalMs);
    this.timer.unref();
  }

  private event(type: WatchdogEventType, reason: string, message: string): void {
    try {
      this.opts.onEvent?.(type, reason, message.length > MAX_EVENT_MESSAGE ? `${message.slice(0, MAX_EVENT_MESSAGE)}…` : message);
    } catch (err) {
      this.opts.log?.warn({ err: (err as Error).message }, 'docker watchdog: onEvent failed');
    }
  }

  private async probe(): Promise<Error | undefined> {
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        this.opts.ping(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no answer within ${formatMs(this.pingTimeoutMs)}`)), this.pingTimeoutMs);
        }),
      ]);
      return undefined;
    } catch (err) {
      return err instanceof Error ? err : new Error(String(err));
    } finally {
      clearTimeout(timer);
    }
  }

  /** One probe, and a restart when it is due. The loop calls this; tests call it directly. */
  async tick(): Promise<void> {
    const err = await this.probe();
    const now = this.now();
    if (!err) {
      this.metrics.up.set(1);
      this.up = true;
      if (this.downSince !== undefined) {
        const restarted = this.restartsThisOutage > 0 ? `; restarted ${this.restartsThisOutage} time(s)` : ' without a restart';
        const msg = `Docker daemon answers again after ${formatMs(now - this.downSince)} down${restarted}`;
        this.opts.log?.info({ downMs: now - this.downSince, restarts: this.restartsThisOutage }, msg);
        this.event('Normal', 'DockerRecovered', msg);
        this.failures = 0;
        this.downSince = undefined;
        this.restartsThisOutage = 0;
        this.deferredLogged = false;
        this.healthySince = now;
        try {
          await this.opts.onRecovered?.();
        } catch (e) {
          this.opts.log?.warn({ err: (e as Error).message }, 'docker watchdog: re-sync after recovery failed');
        }
        return;
      }
      this.healthySince ??= now;
      if (this.level > 0 && now - this.healthySince >= this.stableMs) this.level = 0;
      return;
    }

    this.failures++;
    this.metrics.pingFailures.inc();
    this.metrics.up.set(0);
    this.up = false;
    this.healthySince = undefined;
    this.downSince ??= now;
    this.opts.log?.warn({ err: err.message, failures: this.failures }, 'Docker daemon ping failed');
    if (this.failures < this.failuresBeforeRestart) return;
    if (this.restartCommand === false) {
      if (this.failures === this.failuresBeforeRestart) {
        this.event('Warning', 'DockerUnreachable', `Docker daemon did not answer ${this.failures} pings in a row (${err.message}); no restart command is configured`);
      }
      return;
    }
    if (now < this.nextRestartAt) {
      if (!this.deferredLogged) {
        this.deferredLogged = true;
        this.opts.log?.warn({ inMs: this.nextRestartAt - now }, 'Docker daemon still down; next restart after the backoff');
      }
      return;
    }
    await this.restart(err);
  }

  private async restart(cause: Error): Promise<void> {
    const argv = this.restartCommand as string[];
    const delay = this.backoffMs(this.level);
    this.level++;
    this.restarts++;
    this.restartsThisOutage++;
    this.deferredLogged = false;
    const shown = argv.join(' ');
    this.event('Warning', 'DockerRestarting',
      `Docker daemon did not answer ${this.failures} pings in a row (last: ${cause.message}); restarting it with \`${shown}\` (restart ${this.restartsThisOutage} of this outage)`);
    this.opts.log?.warn({ command: argv, failures: this.failures }, 'restarting the Docker daemon');
    const t0 = this.now();
    this.restarting = true;
    let res: CommandResult;
    try {
      res = await this.run(argv, this.restartTimeoutMs);
    } finally {
      this.restarting = false;
    }
    const took = this.now() - t0;
    this.lastRestartAt = this.now();
    this.nextRestartAt = this.lastRestartAt + delay;
    // The next restart needs fresh evidence: another run of failed pings after this one.
    this.failures = 0;
    if (res.code === 0) {
      this.metrics.restarts.inc({ result: 'ok' });
      this.opts.log?.info({ tookMs: took }, `\`${shown}\` finished`);
    } else {
      this.metrics.restarts.inc({ result: 'failed' });
      const why = res.code === null ? (res.signal ? `was killed (${res.signal})` : 'did not run') : `exited with code ${res.code}`;
      const msg = `\`${shown}\` ${why} after ${formatMs(took)}${res.output ? `: ${res.output.slice(-1000)}` : ''}; next restart not before ${formatMs(delay)}`;
      this.opts.log?.error({ code: res.code, output: res.output }, msg);
      this.event('Warning', 'DockerRestartFailed', msg);
    }
  }
}

/** Does the daemon run with live-restore (containers survive a dockerd restart)? */
export async function checkLiveRestore(docker: { info(): Promise<unknown> }): Promise<boolean> {
  const info = (await docker.info()) as { LiveRestoreEnabled?: boolean };
  return info.LiveRestoreEnabled === true;
}

/** What the agent prints (and records as an event) when live-restore is off. */
export const LIVE_RESTORE_HELP =
  'the Docker daemon runs without live-restore: restarting or upgrading dockerd — and the watchdog restarting a hung one — ' +
  'stops every container on this node. Add "live-restore": true to /etc/docker/daemon.json and run `systemctl reload docker` ' +
  '(a reload applies it without touching containers), or pass --allow-no-live-restore to run anyway';

/**
 * Parses --docker-restart-cmd: a JSON array of strings ('["systemctl","restart","docker"]')
 * or words separated by spaces (no quoting, no shell); 'none' or '' = never restart.
 */
export function parseRestartCommand(s: string): string[] | false {
  const t = s.trim();
  if (t === '' || t === 'none') return false;
  if (t.startsWith('[')) {
    let v: unknown;
    try {
      v = JSON.parse(t);
    } catch {
      throw new Error(`--docker-restart-cmd: not a JSON array: ${s}`);
    }
    if (!Array.isArray(v) || v.length === 0 || !v.every((x) => typeof x === 'string' && x !== '')) {
      throw new Error('--docker-restart-cmd: expected a non-empty JSON array of non-empty strings');
    }
    return v as string[];
  }
  return t.split(/\s+/);
}
