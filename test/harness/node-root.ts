/**
 * Debian roots for `kiver node init` tests: `debootstrap --variant=minbase bookworm`
 * once, kept as a tar under $KIVER_TEST_CACHE (default /var/cache/kiver-test) and
 * unpacked fresh for every test; the .debs a test's apt downloads are kept there too
 * and put back into the next root's apt cache, so a run installs docker.io without
 * downloading it again.
 *
 *   node dist/test/harness/node-root.js prepare     (what .ci/run does; idempotent)
 */
import { copyFileSync, existsSync, mkdirSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run } from '../../src/image/exec.js';
import { debianSuites } from '../../src/image/apt.js';
import { DEBIAN_SUITE } from '../../src/image/catalog.js';

export const CACHE_DIR = process.env.KIVER_TEST_CACHE || '/var/cache/kiver-test';
const BASE_TAR = join(CACHE_DIR, `${DEBIAN_SUITE}-minbase.tar`);
const DEBS = join(CACHE_DIR, 'debs');
/** What `kiver node init --role compute` installs. */
export const NODE_PACKAGES = ['docker.io'];
/** What `kiver node init --role control` installs. */
export const CONTROL_PACKAGES = ['etcd-server', 'openssl'];

/** The cached base root tar; made with debootstrap (~40–60 s) when missing. */
export async function ensureBaseRoot(log = (l: string) => process.stderr.write(`${l}\n`)): Promise<string> {
  if (existsSync(BASE_TAR)) return BASE_TAR;
  mkdirSync(CACHE_DIR, { recursive: true });
  const mirror = debianSuites(DEBIAN_SUITE)[0].uri;
  const tmp = join(CACHE_DIR, `build-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  log(`node-root: debootstrap --variant=minbase ${DEBIAN_SUITE} from ${mirror} (once; cached in ${BASE_TAR})`);
  try {
    await run('debootstrap', ['--variant=minbase', DEBIAN_SUITE, tmp, mirror]);
    await run('tar', ['-C', tmp, '-cf', `${BASE_TAR}.tmp`, '.']);
    renameSync(`${BASE_TAR}.tmp`, BASE_TAR);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
    rmSync(`${BASE_TAR}.tmp`, { force: true });
  }
  return BASE_TAR;
}

/**
 * The .debs of `packages` (and their dependencies) as the base root's apt resolves
 * them, downloaded once in the root namespace: a test host's namespace has no route
 * out, so apt in a test root must find everything in its cache.
 */
export async function ensureDebs(packages: string[]): Promise<void> {
  const marker = join(DEBS, `.complete-${packages.join('+')}`);
  if (existsSync(marker)) return;
  const tar = await ensureBaseRoot();
  const tmp = join(CACHE_DIR, `debs-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  try {
    await run('tar', ['-C', tmp, '-xpf', tar]);
    copyFileSync('/etc/resolv.conf', join(tmp, 'etc/resolv.conf'));
    await run('chroot', [tmp, 'apt-get', 'install', '-y', '-q', '--download-only', '--no-install-recommends', ...packages], { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
    keepDebs(tmp);
    writeFileSync(marker, `${new Date().toISOString()}\n`);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

const SYSTEMD_TAR = join(CACHE_DIR, `${DEBIAN_SUITE}-systemd.tar`);

/** The base root with systemd as its init (for systemd-nspawn -b), cached; made from the base root with apt (~30 s) when missing. */
export async function ensureSystemdRoot(): Promise<string> {
  if (existsSync(SYSTEMD_TAR)) return SYSTEMD_TAR;
  const base = await ensureBaseRoot();
  const tmp = join(CACHE_DIR, `systemd-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  try {
    await run('tar', ['-C', tmp, '-xpf', base]);
    copyFileSync('/etc/resolv.conf', join(tmp, 'etc/resolv.conf'));
    await run('chroot', [tmp, 'apt-get', 'install', '-y', '-q', '--no-install-recommends', 'systemd', 'systemd-sysv', 'dbus'], { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
    await run('tar', ['-C', tmp, '-cf', `${SYSTEMD_TAR}.tmp`, '.']);
    renameSync(`${SYSTEMD_TAR}.tmp`, SYSTEMD_TAR);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
    rmSync(`${SYSTEMD_TAR}.tmp`, { force: true });
  }
  return SYSTEMD_TAR;
}

/** A fresh Debian root in `dir` (unpacked from the cache; with systemd as init if asked), with the cached .debs in its apt cache. */
export async function makeNodeRoot(dir: string, init: 'none' | 'systemd' = 'none'): Promise<void> {
  const tar = init === 'systemd' ? await ensureSystemdRoot() : await ensureBaseRoot();
  mkdirSync(dir, { recursive: true });
  await run('tar', ['-C', dir, '-xpf', tar]);
  const archives = join(dir, 'var/cache/apt/archives');
  mkdirSync(archives, { recursive: true });
  if (existsSync(DEBS)) for (const n of readdirSync(DEBS)) if (n.endsWith('.deb')) copyFileSync(join(DEBS, n), join(archives, n));
}

/** Keeps the .debs apt downloaded into the root for the next run. */
export function keepDebs(dir: string): void {
  const archives = join(dir, 'var/cache/apt/archives');
  mkdirSync(DEBS, { recursive: true });
  let names: string[] = [];
  try {
    names = readdirSync(archives);
  } catch {
    return;
  }
  for (const n of names) if (n.endsWith('.deb') && !existsSync(join(DEBS, n))) copyFileSync(join(archives, n), join(DEBS, n));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const cmd = process.argv[2];
  if (cmd !== 'prepare') {
    process.stderr.write('usage: node-root.js prepare\n');
    process.exit(2);
  }
  (async () => {
    const t = await ensureBaseRoot();
    await ensureDebs(NODE_PACKAGES);
    await ensureDebs(CONTROL_PACKAGES);
    await ensureSystemdRoot();
    process.stdout.write(`node root cached: ${t}, with the .debs of ${[...NODE_PACKAGES, ...CONTROL_PACKAGES].join(' ')}\n`);
  })().catch((e) => {
    process.stderr.write(`${(e as Error).message}\n`);
    process.exit(1);
  });
}
