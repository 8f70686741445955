/**
 * `kiver image build`: builds the catalog's images offline from Debian packages and
 * loads them into Docker as `kiver/<name>:<tag>` (and `:latest`).
 *
 * Build key: sha256 over the recipe, the builder version, the architecture and the
 * exact inputs (the .deb's SHA256, or the Date of each suite's Release in the host's
 * apt lists plus the candidate versions). The tag is `<upstream version>-<key[0:12]>`.
 * With the same key, the root tar, the image config and so the image ID are
 * identical: mtimes are clamped to the snapshot date, names sorted, owners numeric.
 * Caches: .debs and root tars under the cache dir; a build is skipped when Docker
 * already has the tag with label kiver.image.recipe=<key>.
 */
import Docker from 'dockerode';
import {
  createWriteStream,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
  type WriteStream,
} from 'node:fs';
import { join, resolve } from 'node:path';
import { debianSuites, dpkgArchitecture, fetchDeb, staleAptLists, updateAptLists } from './apt.js';
import { dockerArch, encodeConfig, loadArchive, type ImageConfig } from './archive.js';
import { DEBIAN_SUITE, getRecipe, imageRepo, type ImageRecipe } from './catalog.js';
import { dockerClient, pingDocker } from './docker.js';
import { BuildError, run, which } from './exec.js';
import { Reporter, type BuildProgress } from './build-progress.js';
import { withLock } from './build-lock.js';
import { BUILDER_VERSION, defaultCacheDir, resolvePlan, type Plan } from './build-plan.js';

/** buildImage's progress callback type, from build-progress.ts. */
export type { BuildProgress };
import {
  applyRecipeFiles,
  assembleBusybox,
  chroot,
  cleanRoot,
  debootstrap,
  extractTar,
  installedPackages,
  mountsUnder,
  withChroot,
  writeTar,
} from './rootfs.js';

export interface BuildOptions {
  /** Default: DOCKER_HOST or /var/run/docker.sock. */
  docker?: Docker;
  /** Default: $KIVER_IMAGE_CACHE or ~/.cache/kiver/images. */
  cacheDir?: string;
  /** Rebuild the root and load it again even if cached (base images stay cached). */
  force?: boolean;
  onProgress?: (p: BuildProgress) => void;
}

export interface BuildResult {
  name: string;
  /** kiver/<name> */
  repo: string;
  tag: string;
  /** kiver/<name>:<tag> */
  ref: string;
  /** kiver/<name>:latest, pointing at the same image */
  latestRef: string;
  imageId: string;
  /** true when Docker already had it and nothing was built */
  cached: boolean;
  /** the build key (label kiver.image.recipe) */
  key: string;
  /** requested package → installed version */
  packages: Record<string, string>;
  /** the image's `created`: the package snapshot date, not the build time */
  created: string;
  /** bytes of the root tar (the single layer) */
  size: number;
  /** the root tar in the cache, when this run built or reused it */
  tarball?: string;
  durationMs: number;
}

/** What `kiver image ls` shows. */
export interface KiverImage {
  name: string;
  repo: string;
  tags: string[];
  latest: boolean;
  id: string;
  size: number;
  created: string;
  packages: string;
  key: string;
}

/** The cache a build writes next to the root tar. */
interface TarManifest {
  name: string;
  tag: string;
  key: string;
  builder: number;
  epoch: number;
  digest: string;
  size: number;
  /** requested package → version */
  requested: Record<string, string>;
  /** every package in the root → version */
  installed: Record<string, string>;
  snapshot: string;
  builtAt: string;
  buildMs: number;
}

class Builder {
  private readonly report: Reporter;
  constructor(
    private readonly docker: Docker,
    private readonly cacheDir: string,
    t0: number,
    onProgress?: (p: BuildProgress) => void,
  ) {
    this.report = new Reporter(t0, onProgress);
  }

  private lock<T>(name: string, fn: () => Promise<T>): Promise<T> {
    return withLock(join(this.cacheDir, 'locks', `${name}.lock`), (pid) => this.report.note(name, 'wait', `waiting for another build of ${name} (pid ${pid})`), fn);
  }

