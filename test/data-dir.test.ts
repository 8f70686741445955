/**
 * The server's data dir (issue 9, item 4): private on every start, refused when
 * another user owns it, and a full disk under the store answers 507 with a
 * metric, logged once per episode. The full disk is a real 8 MiB tmpfs (root).
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmod, chown, mkdir, mkdtemp, open, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { KiverServer } from '../src/server/server.js';
import { createLogger } from '../src/log.js';

const silent = () => createLogger('test', 'silent');

describe('data dir', () => {
  const dirs: string[] = [];
  const mounts: string[] = [];
  after(async () => {
    for (const m of mounts) { try { execFileSync('umount', ['-l', m]); } catch { /* gone */ } }
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it('tightens a pre-made 0755 dir and world-readable files to 0700 / 0600 on every start', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kiver-datadir-'));
    dirs.push(dir);
    let server = await KiverServer.start({ dataDir: dir, listen: '127.0.0.1:0', log: silent() });
    await server.close();
    await chmod(dir, 0o755);
    for (const f of await readdir(dir)) await chmod(join(dir, f), 0o644);
    await writeFile(join(dir, 'kiver.db-stale'), 'x', { mode: 0o644 });
    server = await KiverServer.start({ dataDir: dir, listen: '127.0.0.1:0', log: silent() });
    try {
      assert.equal((await stat(dir)).mode & 0o777, 0o700);
      const files = await readdir(dir);
      assert.ok(files.includes('kiver.db') && files.includes('admin.token'), files.join(','));
      for (const f of files) {
        const st = await stat(join(dir, f));
        if (st.isFile()) assert.equal(st.mode & 0o077, 0, `${f} is ${(st.mode & 0o777).toString(8)}`);
      }
    } finally {
      await server.close();
    }
  });

  it('refuses a data dir another user owns, naming the flag', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kiver-datadir-'));
    dirs.push(dir);
    await chown(dir, 65534, 65534);
    await assert.rejects(KiverServer.start({ dataDir: dir, listen: '127.0.0.1:0', log: silent() }), /--data-dir .* belongs to uid 65534/);
  });

  it('a full disk answers 507 with a metric, logged once per episode, and recovers', async () => {
    const mnt = await mkdtemp(join(tmpdir(), 'kiver-full-'));
    dirs.push(mnt);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=8m', 'tmpfs', mnt]);
    mounts.push(mnt);
    const lines: string[] = [];
    const log = pino({ level: 'info' }, { write: (s: string) => void lines.push(s) });
    const dataDir = join(mnt, 'state');
    await mkdir(dataDir);
    const server = await KiverServer.start({ dataDir, listen: '127.0.0.1:0', log });
    const token = server.tokens.admin;
    const post = async (name: string) => {
      const res = await fetch(`${server.url}/v1/services`, {
        method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ name, image: 'kiver/busybox', replicas: 0, env: { PAD: 'x'.repeat(30_000) } }),
      });
      return { status: res.status, body: (await res.json()) as { error?: { message: string } } };
    };
    try {
      // Fill the disk, then write until the store's WAL cannot grow.
      const filler = join(mnt, 'filler');
      const fh = await open(filler, 'w');
      try {
        for (;;) await fh.write(Buffer.alloc(256 * 1024));
      } catch (err) {
        assert.equal((err as NodeJS.ErrnoException).code, 'ENOSPC');
      } finally {
        await fh.close();
      }
      let full: Awaited<ReturnType<typeof post>> | undefined;
      for (let i = 0; i < 400 && !full; i++) {
        const r = await post(`s${i}`);
        if (r.status !== 201 && r.status !== 200) full = r;
      }
      assert.ok(full, 'a write failed');
      assert.equal(full.status, 507, JSON.stringify(full.body));
      assert.equal(full.body.error?.message, 'store: no space left on device');
      // More failing writes and housekeeping ticks over 3 s: still one log line.
      for (let i = 0; i < 10; i++) {
        assert.equal((await post(`t${i}`)).status, 507);
        await new Promise((r) => setTimeout(r, 300));
      }
      const metrics = await (await fetch(`${server.url}/metrics`)).text();
      assert.match(metrics, /^kiver_store_no_space 1$/m);
      assert.match(metrics, /^kiver_store_no_space_errors_total \d+/m);
      const said = lines.filter((l) => l.includes('no space left on device'));
      assert.equal(said.length, 1, said.join('\n'));
      assert.ok(!lines.some((l) => l.includes('internal error')), 'no 500s logged');

      await rm(filler);
      const ok = await post('after');
      assert.ok(ok.status === 200 || ok.status === 201, JSON.stringify(ok.body));
      assert.match(await (await fetch(`${server.url}/metrics`)).text(), /^kiver_store_no_space 0$/m);
      assert.ok(lines.some((l) => l.includes('writes succeed again')));
    } finally {
      await server.close().catch(() => {});
    }
  });
});
