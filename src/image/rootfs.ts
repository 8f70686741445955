/**
 * Root filesystem steps: unpack a .deb, debootstrap, apt inside a chroot, clean up,
 * and a deterministic tar (same inputs → same bytes → same Docker layer digest).
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  copyFileSync,
  createWriteStream,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
  type WriteStream,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Transform } from 'node:stream';
import { APT_LISTS_DIR, listsPrefix, type SuiteSource } from './apt.js';
import type { ImageRecipe } from './catalog.js';
import { BuildError, run } from './exec.js';

const CHROOT_ENV = {
  PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
  DEBIAN_FRONTEND: 'noninteractive',
  LC_ALL: 'C',
  HOME: '/root',
};

function inRoot(root: string, p: string): string {
  return join(root, p.replace(/^\/+/, ''));
}

/** Newest mtime (seconds) of anything under dir: the .deb's own clamp date. */
export function newestMtime(dir: string): number {
  let max = 0;
  const walk = (d: string) => {
    for (const n of readdirSync(d)) {
      const p = join(d, n);
      const st = lstatSync(p);
      max = Math.max(max, Math.floor(st.mtimeMs / 1000));
      if (st.isDirectory()) walk(p);
    }
  };
  walk(dir);
  return max;
}

/**
 * The busybox root: the package unpacked as shipped, one symlink per applet (what
 * `busybox --install -s` would do, done from the host), users, and the recipe's dirs.
 * Returns SOURCE_DATE_EPOCH: the newest file date inside the .deb.
 */
export async function assembleBusybox(deb: string, root: string, log: WriteStream): Promise<{ epoch: number; applets: number }> {
  await run('dpkg-deb', ['-x', deb, root], { log });
  const epoch = newestMtime(root);
  const busybox = ['bin/busybox', 'usr/bin/busybox'].find((p) => existsSync(join(root, p)));
  if (!busybox) throw new BuildError(`${deb} contains no busybox binary`);
  const list = await run(join(root, busybox), ['--list-full'], { capture: true });
  let applets = 0;
  for (const rel of list.split('\n').map((l) => l.trim())) {
    // Skip /linuxrc (init for initramfs) and anything that would replace busybox itself.
    if (!rel || !rel.includes('/') || rel === busybox) continue;
    const p = join(root, rel);
    if (existsSync(p)) continue;
    mkdirSync(dirname(p), { recursive: true, mode: 0o755 });
    symlinkSync(`/${busybox}`, p);
    applets++;
  }
  return { epoch, applets };
}

/** Writes the recipe's directories and files into the root with exact modes. */
export function applyRecipeFiles(recipe: ImageRecipe, root: string): void {
  for (const [dir, mode] of Object.entries(recipe.dirs)) {
    const p = inRoot(root, dir);
    mkdirSync(p, { recursive: true });
    chmodSync(p, mode);
  }
  for (const f of recipe.files) {
    const p = inRoot(root, f.path);
    mkdirSync(dirname(p), { recursive: true });
    writeFileSync(p, f.content);
    chmodSync(p, f.mode);
  }
  for (const e of recipe.empty) {
    const p = inRoot(root, e);
    if (!existsSync(p)) continue;
    for (const n of readdirSync(p)) rmSync(join(p, n), { recursive: true, force: true });
  }
}

export async function debootstrap(suite: string, mirror: string, root: string, debCache: string, log: WriteStream): Promise<void> {
  mkdirSync(debCache, { recursive: true });
  await run(
    'debootstrap',
    ['--variant=minbase', '--components=main', `--cache-dir=${debCache}`, suite, root, mirror],
    { log, env: { ...process.env, ...CHROOT_ENV } },
  );
}

export async function extractTar(tarball: string, root: string, log: WriteStream): Promise<void> {
  mkdirSync(root, { recursive: true });
  await run('tar', ['-C', root, '-xpf', tarball, '--numeric-owner'], { log });
}

/** Mount points under `dir` that are still mounted (read from /proc/self/mounts). */
export function mountsUnder(dir: string): string[] {
  const decode = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  return readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .map((l) => decode(l.split(' ')[1] ?? ''))
    .filter((m) => m === dir || m.startsWith(`${dir}/`));
}

/**
 * Runs `fn` with the root prepared for apt: /proc mounted, the minimal /dev nodes,
 * the host's resolv.conf, a policy-rc.d that keeps services from starting, and the
 * host's apt lists for `suites` (so apt resolves exactly the host's snapshot).
 */