  /** The image in Docker (built and loaded unless cached). */
  async image(recipe: ImageRecipe, force: boolean, t0: number): Promise<BuildResult> {
    return this.lock(recipe.name, async () => {
      const name = recipe.name;
      const arch = await dpkgArchitecture();
      const plan = await this.report.step(name, 'resolve', 'resolving package versions', () => resolvePlan(recipe, arch, join(this.cacheDir, 'apt', 'pkgcache.bin')), (p) =>
        `${imageRepo(name)}:${p.tag} from ${Object.entries(p.expect).map(([k, v]) => `${k} ${v}`).join(', ') || p.snapshot}`,
      );
      const repo = imageRepo(name);
      const ref = `${repo}:${plan.tag}`;
      const latestRef = `${repo}:latest`;
      if (!force) {
        const have = await inspect(this.docker, ref);
        if (have && have.Config?.Labels?.['kiver.image.recipe'] === plan.key) {
          const latest = await inspect(this.docker, latestRef);
          if (latest?.Id !== have.Id) await this.docker.getImage(have.Id).tag({ repo, tag: 'latest' });
          this.report.note(name, 'cached', `cached: ${ref} (${have.Id.slice(7, 19)})`);
          return {
            name, repo, tag: plan.tag, ref, latestRef, imageId: have.Id, cached: true, key: plan.key,
            packages: requestedFromLabel(have.Config.Labels['kiver.image.packages']),
            created: have.Created, size: have.Size, durationMs: Date.now() - t0,
          };
        }
      }
      const m = await this.tarball(plan, force);
      const tarball = this.tarPath(name, plan.tag);
      const labels: Record<string, string> = {
        'kiver.image': name,
        'kiver.image.recipe': plan.key,
        'kiver.image.packages': Object.entries(m.requested).map(([k, v]) => `${k}=${v}`).join(','),
        'kiver.image.snapshot': m.snapshot,
      };
      if (recipe.source.kind !== 'deb') labels['kiver.image.debs'] = String(Object.keys(m.installed).length);
      const created = new Date(m.epoch * 1000).toISOString().replace('.000Z', 'Z');
      const cfg: ImageConfig = {
        architecture: dockerArch(arch),
        os: 'linux',
        created,
        config: {
          Env: recipe.config.env,
          Cmd: recipe.config.cmd,
          ...(recipe.config.entrypoint ? { Entrypoint: recipe.config.entrypoint } : {}),
          WorkingDir: recipe.config.workdir,
          Labels: labels,
          ...(recipe.config.exposedPorts ? { ExposedPorts: Object.fromEntries(recipe.config.exposedPorts.map((p) => [p, {}])) } : {}),
        },
        rootfs: { type: 'layers', diff_ids: [`sha256:${m.digest}`] },
        history: [{ created, created_by: `kiver image build ${name} (builder ${BUILDER_VERSION})`, comment: m.snapshot }],
      };
      const { bytes, id } = encodeConfig(cfg);
      await this.report.step(name, 'import', `loading ${ref} into Docker`, async () => {
        const stream = await this.docker.loadImage(
          loadArchive({ config: bytes, configId: id, repoTags: [ref, latestRef], layerPath: tarball, layerSize: m.size, layerDigest: m.digest, mtime: m.epoch }),
          { quiet: true },
        );
        await readJsonStream(stream, 'docker load');
        const got = await inspect(this.docker, ref);
        if (!got) throw new BuildError(`docker load reported success but ${ref} is missing`);
        if (got.Id !== id) throw new BuildError(`docker loaded ${ref} as ${got.Id}, expected ${id}`);
        if (got.RootFS?.Layers?.[0] !== `sha256:${m.digest}`) throw new BuildError(`layer digest of ${ref} is ${got.RootFS?.Layers?.[0]}, expected sha256:${m.digest}`);
      }, () => `${ref} (also :latest) image ${id.slice(7, 19)}, layer ${m.digest.slice(0, 12)}`);
      return {
        name, repo, tag: plan.tag, ref, latestRef, imageId: id, cached: false, key: plan.key,
        packages: m.requested, created, size: m.size, tarball, durationMs: Date.now() - t0,
      };
    });
  }

