/**
 * The `app` service type's backup: a file-level tar stream of the replica's data
 * directory (`<data-root>/<service>/<ordinal>`), made by GNU tar (argv array, paths
 * built from the validated replica identity). Consistent only for data at rest: an app
 * that writes while it runs gets a fuzzy copy (databases use their own hooks).
 * Position: the file count and newest mtime in the stream.
 *
 * Restore extracts into `<data-root>/.restore/<service>-<ordinal>` and, on commit,
 * renames it to the replica's data directory, which must not exist yet (a restore
 * never writes over a live replica's data).
 */
import { spawn } from 'node:child_process';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { replicaDirs } from '../agent/volumes.js';
import type { BackupHooks, BackupSource, BackupStream, ReplicaPlace, RestoreConsumer } from './source.js';

function dataDir(p: ReplicaPlace): string {
  return replicaDirs({ dataRoot: p.dataRoot, logRoot: p.dataRoot }, p.service, p.ordinal).data;
}

export class AppFilesSource implements BackupSource {
  readonly kind = 'app-files';
  constructor(private readonly place: ReplicaPlace) {}

  async open(signal: AbortSignal): Promise<BackupStream> {
    const dir = dataDir(this.place);
    await stat(dir); // a replica without a data directory has nothing to back up: say so
    // --verbose lists each file on stderr: the position counts them.
    const p = spawn('tar', ['--create', '--file=-', '--verbose', '--numeric-owner', '--directory', dir, '.'], { stdio: ['ignore', 'pipe', 'pipe'], signal });
    let files = 0;
    let errText = '';
    let buf = '';
    p.stderr.on('data', (d: Buffer) => {
      buf += d.toString();
      const lines = buf.split('\n');
      buf = lines.pop()!;
      for (const l of lines) if (l.startsWith('./') || l === '.') files++; else errText = (errText + l + '\n').slice(-2000);
    });
    const position = new Promise<{ kind: string; files: number; at: string }>((resolve, reject) => {
      p.on('error', reject);
      p.on('close', (code) => {
        if (code === 0) resolve({ kind: this.kind, files: Math.max(0, files - 1), at: new Date().toISOString() });
        else {
          const err = new Error(`tar of ${dir} exited ${code}: ${errText.trim()}`);
          p.stdout.destroy(err);
          reject(err);
        }
      });
    });
    position.catch(() => {});
    return { stream: p.stdout, position };
  }
}

export class AppFilesRestore implements RestoreConsumer {
  private readonly staging: string;
  constructor(private readonly place: ReplicaPlace) {
    this.staging = join(place.dataRoot, '.restore', `${place.service}-${place.ordinal}`);
  }

  async receive(stream: Readable): Promise<void> {
    await rm(this.staging, { recursive: true, force: true });
    await mkdir(this.staging, { recursive: true, mode: 0o700 });
    // --ignore-zeros: read to the end of the stream (past the end-of-archive blocks), so every byte is hashed.
    const p = spawn('tar', ['--extract', '--file=-', '--ignore-zeros', '--numeric-owner', '--no-same-owner', '--directory', this.staging], { stdio: ['pipe', 'ignore', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d) => (err = (err + d).slice(-2000)));
    const exited = new Promise<number>((r) => p.on('close', (c) => r(c ?? 1)));
    await pipeline(stream, p.stdin);
    const code = await exited;
    if (code !== 0) throw new Error(`tar extract exited ${code}: ${err.trim()}`);
  }

  async commit(): Promise<void> {
    const dir = dataDir(this.place);
    const exists = await stat(dir).then(() => true, () => false);
    if (exists) throw new Error(`${dir} exists already; a restore never writes over existing data`);
    await mkdir(join(dir, '..'), { recursive: true });
    await rename(this.staging, dir);
  }

  async discard(): Promise<void> {
    await rm(this.staging, { recursive: true, force: true });
  }
}

export const appFilesHooks: BackupHooks = {
  matches: () => true,
  source: (p) => new AppFilesSource(p),
  consumer: (p) => new AppFilesRestore(p),
};
