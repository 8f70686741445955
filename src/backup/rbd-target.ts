/**
 * RBD target: each object is an RBD image in the pool, written by `rbd import -`
 * from the stream (the talk's route to Ceph) and read by `rbd export … -`. Object
 * keys map to image names with `/` → `~`. Runs the `rbd` CLI (ceph-common) with an
 * argv array; a cephx key goes through a 0600 key file, never the command line.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { BackupTarget } from './target.js';
import type { TargetConfig } from '../model/backup.js';

type RbdSpec = NonNullable<TargetConfig['rbd']>;

export function imageName(key: string): string {
  if (!/^[A-Za-z0-9._/-]{1,200}$/.test(key) || key.includes('..')) throw new Error(`unsafe object key ${JSON.stringify(key)}`);
  return key.replaceAll('/', '~');
}

export class RbdTarget implements BackupTarget {
  constructor(private readonly spec: RbdSpec) {}

  private async withArgs<T>(fn: (args: string[]) => Promise<T>): Promise<T> {
    const args = ['--conf', this.spec.conf ?? '/etc/ceph/ceph.conf', '--id', this.spec.user ?? 'admin'];
    if (!this.spec.key) return fn(args);
    const dir = await mkdtemp(join(tmpdir(), 'kiver-rbd-'));
    try {
      await writeFile(join(dir, 'key'), this.spec.key, { mode: 0o600 });
      return await fn([...args, '--keyfile', join(dir, 'key')]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  /** Runs rbd; stdin from `input`, stdout to `output` (else collected and returned). */
  private rbd(argv: string[], io: { input?: Readable; output?: PassThrough; signal?: AbortSignal } = {}): Promise<string> {
    return this.withArgs((base) => new Promise<string>((resolve, reject) => {
      const p = spawn('rbd', [...base, ...argv], { stdio: [io.input ? 'pipe' : 'ignore', 'pipe', 'pipe'], signal: io.signal });
      let out = '';
      let err = '';
      if (io.output) p.stdout!.pipe(io.output);
      else p.stdout!.on('data', (d) => (out += d));
      p.stderr!.on('data', (d) => (err = (err + d).slice(-2000)));
      const fed = io.input ? pipeline(io.input, p.stdin!).catch((e: Error) => { p.kill('SIGKILL'); return e; }) : Promise.resolve(undefined);
      p.on('error', reject);
      p.on('close', async (code) => {
        const inErr = await fed;
        if (code === 0 && !inErr) return resolve(out);
        const why = inErr ? `reading the backup stream failed: ${inErr.message}` : `rbd ${argv[0]} exited ${code}: ${err.trim().split('\n').pop() ?? ''}`;
        if (io.output) io.output.destroy(new Error(why));
        reject(new Error(why));
      });
    }));
  }

  async upload(key: string, body: Readable, signal?: AbortSignal): Promise<void> {
    const image = `${this.spec.pool}/${imageName(key)}`;
    try {
      await this.rbd(['import', '--no-progress', '-', image], { input: body, signal });
    } catch (err) {
      await this.rbd(['rm', '--no-progress', image]).catch(() => {}); // no partial image stays
      throw err;
    }
  }

  async download(key: string): Promise<Readable> {
    const out = new PassThrough();
    void this.rbd(['export', '--no-progress', `${this.spec.pool}/${imageName(key)}`, '-'], { output: out }).catch(() => {});
    return out;
  }

  async putSmall(key: string, body: string): Promise<void> {
    await this.upload(key, Readable.from([Buffer.from(body)]));
  }

  async getSmall(key: string): Promise<string> {
    const chunks: Buffer[] = [];
    for await (const c of await this.download(key)) chunks.push(c as Buffer);
    return Buffer.concat(chunks).toString('utf8');
  }

  async remove(key: string): Promise<void> {
    await this.rbd(['rm', '--no-progress', `${this.spec.pool}/${imageName(key)}`]).catch((err: Error) => {
      if (!/No such file|does not exist|error opening image/i.test(err.message)) throw err;
    });
  }

  async list(prefix: string): Promise<string[]> {
    const names = (await this.rbd(['ls', this.spec.pool])).split('\n').filter(Boolean);
    return names.map((n) => n.replaceAll('~', '/')).filter((k) => k.startsWith(prefix));
  }

  async prepare(): Promise<void> {
    await this.rbd(['ls', this.spec.pool]); // the pool exists and answers
  }

  close(): void {}
}