  private tarPath(name: string, tag: string): string {
    return join(this.cacheDir, name, `${tag}.tar`);
  }

  /** The root tar for a plan: from the cache when its manifest matches, else built. */
  async tarball(plan: Plan, force: boolean): Promise<TarManifest> {
    const name = plan.recipe.name;
    const tar = this.tarPath(name, plan.tag);
    const manifestPath = tar.replace(/\.tar$/, '.json');
    const cachedManifest = (): TarManifest | undefined => {
      try {
        const m = JSON.parse(readFileSync(manifestPath, 'utf8')) as TarManifest;
        if (m.key === plan.key && statSync(tar).size === m.size) return m;
      } catch {
        /* absent or unreadable */
      }
      return undefined;
    };
    if (!force) {
      const m = cachedManifest();
      if (m) {
        this.report.note(name, 'cached', `root tar cached: ${tar}`);
        return m;
      }
    }
    return this.lockIfBase(plan, async () => {
      if (!force) {
        const m = cachedManifest(); // another process may have built it while we waited
        if (m) return m;
      }
      await this.sweepWork(name);
      const started = Date.now();
      mkdirSync(join(this.cacheDir, 'logs'), { recursive: true });
      const logPath = join(this.cacheDir, 'logs', `${name}.log`);
      const log = createWriteStream(logPath);
      mkdirSync(join(this.cacheDir, 'work'), { recursive: true });
      const work = mkdtempSync(join(this.cacheDir, 'work', `${name}-`));
      const root = join(work, 'root');
      try {
        const built = await this.buildRoot(plan, root, log).catch((err: Error) => {
          throw err instanceof BuildError ? new BuildError(`${err.message}\n  (full log: ${logPath})`) : err;
        });
        const tarRes = await this.report.step(name, 'tar', 'writing the root tar', () => writeTar(root, tar, built.epoch, plan.recipe.source.kind === 'deb'), (r) =>
          `${fmtBytes(r.size)} sha256:${r.digest.slice(0, 12)}`,
        );
        const m: TarManifest = {
          name, tag: plan.tag, key: plan.key, builder: BUILDER_VERSION, epoch: built.epoch,
          digest: tarRes.digest, size: tarRes.size, requested: built.requested, installed: built.installed,
          snapshot: plan.snapshot, builtAt: new Date().toISOString(), buildMs: Date.now() - started,
        };
        writeFileSync(manifestPath, `${JSON.stringify(m, null, 2)}\n`);
        // Older tars of this image are superseded; keep the cache to one per image.
        for (const n of readdirSync(join(this.cacheDir, name))) {
          if (!n.startsWith(`${plan.tag}.`)) rmSync(join(this.cacheDir, name, n), { force: true });
        }
        return m;
      } finally {
        await new Promise<void>((r) => log.end(r));
        const left = mountsUnder(work);
        if (left.length === 0) rmSync(work, { recursive: true, force: true });
        else this.report.note(name, 'done', `warning: ${left.join(', ')} still mounted; left ${work} in place`);
      }
    });
  }

  /**
   * Removes work dirs an interrupted build of `name` left (we hold its lock, so none
   * is in use), unmounting a /proc left mounted in them first.
   */
  private async sweepWork(name: string): Promise<void> {
    const workRoot = join(this.cacheDir, 'work');
    let names: string[] = [];
    try {
      names = readdirSync(workRoot).filter((n) => n.startsWith(`${name}-`));
    } catch {
      return;
    }
    for (const n of names) {
      const dir = join(workRoot, n);
      for (const m of mountsUnder(dir).reverse()) await run('umount', ['-l', m]).catch(() => undefined);
      if (mountsUnder(dir).length === 0) rmSync(dir, { recursive: true, force: true });
      else this.report.note(name, 'wait', `warning: could not unmount everything under ${dir}; left it in place`);
    }
  }

