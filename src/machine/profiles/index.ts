/**
 * OS profiles: which installer kernel/initrd a machine boots and what it is told.
 *
 * Every profile's kernel command line carries `kiver.url` (the config-center base),
 * `kiver.mac` and the one-time `kiver.token`; the installers' unattended answer files
 * ("seeds": Debian preseed, Rocky kickstart, Ubuntu autoinstall user-data) are served
 * per machine by the config center at `/v1/config-center/<mac>/seed/<token>/<file>` and
 * all end with the same post-install call: GET the identity, apply it, POST installed.
 */
import { InputError, NotFoundError } from '../../errors.js';
import { parse as parseYaml } from 'yaml';
import type { MachineIdentity } from '../../model/machine.js';
import { renderDebianPreseed } from './debian-preseed.js';
import { renderRockyKickstart } from './rocky-kickstart.js';
import { renderUbuntuAutoinstall } from './ubuntu-autoinstall.js';

export type ProfileKind = 'debian-preseed' | 'rocky-kickstart' | 'ubuntu-autoinstall' | 'busybox-test';

export interface OsProfile {
  name: string;
  kind: ProfileKind;
  /** Installer kernel and initrd, fetched by the boot loader (http:// or a TFTP path). */
  kernelUrl: string;
  initrdUrl: string;
  /** Extra kernel arguments (console=ttyS0, ...). */
  append?: string[];
  /** Kind-specific settings: `mirror` (Debian/Ubuntu), `repo` (Rocky), `disk`, `imageUrl` (busybox-test), `rootPasswordHash`, `sshKey`. */
  params?: Record<string, string>;
}

/** What a profile is rendered with for one install. */
export interface InstallContext {
  machine: string;
  mac: string;
  token: string;
  /** Base URL of the Kiver server as machines reach it, e.g. `http://10.0.0.1:7400`. */
  serverUrl: string;
  identity: MachineIdentity;
}

export function configCenterUrl(serverUrl: string): string {
  return `${serverUrl.replace(/\/$/, '')}/v1/config-center`;
}

export function seedUrl(ctx: InstallContext, file: string): string {
  return `${configCenterUrl(ctx.serverUrl)}/${ctx.mac}/seed/${ctx.token}/${file}`;
}

/** The kernel command line of the per-MAC boot file. */
export function kernelArgs(profile: OsProfile, ctx: InstallContext): string[] {
  const kiver = [`kiver.url=${configCenterUrl(ctx.serverUrl)}`, `kiver.mac=${ctx.mac}`, `kiver.token=${ctx.token}`];
  const extra = profile.append ?? [];
  switch (profile.kind) {
    case 'debian-preseed':
      return ['auto=true', 'priority=critical', `url=${seedUrl(ctx, 'preseed.cfg')}`, 'interface=auto', `hostname=${ctx.identity.hostname.split('.')[0]}`, 'domain=', ...extra, ...kiver];
    case 'rocky-kickstart':
      return [`inst.ks=${seedUrl(ctx, 'ks.cfg')}`, ...(profile.params?.repo ? [`inst.repo=${profile.params.repo}`] : []), 'ip=dhcp', ...extra, ...kiver];
    case 'ubuntu-autoinstall':
      // cloud-init appends "user-data"/"meta-data" to the seed prefix.
      return ['autoinstall', `ds=nocloud-net;s=${seedUrl(ctx, '')}`, 'ip=dhcp', ...extra, ...kiver];
    case 'busybox-test':
      return [...extra, ...(profile.params?.imageUrl ? [`kiver.image=${profile.params.imageUrl}`] : []), ...kiver];
  }
}

export interface RenderedSeed {
  contentType: string;
  body: string;
}

/** Renders one seed file for a machine; NotFoundError when the profile has no such file. */
export function renderSeed(profile: OsProfile, ctx: InstallContext, file: string): RenderedSeed {
  switch (profile.kind) {
    case 'debian-preseed':
      if (file === 'preseed.cfg') return { contentType: 'text/plain', body: renderDebianPreseed(profile, ctx) };
      break;
    case 'rocky-kickstart':
      if (file === 'ks.cfg') return { contentType: 'text/plain', body: renderRockyKickstart(profile, ctx) };
      break;
    case 'ubuntu-autoinstall':
      if (file === 'user-data') return { contentType: 'text/cloud-config', body: renderUbuntuAutoinstall(profile, ctx) };
      if (file === 'meta-data') return { contentType: 'text/plain', body: `instance-id: kiver-${ctx.machine}\nlocal-hostname: ${ctx.identity.hostname.split('.')[0]}\n` };
      if (file === 'vendor-data') return { contentType: 'text/plain', body: '' };
      break;
    case 'busybox-test':
      break;
  }
  throw new NotFoundError('not found');
}

