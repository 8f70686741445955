/**
 * Bare-metal provisioning as the Kiver server runs it: the machine store on the
 * server's key-value store, BMC passwords sealed with the server's secret box, the
 * boot-file writer on a TFTP root, the OS profiles, the BMC drivers, the config
 * center and the reaper — assembled once, shared by the API routes (api/routes/
 * machines.ts) and the leader's reaper timer. Counts installs, reaped files and
 * config-center refusals in Prometheus (metrics.ts); logs never carry a password or
 * a token (only machine names, MACs, paths and error messages).
 */
import { join } from 'node:path';
import { isIP } from 'node:net';
import type { Store } from '../store/store.js';
import type { Logger } from '../log.js';
import { bmcDriverFactory, type BmcFactoryOptions } from './bmc/index.js';
import type { BmcDriverFactory } from './bmc/driver.js';
import { BootFileWriter, type BootFileFormat } from './bootfiles.js';
import { ConfigCenter, type ConfigCenterEvent } from './config-center.js';
import { installMany, startInstall, type InstallerDeps, type InstallOptions, type InstallOutcome, type InstallStarted } from './installer.js';
import { KvMachineStore, systemClock, type Clock, type MachineStore } from './machine-store.js';
import { ProfileRegistry, type OsProfile } from './profiles/index.js';
import { DEFAULT_MAX_AGE_MS, DEFAULT_REAP_INTERVAL_MS, reapBootFiles, startReaper, type ReapResult } from './reaper.js';
import type { SecretBox } from './secrets.js';
import { machineMetrics } from './metrics.js';
import { KiverError } from '../errors.js';

export interface ProvisioningOptions {
  /** Where per-MAC boot files go (the dnsmasq/TFTP root). Default `<data-dir>/tftp`. */
  tftpRoot?: string;
  /** Base URL machines reach this server at (kernel command line). Default: the API URL. */
  serverUrl?: string;
  /** How often the leader runs the reaper. Default 5 min. */
  reapIntervalMs?: number;
  /** Boot files (and install tokens) older than this are deleted / expire. Default 2 h. */
  bootFileMaxAgeMs?: number;
  /** OS profiles machines can be installed with. */
  profiles?: OsProfile[];
  /** Timeouts, retries, ipmitool prefix (e.g. `ip netns exec mgmt`), Redfish TLS. */
  bmc?: BmcFactoryOptions;
  /** Replaces the BMC drivers (tests). */
  bmcFor?: BmcDriverFactory;
  bootFileFormats?: BootFileFormat[];
  clock?: Clock;
}

export class Provisioning {
  readonly machines: MachineStore;
  readonly bootFiles: BootFileWriter;
  readonly profiles: ProfileRegistry;
  readonly center: ConfigCenter;
  readonly deps: InstallerDeps;
  readonly maxAgeMs: number;
  readonly reapIntervalMs: number;
  private readonly urlFixed: boolean;
  private stopTimer?: () => void;
  private urlChecked = false;

  constructor(kv: Store, readonly secrets: SecretBox, private readonly log: Logger, dataDir: string, o: ProvisioningOptions = {}) {
    const clock = o.clock ?? systemClock;
    this.machines = new KvMachineStore(kv);
    this.bootFiles = new BootFileWriter({ tftpRoot: o.tftpRoot ?? join(dataDir, 'tftp'), formats: o.bootFileFormats });
    this.profiles = new ProfileRegistry(o.profiles ?? []);
    this.maxAgeMs = o.bootFileMaxAgeMs ?? DEFAULT_MAX_AGE_MS;
    this.reapIntervalMs = o.reapIntervalMs ?? DEFAULT_REAP_INTERVAL_MS;
    this.urlFixed = o.serverUrl !== undefined;
    this.center = new ConfigCenter({ store: this.machines, bootFiles: this.bootFiles, profiles: this.profiles, clock, onEvent: (e) => this.onCenterEvent(e) });
    this.deps = {
      store: this.machines,
      secrets,
      bmcFor: o.bmcFor ?? bmcDriverFactory(o.bmc),
      bootFiles: this.bootFiles,
      profiles: this.profiles,
      serverUrl: o.serverUrl ?? '',
      clock,
      // The token lives exactly as long as the boot file.
      tokenTtlMs: this.maxAgeMs,
      inFlight: new Set(),
    };
  }

  get serverUrl(): string {
    return this.deps.serverUrl;
  }

  get tftpRoot(): string {
    return this.bootFiles.tftpRoot;
  }

  /** The API URL once the server listens; kept when `serverUrl` was configured. */
  setServerUrl(url: string): void {
    if (this.urlFixed) return;
    this.deps.serverUrl = url;
  }

