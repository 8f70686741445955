/**
 * Planning a build: the build key (sha256 over the recipe, builder version,
 * architecture and exact inputs) and the tag, before anything is downloaded.
 */
import { createHash } from 'node:crypto';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { candidate, debianSuites, releaseInfo, upstreamVersion, type Candidate, type SuiteSource } from './apt.js';
import { getRecipe, type ImageRecipe } from './catalog.js';
import { BuildError } from './exec.js';

/** Bump when the builder's output changes for the same recipe and inputs. */
export const BUILDER_VERSION = 1;

export interface Plan {
  recipe: ImageRecipe;
  key: string;
  tag: string;
  arch: string;
  /** Debian suites (debootstrap / derived). */
  suites: SuiteSource[];
  /** SOURCE_DATE_EPOCH when known before the build (from the apt lists). */
  epoch?: number;
  snapshot: string;
  deb?: Candidate;
  base?: Plan;
  /** requested package → the version apt resolves now */
  expect: Record<string, string>;
}

export function defaultCacheDir(): string {
  return process.env.KIVER_IMAGE_CACHE || join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'kiver', 'images');
}

export function stableJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stableJson).join(',')}]`;
  if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o)
      .sort()
      .filter((k) => o[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${stableJson(o[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v);
}

const tagSafe = (s: string) => s.replace(/[^A-Za-z0-9_.-]/g, '_').replace(/^[.-]+/, '');

export async function resolvePlan(recipe: ImageRecipe, arch: string, pkgcache: string): Promise<Plan> {
  const src = recipe.source;
  let inputs: Record<string, unknown>;
  let plan: Omit<Plan, 'key' | 'tag'>;
  if (src.kind === 'deb') {
    const deb = await candidate(src.package, pkgcache);
    if (deb.architecture !== arch && deb.architecture !== 'all') {
      throw new BuildError(`${src.package} ${deb.version} is for ${deb.architecture}, this machine is ${arch}`);
    }
    inputs = { deb: { package: deb.package, version: deb.version, sha256: deb.sha256 } };
    plan = { recipe, arch, suites: [], snapshot: `${deb.package}@sha256:${deb.sha256}`, deb, expect: { [deb.package]: deb.version } };
  } else if (src.kind === 'debootstrap') {
    const suites = debianSuites(src.suite);
    const rel = suites.map((s) => ({ s, r: releaseInfo(s) }));
    const snapshot = rel.map(({ s, r }) => `${s.suite}@${r.date}`).join(' ');
    inputs = { suites: rel.map(({ s, r }) => ({ uri: s.uri, suite: s.suite, date: r.date })) };
    plan = { recipe, arch, suites, epoch: Math.max(...rel.map(({ r }) => r.epoch)), snapshot, expect: {} };
  } else {
    const base = await resolvePlan(getRecipe(src.base), arch, pkgcache);
    const expect: Record<string, string> = {};
    for (const p of src.install) expect[p] = (await candidate(p, pkgcache)).version;
    inputs = { base: base.key, candidates: expect };
    plan = { recipe, arch, suites: base.suites, epoch: base.epoch, snapshot: base.snapshot, base, expect };
  }
  const { description: _d, ...recipeData } = recipe;
  const key = createHash('sha256')
    .update(stableJson({ builder: BUILDER_VERSION, arch, recipe: recipeData, inputs }))
    .digest('hex');
  const version = recipe.tagFrom && plan.expect[recipe.tagFrom] ? upstreamVersion(plan.expect[recipe.tagFrom]) : plan.suites[0]?.suite ?? 'build';
  return { ...plan, key, tag: `${tagSafe(version)}-${key.slice(0, 12)}` };
}
