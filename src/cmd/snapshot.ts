import type { Command } from 'commander';
import { join } from 'node:path';
import { openStore } from '../store/open.js';
import { InputError } from '../errors.js';
import { restoreSnapshot, saveSnapshot } from '../store/snapshot.js';
import { defaultDataDir } from '../cli/config.js';
import { print } from '../cli/output.js';
import { parseDuration, parseInteger } from '../cli/flags.js';
import { scheduleSnapshots } from '../store/snapshot-schedule.js';
import { onSignal } from './process.js';

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

  storeOpts(snap.command('schedule <dir>').description('save a snapshot into DIR now and every --every, keeping the newest --keep (runs until stopped; kiver node init --role control runs it)'))
    .option('--every <duration>', 'time between snapshots', '1h')
    .option('--keep <n>', 'snapshots kept (older ones are deleted)', '24')
    .action(async (dir: string, o) => {
      const everyMs = parseDuration(o.every, 'every') * 1000;
      if (everyMs < 1000) throw new InputError('--every must be at least 1s', 'every');
      const keep = parseInteger(o.keep, 'keep', 1, 100_000);
      const store = await openStore(storeUrl(o));
      const stop = scheduleSnapshots(store, dir, everyMs, keep, (l) => process.stdout.write(`${new Date().toISOString()} ${l}\n`));
      onSignal(async () => {
        await stop();
        await store.close();
      });
    });
}
