/**
 * Helpers for the log guard's integration tests: temp trees that are always removed,
 * child processes that are always killed, polling with deadlines, a capturing logger.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TestContext } from 'node:test';
import type { Registry } from 'prom-client';
import { LogGuard, type GuardLogger, type LogGuardOptions } from '../../src/guard/index.js';
import { linkNameFor, toBuf, utf8Bytes } from '../../src/guard/link-name.js';
import { until } from './kiver.js';

const children = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

/** Polls `fn` until it returns a truthy value; throws with `what` after `timeoutMs`. */
export function waitFor<T>(fn: () => T | Promise<T>, what: string, timeoutMs = 5_000, intervalMs = 10): Promise<T> {
  return until(what, async () => fn(), timeoutMs, intervalMs);
}

export interface LogRecord {
  level: 'debug' | 'info' | 'warn' | 'error';
  obj: object;
  msg: string;
}

export function captureLogger(): GuardLogger & { records: LogRecord[] } {
  const records: LogRecord[] = [];
  const at = (level: LogRecord['level']) => (obj: object, msg?: string) => {
    records.push({ level, obj, msg: msg ?? '' });
  };
  return { records, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

export interface Tree {
  base: string;
  /** The log root (real path). */
  root: string;
  /** The flat directory (not created yet). */
  out: string;
  /** Absolute path of a file under the root, for a '/'-separated relative path. */
  at(rel: string): string;
  /** Creates the parents and writes the file. */
  write(rel: string, data?: string): string;
  mkdir(rel: string): string;
  /** The link path the guard must create for `rel` (a UTF-8 path or a Buffer of raw bytes). */
  linkFor(rel: string | Buffer): Buffer;
  /** The link's target, or null when there is no symlink. */
  target(rel: string | Buffer): string | null;
  /** Names in the flat directory (UTF-8 decoded). */
  outNames(): string[];
}

/** A fresh temp tree `<base>/log` with the flat directory `<base>/flat`, removed after the test. */
export function makeTree(t: TestContext, outInsideRoot = false): Tree {
  const base = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'kiver-guard-test-')));
  t.after(() => fs.rmSync(base, { recursive: true, force: true }));
  const root = path.join(base, 'log');
  fs.mkdirSync(root);
  const out = outInsideRoot ? path.join(root, '.shipper') : path.join(base, 'flat');
  const relBytes = (rel: string | Buffer) => (typeof rel === 'string' ? utf8Bytes(rel) : rel.toString('latin1'));
  const tree: Tree = {
    base,
    root,
    out,
    at: (rel) => path.join(root, rel),
    write(rel, data = 'line\n') {
      const p = path.join(root, rel);
      fs.mkdirSync(path.dirname(p), { recursive: true });
      fs.writeFileSync(p, data);
      return p;
    },
    mkdir(rel) {
      const p = path.join(root, rel);
      fs.mkdirSync(p, { recursive: true });
      return p;
    },
    linkFor: (rel) => Buffer.concat([Buffer.from(out + '/'), toBuf(linkNameFor(relBytes(rel)))]),
    target(rel) {
      try {
        return fs.readlinkSync(tree.linkFor(rel), { encoding: 'buffer' }).toString('latin1');
      } catch {
        return null;
      }
    },
    outNames: () => (fs.existsSync(out) ? fs.readdirSync(out).sort() : []),
  };
  return tree;
}

/** The byte-string target the guard must give the link of `rel`. */
export function expectedTarget(tree: Tree, rel: string | Buffer): string {
  const r = typeof rel === 'string' ? utf8Bytes(rel) : rel.toString('latin1');
  return `${utf8Bytes(tree.root)}/${r}`;
}

/** Waits until `rel` has its link pointing at it. */
export function waitLinked(tree: Tree, rel: string | Buffer, timeoutMs = 5_000): Promise<boolean> {
  return waitFor(() => tree.target(rel) === expectedTarget(tree, rel), `link for ${String(rel)}`, timeoutMs);
}

/** Waits until `rel` has no link. */
export function waitUnlinked(tree: Tree, rel: string | Buffer, timeoutMs = 5_000): Promise<boolean> {
  return waitFor(() => !fs.existsSync(tree.linkFor(rel)) && tree.target(rel) === null, `no link for ${String(rel)}`, timeoutMs);
}

/** Starts a guard on the tree with a capturing logger; stopped after the test. */
export async function startGuard(
  t: TestContext,
  tree: Tree,
  opts: Partial<LogGuardOptions> = {},
): Promise<{ guard: LogGuard; logs: ReturnType<typeof captureLogger> }> {
  const logs = captureLogger();
  const guard = new LogGuard({ root: tree.root, out: tree.out, logger: logs, rescanIntervalMs: 0, ...opts });
  t.after(() => guard.stop());
  await guard.start();
  return { guard, logs };
}

/** Sum of a metric's values whose labels include `labels`. */
export async function metricValue(registry: Registry, name: string, labels: Record<string, string> = {}): Promise<number> {
  const m = registry.getSingleMetric(name);
  if (!m) throw new Error(`no metric ${name}`);
  const data = await m.get();
  let sum = 0;
  for (const v of data.values) {
    const l = v.labels as Record<string, string | number>;
    if (Object.entries(labels).every(([k, want]) => String(l[k]) === want)) sum += v.value;
  }
  return sum;
}

/** Spawns a child that is killed after the test (and at exit), collecting its output. */
export function spawnChild(
  t: TestContext,
  cmd: string,
  args: string[],
  opts: SpawnOptions = {},
): { child: ChildProcess; stdout: () => string; stderr: () => string; exited: Promise<number | null> } {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  children.add(child);
  let out = '';
  let err = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString('utf8')));
  child.stderr?.on('data', (d: Buffer) => (err += d.toString('utf8')));
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
    children.delete(child);
  });
  return { child, stdout: () => out, stderr: () => err, exited };
}