  /** A base tar built on the way to a derived image takes its own lock. */
  private lockIfBase<T>(plan: Plan, fn: () => Promise<T>): Promise<T> {
    return plan.recipe.source.kind === 'debootstrap' ? this.lock(`${plan.recipe.name}.root`, fn) : fn();
  }

  private async buildRoot(
    plan: Plan,
    root: string,
    log: WriteStream,
  ): Promise<{ epoch: number; requested: Record<string, string>; installed: Record<string, string> }> {
    const recipe = plan.recipe;
    const name = recipe.name;
    const src = recipe.source;
    if (src.kind === 'deb') {
      const deb = plan.deb!;
      const debDir = join(this.cacheDir, 'debs');
      const got = await this.report.step(name, 'download', `${deb.package} ${deb.version}`, () => fetchDeb(deb, debDir, log), (r) =>
        `${deb.package} ${deb.version} (${r.downloaded ? `downloaded ${fmtBytes(deb.size)}` : 'cached .deb'})`,
      );
      const { epoch } = await this.report.step(name, 'unpack', 'unpacking', () => assembleBusybox(got.path, root, log), (r) =>
        `${deb.package} + ${r.applets} applet links`,
      );
      applyRecipeFiles(recipe, root);
      const v = { [deb.package]: deb.version };
      return { epoch, requested: v, installed: v };
    }

    if (process.getuid?.() !== 0) throw new BuildError(`building ${imageRepo(name)} needs root (debootstrap, chroot and mount)`);
    if (!which('debootstrap')) throw new BuildError('debootstrap is not installed; install it with: apt-get install -y debootstrap');
    const epoch = plan.epoch!;
    if (src.kind === 'debootstrap') {
      const mirror = plan.suites[0];
      await this.report.step(name, 'bootstrap', `debootstrap --variant=minbase ${src.suite} from ${mirror.uri} (~40 s)`, () =>
        debootstrap(src.suite, mirror.uri, root, join(this.cacheDir, 'debs'), log),
      );
      await this.report.step(name, 'install', `updates from ${plan.suites.map((s) => s.suite).join(', ')}`, () =>
        withChroot(root, plan.suites, async () => {
          await chroot(root, ['apt-get', '-q', '-y', 'full-upgrade'], log);
        }),
      );
    } else if (src.kind === 'derived') {
      const base = await this.tarball(plan.base!, false);
      await this.report.step(name, 'base', `unpacking the ${base.name} root ${base.tag}`, () => extractTar(this.tarPath(base.name, base.tag), root, log));
      await this.report.step(name, 'install', `apt-get install ${src.install.join(' ')}`, () =>
        withChroot(root, plan.suites, async () => {
          await chroot(root, ['apt-get', '-q', '-y', 'full-upgrade'], log);
          await chroot(root, ['apt-get', '-q', '-y', 'install', ...src.install], log);
        }),
      );
    }
    const installed = await installedPackages(root);
    const requested: Record<string, string> = {};
    for (const [p, want] of Object.entries(plan.expect)) {
      requested[p] = installed[p] ?? 'missing';
      if (installed[p] !== want) {
        this.report.note(name, 'install', `warning: ${p} is ${installed[p] ?? 'not installed'}, apt's lists said ${want} (run apt-get update?)`);
      }
    }
    await this.report.step(name, 'configure', 'files and cleanup', async () => {
      applyRecipeFiles(recipe, root);
      cleanRoot(root, epoch);
    }, () => `${Object.keys(installed).length} packages, cleaned`);
    return { epoch, requested, installed };
  }
}

async function inspect(docker: Docker, ref: string): Promise<Docker.ImageInspectInfo | undefined> {
  try {
    return await docker.getImage(ref).inspect();
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode === 404) return undefined;
    throw err;
  }
}

