/**
 * Docker's daemon configuration: Kiver's keys merged into /etc/docker/daemon.json,
 * every other key kept. A file that is not a JSON object stops the run before any
 * change. Tells the later steps whether dockerd must restart or only reload.
 */
import { chmodSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { BootstrapError, type Step } from './step.js';
import { DAEMON_JSON } from './node-host.js';
import type { InitContext } from './context.js';

/** Keys dockerd applies on SIGHUP (dockerd(8), "Configuration reload behavior"); any other needs a restart. */
export const RELOADABLE_KEYS = new Set([
  'debug', 'labels', 'live-restore', 'max-concurrent-downloads', 'max-concurrent-uploads', 'max-download-attempts',
  'default-runtime', 'runtimes', 'authorization-plugins', 'insecure-registries', 'registry-mirrors', 'shutdown-timeout',
  'features', 'builder', 'default-shm-size',
]);

export type DaemonConfig = Record<string, unknown>;

/** What Kiver needs from dockerd. `data-root` is a path on this machine (under --root in tests). */
export function wantedDaemonConfig(ctx: InitContext): DaemonConfig {
  return {
    'live-restore': true, // containers keep running while dockerd restarts (Kiver relies on it)
    'userland-proxy': false, // published ports through iptables NAT: docker-proxy halved throughput
    'log-driver': 'json-file',
    'log-opts': { 'max-size': ctx.s.logMaxSize, 'max-file': String(ctx.s.logMaxFile) },
    'data-root': ctx.host.path(ctx.s.dockerRoot),
  };
}

/** Reads daemon.json: {} when absent or empty; BootstrapError when it is not a JSON object. */
export function readDaemonConfig(file: string): { config: DaemonConfig; existed: boolean } {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { config: {}, existed: false };
    throw err;
  }
  if (text.trim() === '') return { config: {}, existed: true };
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw new BootstrapError(`${file} is not valid JSON (${(err as Error).message}); fix or remove it — nothing was changed`);
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new BootstrapError(`${file} must hold a JSON object; fix or remove it — nothing was changed`);
  return { config: v as DaemonConfig, existed: true };
}

/**
 * Merges `want` into `cur`: other keys stay; object values (log-opts) are merged key
 * by key so a user's other log options stay too. Returns the result and the keys changed.
 */
export function mergeDaemonConfig(cur: DaemonConfig, want: DaemonConfig): { next: DaemonConfig; changed: string[] } {
  const next: DaemonConfig = { ...cur };
  const changed: string[] = [];
  for (const [k, v] of Object.entries(want)) {
    const old = cur[k];
    const merged = v && typeof v === 'object' && !Array.isArray(v) && old && typeof old === 'object' && !Array.isArray(old) ? { ...(old as object), ...(v as object) } : v;
    if (!isDeepStrictEqual(old, merged)) {
      next[k] = merged;
      changed.push(k);
    }
  }
  return { next, changed };
}

export function daemonConfigStep(ctx: InitContext): Step {
  const file = ctx.host.path(DAEMON_JSON);
  let next: DaemonConfig = {};
  return {
    name: 'docker daemon config',
    async check() {
      const { config } = readDaemonConfig(file);
      const m = mergeDaemonConfig(config, wantedDaemonConfig(ctx));
      next = m.next;
      if (m.changed.length === 0) return [];
      const fixed = m.changed.filter((k) => !RELOADABLE_KEYS.has(k));
      if (fixed.length) ctx.dockerdRestart = `${fixed.join(', ')} changed`;
      else ctx.dockerdReload = true;
      return [`set ${m.changed.map((k) => `${k}=${JSON.stringify(next[k])}`).join(', ')} in ${DAEMON_JSON} (other keys kept)`];
    },
    async apply() {
      mkdirSync(dirname(file), { recursive: true });
      const tmp = `${file}.kiver-tmp`;
      writeFileSync(tmp, `${JSON.stringify(next, null, 2)}\n`, { mode: 0o644 });
      chmodSync(tmp, 0o644);
      renameSync(tmp, file);
      return [`wrote ${DAEMON_JSON}`];
    },
  };
}
