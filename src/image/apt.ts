/**
 * What the host's apt knows: its Debian sources, the snapshot its lists describe,
 * candidate versions, and .deb downloads. Images are built from exactly the mirror
 * and package lists the machine already uses (no other network access needed).
 */
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync, type WriteStream } from 'node:fs';
import { dirname, join } from 'node:path';
import { BuildError, run } from './exec.js';

export const APT_LISTS_DIR = '/var/lib/apt/lists';
const SOURCES_FILE = '/etc/apt/sources.list';
const SOURCES_DIR = '/etc/apt/sources.list.d';

export interface AptSource {
  uri: string;
  suites: string[];
  components: string[];
  signedBy?: string;
}

/** One suite of one mirror, as used by an image build. */
export interface SuiteSource {
  uri: string;
  suite: string;
  components: string[];
  signedBy?: string;
}

/** Parses deb822 `.sources` text (binary `deb` entries only, `Enabled: no` skipped). */
export function parseDeb822(text: string): AptSource[] {
  const out: AptSource[] = [];
  for (const para of text.split(/\n\s*\n/)) {
    const fields = new Map<string, string>();
    let last = '';
    for (const raw of para.split('\n')) {
      if (raw.startsWith('#')) continue;
      if (/^\s/.test(raw) && last) {
        fields.set(last, `${fields.get(last)} ${raw.trim()}`);
        continue;
      }
      const m = /^([A-Za-z0-9-]+):\s*(.*)$/.exec(raw);
      if (m) {
        last = m[1].toLowerCase();
        fields.set(last, m[2].trim());
      }
    }
    const words = (k: string) => (fields.get(k) ?? '').split(/\s+/).filter(Boolean);
    if (!words('types').includes('deb')) continue;
    if ((fields.get('enabled') ?? 'yes').toLowerCase() === 'no') continue;
    for (const uri of words('uris')) {
      out.push({ uri, suites: words('suites'), components: words('components'), signedBy: fields.get('signed-by') || undefined });
    }
  }
  return out;
}

/** Parses one-line `.list` text: `deb [opt=val ...] URI SUITE COMPONENT...`. */
export function parseOneLine(text: string): AptSource[] {
  const out: AptSource[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*/, '').trim();
    if (!line.startsWith('deb ') && !line.startsWith('deb\t')) continue;
    let rest = line.slice(3).trim();
    let signedBy: string | undefined;
    if (rest.startsWith('[')) {
      const end = rest.indexOf(']');
      if (end < 0) continue;
      for (const opt of rest.slice(1, end).trim().split(/\s+/)) {
        const [k, v] = opt.split('=');
        if (k === 'signed-by' && v) signedBy = v;
      }
      rest = rest.slice(end + 1).trim();
    }
    const [uri, suite, ...components] = rest.split(/\s+/);
    if (uri && suite) out.push({ uri, suites: [suite], components, signedBy });
  }
  return out;
}

/** All `deb` sources apt on this machine is configured with, in apt's file order. */
export function hostAptSources(): AptSource[] {
  const out: AptSource[] = [];
  if (existsSync(SOURCES_FILE)) out.push(...parseOneLine(readFileSync(SOURCES_FILE, 'utf8')));
  let names: string[] = [];
  try {
    names = readdirSync(SOURCES_DIR).sort();
  } catch {
    /* no directory */
  }
  for (const n of names) {
    const p = join(SOURCES_DIR, n);
    if (n.endsWith('.list')) out.push(...parseOneLine(readFileSync(p, 'utf8')));
    else if (n.endsWith('.sources')) out.push(...parseDeb822(readFileSync(p, 'utf8')));
  }
  return out;
}

/**
 * The Debian suites an image of `suite` is built from: the suite itself (required),
 * plus its -updates and -security suites when the host has them, each from the
 * mirror apt uses for it. Only the `main` component is used.
 */