/** Profiles known to a server (configured, not stored per machine). */
export class ProfileRegistry {
  private readonly byName = new Map<string, OsProfile>();

  constructor(profiles: OsProfile[] = []) {
    for (const p of profiles) this.add(p);
  }

  add(p: OsProfile): void {
    if (!/^[a-z0-9][a-z0-9._-]{0,62}$/.test(p.name)) throw new InputError(`"${p.name}" is not a valid profile name`, 'name');
    this.byName.set(p.name, p);
  }

  get(name: string): OsProfile {
    const p = this.byName.get(name);
    if (!p) throw new InputError(`unknown OS profile "${name}" (known: ${[...this.byName.keys()].join(', ') || 'none'})`, 'osProfile');
    return p;
  }

  list(): OsProfile[] {
    return [...this.byName.values()];
  }
}

export const PROFILE_KINDS: readonly ProfileKind[] = ['debian-preseed', 'rocky-kickstart', 'ubuntu-autoinstall', 'busybox-test'];

/**
 * The server's OS profiles from a YAML/JSON file (`kiver server --os-profiles FILE`):
 * a list of profiles, or `{profiles: [...]}`. Every problem is reported at once.
 */
export function parseProfiles(text: string, source = 'OS profiles'): OsProfile[] {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new InputError(`${source}: not YAML/JSON: ${(err as Error).message.split('\n')[0]}`, 'profiles');
  }
  const list = Array.isArray(doc) ? doc : (doc as { profiles?: unknown } | null)?.profiles;
  if (!Array.isArray(list)) throw new InputError(`${source}: expected a list of profiles (or {profiles: [...]})`, 'profiles');
  const problems: string[] = [];
  const out: OsProfile[] = [];
  const urlOk = (v: unknown) => typeof v === 'string' && v.length > 0 && !/[\s"'\\]/.test(v);
  list.forEach((p: unknown, i) => {
    const at = `profiles[${i}]`;
    if (!p || typeof p !== 'object' || Array.isArray(p)) return void problems.push(`${at}: expected a mapping`);
    const r = p as Record<string, unknown>;
    for (const k of Object.keys(r)) if (!['name', 'kind', 'kernelUrl', 'initrdUrl', 'append', 'params'].includes(k)) problems.push(`${at}.${k}: unknown field`);
    if (typeof r.name !== 'string' || !/^[a-z0-9][a-z0-9._-]{0,62}$/.test(r.name)) problems.push(`${at}.name: required, lowercase letters, digits, ".", "_", "-"`);
    if (!PROFILE_KINDS.includes(r.kind as ProfileKind)) problems.push(`${at}.kind: expected one of ${PROFILE_KINDS.join(', ')}`);
    if (!urlOk(r.kernelUrl)) problems.push(`${at}.kernelUrl: required, a URL or TFTP path without spaces or quotes`);
    if (!urlOk(r.initrdUrl)) problems.push(`${at}.initrdUrl: required, a URL or TFTP path without spaces or quotes`);
    if (r.append !== undefined && (!Array.isArray(r.append) || !r.append.every(urlOk))) problems.push(`${at}.append: expected a list of kernel arguments without spaces or quotes`);
    if (r.params !== undefined && (!r.params || typeof r.params !== 'object' || Array.isArray(r.params) || !Object.values(r.params).every((v) => typeof v === 'string'))) {
      problems.push(`${at}.params: expected a mapping of strings`);
    }
    if (out.some((o) => o.name === r.name)) problems.push(`${at}.name: "${String(r.name)}" is listed twice`);
    out.push(r as unknown as OsProfile);
  });
  if (problems.length > 0) throw new InputError(`${source}: ${problems.join('; ')}`, 'profiles');
  return out;
}
