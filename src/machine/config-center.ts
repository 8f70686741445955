/**
 * The config center (framework-free; api/routes/config-center.ts exposes it over HTTP).
 *
 * A machine's post-install step asks for its identity by MAC with the one-time token
 * Kiver put on its kernel command line. The identity is served only while the machine
 * is `installing` and the token matches and has not expired (it expires with the boot
 * file). Failures reveal nothing: one NotFound message for every "no install pending"
 * case, one Forbidden message for every token problem.
 *
 * `reportInstalled` deletes the machine's boot files at once (so a later network boot
 * finds none and cannot reinstall it) and marks it installed.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { isIP } from 'node:net';
import { ForbiddenError, NotFoundError } from '../errors.js';
import type { BootFileWriter } from './bootfiles.js';
import { normalizeMac } from './inventory-validate.js';
import type { MachineIdentity, MachineRecord } from '../model/machine.js';
import { findByMac, mutateMachine, systemClock, withEvent, withPhase, type Clock, type MachineStore, type Versioned } from './machine-store.js';
import { renderSeed, type ProfileRegistry, type RenderedSeed } from './profiles/index.js';

export const NOT_PENDING = 'no install is pending for this address';
export const BAD_TOKEN = 'invalid or expired install token';

export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

export interface IdentityDocument extends MachineIdentity {
  name: string;
  mac: string;
  netmask?: string;
}

export type ConfigCenterEvent =
  | { type: 'lookup'; at: Date; mac: string; machine: string }
  | { type: 'seed'; at: Date; mac: string; machine: string; file: string }
  | { type: 'installed'; at: Date; mac: string; machine: string; removedBootFiles: string[] }
  | { type: 'denied'; at: Date; mac: string; status: 403 | 404 };

export interface ConfigCenterOptions {
  store: MachineStore;
  bootFiles: Pick<BootFileWriter, 'remove' | 'removeIfKiver'>;
  profiles?: ProfileRegistry;
  clock?: Clock;
  /** For timelines and metrics; never receives the token. */
  onEvent?: (e: ConfigCenterEvent) => void;
}

function netmaskOf(prefix: number): string {
  const m = prefix === 0 ? 0 : (~((1 << (32 - prefix)) - 1)) >>> 0;
  return [24, 16, 8, 0].map((s) => (m >>> s) & 255).join('.');
}

