/**
 * The boot-file reaper (the fix for the talk's incident): deletes every Kiver-written
 * per-MAC boot file older than the max age (default 2 h), and never touches a file
 * Kiver did not write. Runs on a timer in the server and by hand (`kiver machine reap`).
 * `expireInstalls` marks machines whose install token has expired as failed, so the
 * state says why the machine is not installed.
 */
import type { BootFileInfo, BootFileWriter } from './bootfiles.js';
import { mutateMachine, systemClock, withPhase, type Clock, type MachineStore } from './machine-store.js';

export const DEFAULT_MAX_AGE_MS = 2 * 60 * 60 * 1000;
export const DEFAULT_REAP_INTERVAL_MS = 5 * 60 * 1000;

export interface ReapResult {
  deleted: BootFileInfo[];
  kept: BootFileInfo[];
  expiredInstalls: string[];
}

export interface ReaperOptions {
  bootFiles: Pick<BootFileWriter, 'list' | 'removeIfKiver'>;
  store?: MachineStore;
  maxAgeMs?: number;
  clock?: Clock;
  onReap?: (r: ReapResult) => void;
}

/**
 * Machines `installing` past their token expiry → failed (their boot files are reaped
 * too). With `maxAgeMs`, an install older than that counts as expired as well: its boot
 * files are being reaped, so it cannot go on (a hand-run `reap --max-age` shorter than
 * the token lifetime).
 */
export async function expireInstalls(store: MachineStore, clock: Clock = systemClock, maxAgeMs?: number): Promise<string[]> {
  const now = clock.now();
  const expired: string[] = [];
  const isExpired = (inst: { expiresAt: string; startedAt: string }) =>
    new Date(inst.expiresAt).getTime() <= now.getTime() || (maxAgeMs !== undefined && now.getTime() - new Date(inst.startedAt).getTime() > maxAgeMs);
  for (const v of await store.list()) {
    const inst = v.value.status.install;
    if (v.value.status.phase !== 'installing' || !inst || !isExpired(inst)) continue;
    try {
      await mutateMachine(store, v.value.name, (m) => {
        if (m.status.phase !== 'installing' || m.status.install?.tokenSha256 !== inst.tokenSha256) return m;
        const reason = new Date(inst.expiresAt).getTime() <= now.getTime()
          ? `the installer did not report within the boot file's lifetime (expired ${inst.expiresAt}); boot files removed`
          : `the installer did not report within the reaper's max age (${Math.round(maxAgeMs! / 1000)} s, started ${inst.startedAt}); boot files removed`;
        const f = withPhase(m, 'failed', now, reason, reason);
        delete f.status.install;
        return f;
      });
      expired.push(v.value.name);
    } catch {
      // Changed concurrently (e.g. reported installed): nothing to do.
    }
  }
  return expired;
}

export async function reapBootFiles(opts: ReaperOptions): Promise<ReapResult> {
  const clock = opts.clock ?? systemClock;
  const maxAge = opts.maxAgeMs ?? DEFAULT_MAX_AGE_MS;
  const now = clock.now();
  const deleted: BootFileInfo[] = [];
  const kept: BootFileInfo[] = [];
  for (const f of await opts.bootFiles.list(now)) {
    if (f.ageMs > maxAge && (await opts.bootFiles.removeIfKiver(f.path))) deleted.push(f);
    else kept.push(f);
  }
  const expiredInstalls = opts.store ? await expireInstalls(opts.store, clock, maxAge) : [];
  const r = { deleted, kept, expiredInstalls };
  opts.onReap?.(r);
  return r;
}

/** Runs the reaper every `intervalMs` (and once at start). Returns a stop function. */
export function startReaper(opts: ReaperOptions & { intervalMs?: number; onError?: (err: Error) => void }): () => void {
  let stopped = false;
  let running = false;
  const tick = async () => {
    if (stopped || running) return;
    running = true;
    try {
      await reapBootFiles(opts);
    } catch (err) {
      opts.onError?.(err as Error);
    } finally {
      running = false;
    }
  };
  void tick();
  const t = setInterval(() => void tick(), opts.intervalMs ?? DEFAULT_REAP_INTERVAL_MS);
  t.unref();
  return () => {
    stopped = true;
    clearInterval(t);
  };
}
