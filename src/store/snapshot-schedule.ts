/**
 * Scheduled snapshots: `saveSnapshot` into a directory now and every interval, files
 * named by their UTC time (kiver-20261202T051500Z.snap, so names sort by age), the
 * newest `keep` kept. A failed save is reported and retried at the next tick.
 */
import { mkdir, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { saveSnapshot } from './snapshot.js';
import type { Store } from './store.js';

const NAME = /^kiver-\d{8}T\d{6}Z\.snap$/;

export const snapshotName = (d: Date) => `kiver-${d.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')}.snap`;

/** Deletes all but the newest `keep` snapshots in `dir`; returns the names deleted. */
export async function pruneSnapshots(dir: string, keep: number): Promise<string[]> {
  const names = (await readdir(dir)).filter((n) => NAME.test(n)).sort();
  const old = names.slice(0, Math.max(0, names.length - keep));
  for (const n of old) await rm(join(dir, n), { force: true });
  return old;
}

/** Starts the schedule; the returned function stops it (waiting for a save under way). */
export function scheduleSnapshots(store: Store, dir: string, everyMs: number, keep: number, say: (l: string) => void): () => Promise<void> {
  let running: Promise<void> = Promise.resolve();
  const once = async () => {
    try {
      await mkdir(dir, { recursive: true, mode: 0o700 });
      const file = join(dir, snapshotName(new Date()));
      const r = await saveSnapshot(store, file);
      const pruned = await pruneSnapshots(dir, keep);
      say(`saved ${r.keys} keys at revision ${r.revision} to ${file}${pruned.length ? `; deleted ${pruned.length} older` : ''}`);
    } catch (err) {
      say(`snapshot failed: ${(err as Error).message} (retried in ${everyMs / 1000} s)`);
    }
  };
  running = once();
  const timer = setInterval(() => {
    running = running.then(once);
  }, everyMs);
  return async () => {
    clearInterval(timer);
    await running;
  };
}