/** `KEY='value'` lines for POSIX sh installers (`. file`); values are validated identity fields. */
export function renderIdentityShell(doc: IdentityDocument): string {
  const q = (v: string) => `'${v.replace(/'/g, `'\\''`)}'`;
  const pairs: [string, string][] = [
    ['KIVER_NAME', doc.name],
    ['KIVER_MAC', doc.mac],
    ['KIVER_HOSTNAME', doc.hostname],
    ['KIVER_IP', doc.ip],
    ['KIVER_PREFIX', String(doc.prefix)],
    ['KIVER_NETMASK', doc.netmask ?? ''],
    ['KIVER_GATEWAY', doc.gateway ?? ''],
    ['KIVER_DNS', doc.dns.join(' ')],
    ['KIVER_NTP', doc.ntp.join(' ')],
  ];
  return pairs.map(([k, v]) => `${k}=${q(v)}`).join('\n') + '\n';
}

export class ConfigCenter {
  private readonly clock: Clock;

  constructor(private readonly opts: ConfigCenterOptions) {
    this.clock = opts.clock ?? systemClock;
  }

  private denied(mac: string, status: 403 | 404): void {
    this.opts.onEvent?.({ type: 'denied', at: this.clock.now(), mac, status });
  }

  /** Finds the installing machine for a MAC and checks the token; throws 404/403. */
  private async authorize(macInput: string, token: string | undefined): Promise<{ mac: string; m: Versioned<MachineRecord> }> {
    const mac = normalizeMac(macInput ?? '');
    if (!mac) {
      this.denied(String(macInput), 404);
      throw new NotFoundError(NOT_PENDING);
    }
    const m = await findByMac(this.opts.store, mac);
    const inst = m?.value.status.install;
    if (!m || m.value.status.phase !== 'installing' || !inst || !inst.macs.includes(mac)) {
      this.denied(mac, 404);
      throw new NotFoundError(NOT_PENDING);
    }
    const ok =
      typeof token === 'string' &&
      token.length > 0 &&
      timingSafeEqual(Buffer.from(hashToken(token), 'hex'), Buffer.from(inst.tokenSha256, 'hex')) &&
      this.clock.now().getTime() < new Date(inst.expiresAt).getTime();
    if (!ok) {
      this.denied(mac, 403);
      throw new ForbiddenError(BAD_TOKEN);
    }
    return { mac, m };
  }

  /** Records on the machine (event; first time also `install.identityServedAt`) what the installer fetched. */
  private async note(m: Versioned<MachineRecord>, type: string, message: string, at: Date): Promise<void> {
    const tokenSha256 = m.value.status.install!.tokenSha256;
    await mutateMachine(this.opts.store, m.value.name, (cur) => {
      if (cur.status.phase !== 'installing' || cur.status.install?.tokenSha256 !== tokenSha256) return cur;
      const next = withEvent(cur, at, type, message);
      if (type === 'identity' && !next.status.install!.identityServedAt) next.status.install!.identityServedAt = at.toISOString();
      return next;
    }).catch(() => undefined); // progress bookkeeping only: never fail the installer for it
  }

  async lookup(mac: string, token: string | undefined): Promise<IdentityDocument> {
    const { mac: n, m } = await this.authorize(mac, token);
    const id = m.value.identity;
    const at = this.clock.now();
    await this.note(m, 'identity', `config center served the identity to ${n}`, at);
    this.opts.onEvent?.({ type: 'lookup', at, mac: n, machine: m.value.name });
    return {
      name: m.value.name,
      mac: n,
      ...id,
      dns: [...id.dns],
      ntp: [...id.ntp],
      ...(isIP(id.ip) === 4 ? { netmask: netmaskOf(id.prefix) } : {}),
    };
  }

  /** An installer answer file (preseed.cfg, ks.cfg, user-data, ...) for the installing machine. */
  async seed(mac: string, token: string, file: string): Promise<RenderedSeed> {
    const { mac: n, m } = await this.authorize(mac, token);
    if (!this.opts.profiles) throw new NotFoundError('not found');
    const profile = this.opts.profiles.get(m.value.status.install!.osProfile);
    const rendered = renderSeed(profile, { machine: m.value.name, mac: n, token, serverUrl: m.value.status.install!.serverUrl, identity: m.value.identity }, file);
    const at = this.clock.now();
    await this.note(m, 'seed', `config center served ${file} to ${n}`, at);
    this.opts.onEvent?.({ type: 'seed', at, mac: n, machine: m.value.name, file });
    return rendered;
  }

  /** The installer is done: delete the boot files now, mark the machine installed. */
  async reportInstalled(mac: string, token: string | undefined): Promise<{ machine: string; removedBootFiles: string[] }> {
    const { mac: n, m } = await this.authorize(mac, token);
    const inst = m.value.status.install!;
    const removed: string[] = [];
    for (const p of inst.bootFiles) if (await this.opts.bootFiles.removeIfKiver(p)) removed.push(p);
    for (const x of inst.macs) removed.push(...(await this.opts.bootFiles.remove(x)));
    const now = this.clock.now();
    await mutateMachine(this.opts.store, m.value.name, (cur) => {
      if (cur.status.phase !== 'installing' || cur.status.install?.tokenSha256 !== inst.tokenSha256) throw new NotFoundError(NOT_PENDING);
      const next = withPhase(cur, 'installed', now, `installer reported done from ${n}; boot files removed (${removed.length})`);
      delete next.status.install;
      return next;
    });
    this.opts.onEvent?.({ type: 'installed', at: now, mac: n, machine: m.value.name, removedBootFiles: removed });
    return { machine: m.value.name, removedBootFiles: removed };
  }
}