/** Reads a Docker JSON-lines progress stream; throws on an `error` line. */
async function readJsonStream(stream: NodeJS.ReadableStream, what: string): Promise<unknown[]> {
  const out: unknown[] = [];
  let buf = '';
  for await (const chunk of stream) {
    buf += chunk.toString();
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i).trim();
      buf = buf.slice(i + 1);
      if (!line) continue;
      const obj = JSON.parse(line) as { error?: string; errorDetail?: { message?: string } };
      if (obj.error || obj.errorDetail) throw new BuildError(`${what} failed: ${obj.errorDetail?.message ?? obj.error}`);
      out.push(obj);
    }
  }
  return out;
}

function requestedFromLabel(label: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const kv of (label ?? '').split(',').filter(Boolean)) {
    const i = kv.indexOf('=');
    out[kv.slice(0, i)] = kv.slice(i + 1);
  }
  return out;
}

export function fmtBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

/**
 * Builds (or finds cached) the catalog image NAME and loads it into Docker as
 * kiver/NAME:<tag> and kiver/NAME:latest. Unknown names throw InputError listing the
 * known ones; an unreachable Docker throws UnavailableError saying how to start it.
 */
export async function buildImage(name: string, opts: BuildOptions = {}): Promise<BuildResult> {
  const t0 = Date.now();
  const recipe = getRecipe(name);
  const docker = opts.docker ?? dockerClient();
  await pingDocker(docker);
  const cacheDir = resolve(opts.cacheDir ?? defaultCacheDir());
  mkdirSync(cacheDir, { recursive: true });
  await refreshAptListsIfStale(cacheDir, recipe.name, t0, opts.onProgress);
  const b = new Builder(docker, cacheDir, t0, opts.onProgress);
  const r = await b.image(recipe, opts.force ?? false, t0);
  opts.onProgress?.({ image: recipe.name, phase: 'done', state: 'note', message: r.cached ? `${r.ref} (cached)` : `${r.ref}`, totalMs: Date.now() - t0 });
  return r;
}

/**
 * A fresh Debian has no apt lists, and lists go stale (the mirror drops old versions):
 * refresh them when missing or older than a day. A failed refresh of stale (but
 * present) lists is reported and the build goes on with them.
 */
async function refreshAptListsIfStale(cacheDir: string, image: string, t0: number, onProgress?: (p: BuildProgress) => void): Promise<void> {
  const stamp = join(cacheDir, 'apt', 'lists-updated');
  const why = staleAptLists(debianSuites(DEBIAN_SUITE), { stamp });
  if (!why) return;
  const note = (message: string) => onProgress?.({ image, phase: 'resolve', state: 'note', message, totalMs: Date.now() - t0 });
  note(`refreshing apt's package lists (${why}): apt-get update`);
  try {
    await updateAptLists({ stamp, why });
  } catch (err) {
    if (why.startsWith('no package lists')) throw err;
    note(`apt-get update failed, building from the lists apt has: ${(err as Error).message.split('\n')[0]}`);
  }
}

/** Images Kiver built (label kiver.image), newest first within a name. */
export async function listImages(docker: Docker = dockerClient()): Promise<KiverImage[]> {
  await pingDocker(docker);
  const infos = await docker.listImages({ filters: JSON.stringify({ label: ['kiver.image'] }) } as unknown as Docker.ListImagesOptions);
  return infos
    .map((i) => {
      const labels = i.Labels ?? {};
      const name = labels['kiver.image'] ?? '';
      const repo = imageRepo(name);
      const tags = (i.RepoTags ?? []).filter((t) => t !== '<none>:<none>').map((t) => t.slice(t.lastIndexOf(':') + 1));
      return {
        name,
        repo,
        tags: tags.filter((t) => t !== 'latest'),
        latest: tags.includes('latest'),
        id: i.Id,
        size: i.Size,
        created: new Date(i.Created * 1000).toISOString().replace('.000Z', 'Z'),
        packages: labels['kiver.image.packages'] || (labels['kiver.image.snapshot'] ?? '').split(' ')[0] || '',
        key: labels['kiver.image.recipe'] ?? '',
      };
    })
    .sort((a, b) => a.name.localeCompare(b.name) || b.created.localeCompare(a.created));
}