export async function withChroot<T>(root: string, suites: SuiteSource[], fn: () => Promise<T>): Promise<T> {
  const dev = join(root, 'dev');
  mkdirSync(dev, { recursive: true });
  const nodes: [string, number, number, number][] = [
    ['null', 1, 3, 0o666], ['zero', 1, 5, 0o666], ['full', 1, 7, 0o666],
    ['random', 1, 8, 0o666], ['urandom', 1, 9, 0o666], ['tty', 5, 0, 0o666],
  ];
  for (const [n, maj, min, mode] of nodes) {
    if (existsSync(join(dev, n))) continue;
    await run('mknod', ['-m', mode.toString(8), join(dev, n), 'c', String(maj), String(min)]);
  }
  for (const d of ['pts', 'shm']) mkdirSync(join(dev, d), { recursive: true });
  if (!existsSync(join(dev, 'fd'))) symlinkSync('/proc/self/fd', join(dev, 'fd'));

  // Sources: the host's Debian mirrors for these suites, in deb822, and their lists.
  const aptDir = join(root, 'etc/apt');
  rmSync(join(aptDir, 'sources.list'), { force: true });
  mkdirSync(join(aptDir, 'sources.list.d'), { recursive: true });
  writeFileSync(join(aptDir, 'sources.list.d/debian.sources'), debianSourcesFile(suites));
  const lists = join(root, 'var/lib/apt/lists');
  mkdirSync(join(lists, 'partial'), { recursive: true });
  for (const s of suites) {
    const prefix = listsPrefix(s.uri, s.suite);
    for (const n of readdirSync(APT_LISTS_DIR)) if (n.startsWith(prefix)) copyFileSync(join(APT_LISTS_DIR, n), join(lists, n));
  }
  // The host's lists may be stored compressed; tell apt in the chroot to read them so.
  writeFileSync(join(aptDir, 'apt.conf.d/00kiver-build'), 'Acquire::GzipIndexes "true";\nAPT::Install-Recommends "false";\n');
  const policy = join(root, 'usr/sbin/policy-rc.d');
  writeFileSync(policy, '#!/bin/sh\n# Containers have no init: packages must not start services.\nexit 101\n');
  chmodSync(policy, 0o755);
  const resolv = join(root, 'etc/resolv.conf');
  rmSync(resolv, { force: true });
  copyFileSync('/etc/resolv.conf', resolv);

  const proc = join(root, 'proc');
  mkdirSync(proc, { recursive: true });
  await run('mount', ['-t', 'proc', 'proc', proc]);
  try {
    return await fn();
  } finally {
    try {
      await run('umount', [proc]);
    } catch {
      await run('umount', ['-l', proc]).catch(() => undefined);
    }
    rmSync(join(aptDir, 'apt.conf.d/00kiver-build'), { force: true });
  }
}

export function debianSourcesFile(suites: SuiteSource[]): string {
  const byUri = new Map<string, SuiteSource[]>();
  for (const s of suites) byUri.set(s.uri, [...(byUri.get(s.uri) ?? []), s]);
  return [...byUri.entries()]
    .map(([uri, ss]) =>
      [
        'Types: deb',
        `URIs: ${uri}`,
        `Suites: ${ss.map((s) => s.suite).join(' ')}`,
        'Components: main',
        'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg',
      ].join('\n'),
    )
    .join('\n\n')
    .concat('\n');
}

export function chroot(root: string, args: string[], log: WriteStream): Promise<string> {
  return run('chroot', [root, ...args], { log, env: CHROOT_ENV });
}

/**
 * Leaves only what the image needs and nothing that depends on the build machine
 * or the build time: apt lists and caches, logs, machine-id, backup files, the
 * host's resolv.conf/hostname; shadow's "last changed" set to the snapshot day.
 */