  /** Once, at the first install: a loopback machine URL is almost surely a missing --machine-url. */
  private checkUrl(): void {
    if (this.urlChecked) return;
    this.urlChecked = true;
    const url = this.deps.serverUrl;
    const host = url ? new URL(url).hostname.replace(/^\[|\]$/g, '') : '';
    if (host === 'localhost' || (isIP(host) === 4 && host.startsWith('127.')) || host === '::1') {
      this.log.warn({ url }, 'installing machines are told to reach this server at a loopback address; set --machine-url to an address on the provisioning network');
    }
  }

  private onCenterEvent(e: ConfigCenterEvent): void {
    switch (e.type) {
      case 'lookup':
        this.log.info({ machine: e.machine, mac: e.mac }, 'config center: identity served');
        break;
      case 'seed':
        this.log.info({ machine: e.machine, mac: e.mac, file: e.file }, 'config center: answer file served');
        break;
      case 'installed':
        machineMetrics.installsFinished.inc();
        this.log.info({ machine: e.machine, mac: e.mac, removed: e.removedBootFiles.length }, 'machine installed; boot files removed');
        break;
      case 'denied':
        machineMetrics.configCenterDenied.inc({ status: String(e.status) });
        this.log.debug({ mac: e.mac, status: e.status }, 'config center: request refused');
        break;
    }
  }

  private count(name: string, r: { ok: true; started: InstallStarted } | { ok: false; error: Error | { code: string; message: string } }): void {
    if (r.ok) {
      machineMetrics.installsStarted.inc();
      this.log.info({ machine: name, macs: r.started.macs, bootFiles: r.started.bootFiles.length }, 'install started: one-time PXE boot set, machine reset');
    } else {
      const code = r.error instanceof KiverError ? r.error.code : 'code' in r.error ? r.error.code : 'internal';
      machineMetrics.installsFailed.inc({ reason: code });
      this.log.warn({ machine: name, code, reason: r.error.message }, 'install not started');
    }
  }

  /** One install; throws the typed error (409 already installing, 502/503 BMC, ...). */
  async install(name: string, opts: InstallOptions = {}): Promise<InstallStarted> {
    this.checkUrl();
    try {
      const started = await startInstall(this.deps, name, opts);
      this.count(name, { ok: true, started });
      return started;
    } catch (err) {
      this.count(name, { ok: false, error: err as Error });
      throw err;
    }
  }

  /** Many installs, at most `concurrency` BMC conversations at once; one outcome each. */
  async installMany(names: string[], opts: InstallOptions & { concurrency?: number } = {}): Promise<InstallOutcome[]> {
    this.checkUrl();
    const out = await installMany(this.deps, names, opts);
    for (const o of out) this.count(o.name, o.ok ? { ok: true, started: o.started! } : { ok: false, error: o.error! });
    return out;
  }

  /** One reaper pass (the timer's and `kiver machine reap`'s). */
  async reap(maxAgeMs = this.maxAgeMs): Promise<ReapResult> {
    try {
      const r = await reapBootFiles({ bootFiles: this.bootFiles, store: this.machines, maxAgeMs, clock: this.deps.clock });
      this.counted(r);
      machineMetrics.reaperRuns.inc({ result: 'ok' });
      return r;
    } catch (err) {
      machineMetrics.reaperRuns.inc({ result: 'error' });
      throw err;
    }
  }

  private counted(r: ReapResult): void {
    machineMetrics.bootFilesReaped.inc(r.deleted.length);
    if (r.expiredInstalls.length) machineMetrics.installsFailed.inc({ reason: 'expired' }, r.expiredInstalls.length);
    for (const f of r.deleted) this.log.info({ path: f.path, machine: f.machine, mac: f.mac, ageSeconds: Math.round(f.ageMs / 1000) }, 'reaper: stale boot file deleted');
    for (const m of r.expiredInstalls) this.log.warn({ machine: m }, 'reaper: install expired without a report; machine failed');
  }

  /** The scheduled reaper (leader only): once now, then every interval. */
  startReaper(): void {
    if (this.stopTimer) return;
    this.stopTimer = startReaper({
      bootFiles: this.bootFiles,
      store: this.machines,
      maxAgeMs: this.maxAgeMs,
      intervalMs: this.reapIntervalMs,
      clock: this.deps.clock,
      onReap: (r) => {
        this.counted(r);
        machineMetrics.reaperRuns.inc({ result: 'ok' });
      },
      onError: (err) => {
        machineMetrics.reaperRuns.inc({ result: 'error' });
        this.log.error({ err: err.message }, 'reaper pass failed');
      },
    });
  }

  stopReaper(): void {
    this.stopTimer?.();
    this.stopTimer = undefined;
  }
}
