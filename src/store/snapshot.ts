/**
 * Control-plane snapshots, backend-neutral: JSON lines of every /kiver/ key, so a
 * snapshot from SQLite restores onto etcd (the documented migration path) and back.
 * Lease-bound keys (node liveness, the leader) are left out: they belong to
 * processes, not to the cluster's desired state.
 */
import { createReadStream } from 'node:fs';
import { open, rename } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import type { Op, Store } from './store.js';
import { InputError, ConflictError } from '../errors.js';
import { K } from '../model/keys.js';

interface Header {
  kind: 'kiver-snapshot';
  version: 1;
  revision: number;
  createdAt: string;
}

export async function saveSnapshot(store: Store, file: string): Promise<{ keys: number; revision: number }> {
  const res = await store.list(K.root);
  const tmp = `${file}.tmp-${process.pid}`;
  const fh = await open(tmp, 'w', 0o600); // holds token hashes and service env: owner only
  let keys = 0;
  try {
    const header: Header = { kind: 'kiver-snapshot', version: 1, revision: res.revision, createdAt: new Date().toISOString() };
    await fh.write(`${JSON.stringify(header)}\n`);
    for (const kv of res.kvs) {
      if (kv.lease !== 0) continue;
      await fh.write(`${JSON.stringify({ key: kv.key, value: kv.value })}\n`);
      keys++;
    }
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, file);
  return { keys, revision: res.revision };
}

/** Restores onto an empty store (or over an existing one with force). Nothing is written if the file is bad. */
export async function restoreSnapshot(store: Store, file: string, opts: { force?: boolean } = {}): Promise<{ keys: number }> {
  const entries: { key: string; value: string }[] = [];
  let line = 0;
  const rl = createInterface({ input: createReadStream(file), crlfDelay: Infinity });
  for await (const text of rl) {
    line++;
    if (text.trim() === '') continue;
    let obj: unknown;
    try {
      obj = JSON.parse(text);
    } catch {
      throw new InputError(`${file}:${line}: not JSON`, 'file');
    }
    if (line === 1) {
      const h = obj as Partial<Header>;
      if (h.kind !== 'kiver-snapshot' || h.version !== 1) throw new InputError(`${file}: not a Kiver snapshot (version 1)`, 'file');
      continue;
    }
    const e = obj as { key?: unknown; value?: unknown };
    if (typeof e.key !== 'string' || !e.key.startsWith(K.root) || typeof e.value !== 'string') {
      throw new InputError(`${file}:${line}: expected {"key": "/kiver/…", "value": "…"}`, 'file');
    }
    entries.push({ key: e.key, value: e.value });
  }
  if (line === 0) throw new InputError(`${file}: empty`, 'file');
  const existing = await store.list(K.root, { limit: 1 });
  if (existing.kvs.length > 0 && !opts.force) {
    throw new ConflictError('the target store is not empty; restore onto an empty store, or pass --force to overwrite keys');
  }
  for (let i = 0; i < entries.length; i += 100) {
    const ops: Op[] = entries.slice(i, i + 100).map((e) => ({ type: 'put', key: e.key, value: e.value }));
    await store.txn({ compare: [], success: ops });
  }
  return { keys: entries.length };
}
