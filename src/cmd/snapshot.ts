import type { Command } from 'commander';
import { join } from 'node:path';
import { openStore } from '../store/open.js';
import { restoreSnapshot, saveSnapshot } from '../store/snapshot.js';
import { defaultDataDir } from '../cli/config.js';
import { print } from '../cli/output.js';

function storeUrl(o: { store?: string; dataDir: string }): string {
  return o.store ?? `sqlite:${join(o.dataDir, 'kiver.db')}`;
}

/** `kiver admin snapshot save|restore`: offline, straight on the store (no server needed). */
export function registerSnapshot(admin: Command): void {
  const snap = admin.command('snapshot').description('save or restore the control-plane state (any store backend)');
  const storeOpts = (c: Command) =>
    c.option('--store <url>', 'sqlite:PATH or etcd://h1:2379,… (default: the sqlite store in --data-dir)')
      .option('--data-dir <dir>', 'data dir of `kiver up` / `kiver server`', defaultDataDir());

  storeOpts(snap.command('save <file>').description('write every object to FILE (JSON lines, mode 0600)'))
    .action(async (file: string, o, cmd: Command) => {
      const store = await openStore(storeUrl(o));
      try {
        const r = await saveSnapshot(store, file);
        print(cmd, { file, ...r }, () => `saved ${r.keys} keys at revision ${r.revision} to ${file}`);
      } finally {
        await store.close();
      }
    });

  storeOpts(snap.command('restore <file>').description('load FILE into an empty store (stop the servers first)'))
    .option('--force', 'overwrite keys in a store that is not empty')
    .action(async (file: string, o, cmd: Command) => {
      const store = await openStore(storeUrl(o));
      try {
        const r = await restoreSnapshot(store, file, { force: o.force });
        print(cmd, { file, ...r }, () => `restored ${r.keys} keys from ${file}`);
      } finally {
        await store.close();
      }
    });
}