export function cleanRoot(root: string, epoch: number): void {
  const emptyDir = (rel: string, keep: string[] = []) => {
    const p = join(root, rel);
    if (!existsSync(p)) return;
    for (const n of readdirSync(p)) if (!keep.includes(n)) rmSync(join(p, n), { recursive: true, force: true });
  };
  emptyDir('var/lib/apt/lists', ['partial', 'lock']);
  emptyDir('var/lib/apt/lists/partial');
  emptyDir('var/cache/apt/archives', ['partial', 'lock']);
  emptyDir('var/cache/apt/archives/partial');
  for (const n of readdirSync(join(root, 'var/cache/apt'))) if (n.endsWith('.bin')) rmSync(join(root, 'var/cache/apt', n));
  emptyDir('tmp');
  emptyDir('var/tmp');
  emptyDir('root/.cache');
  for (const dir of ['var/cache/debconf', 'var/lib/dpkg']) {
    for (const n of readdirSync(join(root, dir))) if (n.endsWith('-old')) rmSync(join(root, dir, n), { force: true });
  }
  for (const n of ['passwd-', 'group-', 'shadow-', 'gshadow-', 'subuid-', 'subgid-']) rmSync(join(root, 'etc', n), { force: true });
  rmSync(join(root, 'var/cache/ldconfig/aux-cache'), { force: true });
  rmSync(join(root, 'var/lib/dbus/machine-id'), { force: true });
  // Logs: drop files, keep the directories packages created (with their owners).
  const dropFiles = (d: string) => {
    for (const n of readdirSync(d)) {
      const p = join(d, n);
      const st = lstatSync(p);
      if (st.isDirectory()) dropFiles(p);
      else rmSync(p, { force: true });
    }
  };
  if (existsSync(join(root, 'var/log'))) dropFiles(join(root, 'var/log'));
  writeFileSync(join(root, 'etc/machine-id'), '');
  writeFileSync(join(root, 'etc/hostname'), 'localhost\n');
  writeFileSync(join(root, 'etc/resolv.conf'), '');
  writeFileSync(join(root, 'etc/hosts'), '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n');
  const shadow = join(root, 'etc/shadow');
  if (existsSync(shadow)) {
    const day = String(Math.floor(epoch / 86400));
    const text = readFileSync(shadow, 'utf8')
      .split('\n')
      .map((l) => {
        const f = l.split(':');
        if (f.length > 2 && f[2] !== '') f[2] = day;
        return f.join(':');
      })
      .join('\n');
    writeFileSync(shadow, text);
  }
}

/** `dpkg-query` over the root's database: package → version. */
export async function installedPackages(root: string): Promise<Record<string, string>> {
  const out = await run('dpkg-query', [`--admindir=${join(root, 'var/lib/dpkg')}`, '-W', '-f', '${Package}\t${Version}\t${db:Status-Abbrev}\n'], {
    capture: true,
  });
  const pkgs: Record<string, string> = {};
  for (const line of out.split('\n')) {
    const [p, v, st] = line.split('\t');
    if (p && v && st?.startsWith('ii')) pkgs[p] = v;
  }
  return pkgs;
}

export interface TarResult {
  /** sha256 of the uncompressed tar = Docker's layer diff ID. */
  digest: string;
  size: number;
}

/**
 * Tars `root` deterministically: sorted names, GNU format, numeric owners (forced
 * to 0 when `rootOwned`), mtimes clamped to `epoch`, no /proc, /sys or /dev contents.
 * Written to `out` atomically; the digest is computed while writing.
 */
export async function writeTar(root: string, out: string, epoch: number, rootOwned: boolean): Promise<TarResult> {
  const args = [
    '-C', root,
    '--sort=name', '--format=gnu', '--numeric-owner',
    ...(rootOwned ? ['--owner=0', '--group=0'] : []),
    `--mtime=@${epoch}`, '--clamp-mtime',
    '--exclude=./proc/*', '--exclude=./sys/*', '--exclude=./dev/*',
    '-cf', '-', '.',
  ];
  const child = spawn('tar', args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LC_ALL: 'C' } });
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr = (stderr + c.toString()).slice(-2000)));
  const exited = new Promise<number | null>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', resolve);
  });
  const hash = createHash('sha256');
  let size = 0;
  const tee = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      size += chunk.length;
      cb(null, chunk);
    },
  });
  const partial = `${out}.partial`;
  mkdirSync(dirname(out), { recursive: true });
  await pipeline(child.stdout, tee, createWriteStream(partial));
  const code = await exited;
  if (code !== 0) {
    rmSync(partial, { force: true });
    throw new BuildError(`tar of ${root} exited with status ${code}: ${stderr.trim()}`);
  }
  renameSync(partial, out);
  return { digest: hash.digest('hex'), size };
}