export function debianSuites(suite: string, sources = hostAptSources()): SuiteSource[] {
  const pick = (s: string): SuiteSource | undefined => {
    const src = sources.find((x) => x.suites.includes(s) && x.components.includes('main'));
    return src && { uri: src.uri.replace(/\/+$/, ''), suite: s, components: ['main'], signedBy: src.signedBy };
  };
  const base = pick(suite);
  if (!base) {
    throw new BuildError(
      `apt on this machine has no source for Debian ${suite} main (looked in ${SOURCES_FILE} and ${SOURCES_DIR}); ` +
        `Kiver builds images from the mirror apt uses, so add one, e.g. "deb http://deb.debian.org/debian ${suite} main", and run apt-get update`,
    );
  }
  const extra = [`${suite}-updates`, `${suite}-security`].map(pick).filter((x): x is SuiteSource => !!x);
  return [base, ...extra];
}

/** apt's file-name prefix for a URI's lists (scheme and credentials dropped, `/` → `_`). */
export function listsPrefix(uri: string, suite: string): string {
  let u = uri.replace(/^[a-z0-9+.-]+:\/\//i, '').replace(/^[^@/]*@/, '').replace(/\/+$/, '');
  u = u.replace(/[\^\\~_=!@#$%&*]/g, (c) => `%${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
  return `${u.replace(/\//g, '_')}_dists_${suite}_`;
}

export interface ReleaseInfo {
  /** The `Date:` of the suite's (In)Release file in the host's lists. */
  date: string;
  epoch: number;
  /** The list files belonging to this suite (InRelease, Packages, ...). */
  files: string[];
}

/** Reads the snapshot of one suite that the host's apt lists hold. */
export function releaseInfo(src: SuiteSource, listsDir = APT_LISTS_DIR): ReleaseInfo {
  const prefix = listsPrefix(src.uri, src.suite);
  let names: string[] = [];
  try {
    names = readdirSync(listsDir).filter((n) => n.startsWith(prefix));
  } catch {
    /* no lists at all */
  }
  const rel = names.find((n) => n === `${prefix}InRelease`) ?? names.find((n) => n === `${prefix}Release`);
  const hasPackages = names.some((n) => n.includes('_binary-') && n.includes('_Packages'));
  if (!rel || !hasPackages) {
    throw new BuildError(`apt has no package lists for ${src.uri} ${src.suite}; run: apt-get update`);
  }
  const m = /^Date:\s*(.+)$/m.exec(readFileSync(join(listsDir, rel), 'utf8'));
  const epoch = m ? Math.floor(Date.parse(m[1]) / 1000) : NaN;
  if (!m || !Number.isFinite(epoch)) throw new BuildError(`${join(listsDir, rel)} has no valid Date: field`);
  return { date: new Date(epoch * 1000).toISOString().replace('.000Z', 'Z'), epoch, files: names.sort().map((n) => join(listsDir, n)) };
}

export interface Candidate {
  package: string;
  version: string;
  architecture: string;
  filename: string;
  sha256: string;
  size: number;
}

/**
 * The version apt would install now (from the host's lists), with its pool file and
 * hash. `pkgcache`: where apt may keep its parsed cache (the host's apt may be set
 * up without one, which costs ~1 s per call).
 */
export async function candidate(pkg: string, pkgcache?: string): Promise<Candidate> {
  let text: string;
  const cacheOpts = pkgcache ? ['-o', `Dir::Cache::pkgcache=${pkgcache}`, '-o', 'Dir::Cache::srcpkgcache='] : [];
  if (pkgcache) mkdirSync(dirname(pkgcache), { recursive: true });
  try {
    text = await run('apt-cache', [...cacheOpts, 'show', '--no-all-versions', pkg], { capture: true });
  } catch (err) {
    throw new BuildError(`apt knows no package ${pkg}; run: apt-get update (${(err as Error).message.split('\n')[0]})`);
  }
  const field = (k: string) => new RegExp(`^${k}:\\s*(.+)$`, 'm').exec(text)?.[1]?.trim() ?? '';
  const c = {
    package: pkg,
    version: field('Version'),
    architecture: field('Architecture'),
    filename: field('Filename'),
    sha256: field('SHA256'),
    size: Number(field('Size')),
  };
  if (!c.version || !c.sha256) throw new BuildError(`apt-cache show ${pkg} gave no version/SHA256; run: apt-get update`);
  return c;
}

/** `1:1.35.0-4+deb12u1+b1` → `1.35.0`: no epoch, no Debian revision. */
export function upstreamVersion(debVersion: string): string {
  const noEpoch = debVersion.replace(/^\d+:/, '');
  const dash = noEpoch.lastIndexOf('-');
  return dash > 0 ? noEpoch.slice(0, dash) : noEpoch;
}

export async function dpkgArchitecture(): Promise<string> {
  return (await run('dpkg', ['--print-architecture'], { capture: true })).trim();
}

/** sha256 of a file, hex. */
export async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

/**
 * Puts the candidate .deb into `debDir` (reusing a cached copy whose SHA256 matches
 * apt's) and returns its path and whether it was downloaded now.
 */
export async function fetchDeb(c: Candidate, debDir: string, log?: WriteStream): Promise<{ path: string; downloaded: boolean }> {
  mkdirSync(debDir, { recursive: true });
  const path = join(debDir, `${c.package}_${c.version.replace(/:/g, '%3a')}_${c.architecture}.deb`);
  if (existsSync(path) && (await sha256File(path)) === c.sha256) return { path, downloaded: false };
  const tmp = mkdtempSync(join(debDir, '.download-'));
  try {
    // As root apt drops to _apt for downloads, which cannot write a private cache dir.
    const sandbox = process.getuid?.() === 0 ? ['-o', 'APT::Sandbox::User=root'] : [];
    try {
      await run('apt-get', ['download', '-q', ...sandbox, `${c.package}=${c.version}`], { cwd: tmp, log });
    } catch (err) {
      throw new BuildError(
        `could not download ${c.package} ${c.version} from the apt mirror (check the network, or run apt-get update if the mirror dropped that version)\n${(err as Error).message}`,
      );
    }
    const got = readdirSync(tmp).find((n) => n.endsWith('.deb'));
    if (!got) throw new BuildError(`apt-get download ${c.package} left no .deb`);
    const sum = await sha256File(join(tmp, got));
    if (sum !== c.sha256) throw new BuildError(`${got}: SHA256 ${sum} does not match apt's ${c.sha256}`);
    renameSync(join(tmp, got), path);
    return { path, downloaded: true };
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** apt's package lists older than this are refreshed before a build or an install. */
export const APT_LISTS_MAX_AGE_MS = 24 * 3600 * 1000;

/**
 * Why apt's lists need `apt-get update`, or undefined when they are fresh: a suite
 * without lists, or lists written (ctime: apt keeps the mirror's date as mtime) longer
 * ago than maxAgeMs. `stamp`: a file touched after our own last update (a mirror that
 * had nothing new leaves the lists untouched).
 */
export function staleAptLists(suites: SuiteSource[], o: { listsDir?: string; stamp?: string; maxAgeMs?: number; now?: number } = {}): string | undefined {
  const listsDir = o.listsDir ?? APT_LISTS_DIR;
  let newest = 0;
  for (const s of suites) {
    let info: ReleaseInfo;
    try {
      info = releaseInfo(s, listsDir);
    } catch {
      return `no package lists for ${s.uri} ${s.suite}`;
    }
    for (const f of info.files) newest = Math.max(newest, statSync(f).ctimeMs);
  }
  if (o.stamp && existsSync(o.stamp)) newest = Math.max(newest, statSync(o.stamp).mtimeMs);
  const age = (o.now ?? Date.now()) - newest;
  const max = o.maxAgeMs ?? APT_LISTS_MAX_AGE_MS;
  return age > max ? `package lists are ${Math.floor(age / 3600_000)} h old` : undefined;
}

/**
 * `apt-get update` on this machine (or in `root` through chroot), then touches `stamp`.
 * Needs root; otherwise says which command to run.
 */
export async function updateAptLists(o: { root?: string; stamp?: string; log?: WriteStream; why?: string } = {}): Promise<void> {
  if (process.getuid?.() !== 0) throw new BuildError(`apt's package lists need a refresh (${o.why ?? 'stale'}); run: sudo apt-get update`);
  const argv = ['apt-get', 'update', '-q'];
  const [cmd, ...args] = o.root && o.root !== '/' ? ['chroot', o.root, ...argv] : argv;
  await run(cmd, args, { log: o.log, env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  if (o.stamp) {
    mkdirSync(dirname(o.stamp), { recursive: true });
    writeFileSync(o.stamp, `${new Date().toISOString()}\n`);
  }
}
