/**
 * Host directories of a replica: <data-root>/<service>/<ordinal> and
 * <log-root>/<service>/<ordinal>. They derive from the replica's identity, so
 * the same replica recreated mounts the same data (MISSION M3).
 */
import { mkdir, rm, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { isServiceName } from '../model/names.js';
import { InputError } from '../errors.js';

export interface Roots {
  dataRoot: string;
  logRoot: string;
}

function checked(service: string, ordinal: number): void {
  // Names come from the server's validated store, but a path is built from them: check again.
  if (!isServiceName(service) || !Number.isInteger(ordinal) || ordinal < 0) {
    throw new InputError(`refusing unsafe replica identity ${JSON.stringify(service)}/${ordinal}`);
  }
}

export function replicaDirs(roots: Roots, service: string, ordinal: number): { data: string; log: string } {
  checked(service, ordinal);
  return { data: join(roots.dataRoot, service, String(ordinal)), log: join(roots.logRoot, service, String(ordinal)) };
}

export async function ensureDirs(roots: Roots, service: string, ordinal: number): Promise<{ data: string; log: string }> {
  const d = replicaDirs(roots, service, ordinal);
  await mkdir(d.data, { recursive: true });
  await mkdir(d.log, { recursive: true });
  return d;
}

/** Deletes a replica's data and log directories (delete --purge), then empty service dirs. */
export async function purgeDirs(roots: Roots, service: string, ordinal: number): Promise<void> {
  const d = replicaDirs(roots, service, ordinal);
  await rm(d.data, { recursive: true, force: true });
  await rm(d.log, { recursive: true, force: true });
  for (const root of [roots.dataRoot, roots.logRoot]) {
    await rmdir(join(root, service)).catch(() => {}); // only if empty
  }
}
