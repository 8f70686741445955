/**
 * The install flow (`kiver machine install NAME`), over injected dependencies so the
 * server, the CLI tests and the lab run the same code:
 *
 *   read the NIC MAC(s) from the BMC → write the per-MAC boot files (with a fresh
 *   one-time token) → mark the machine `installing` (compare-and-swap) → one-time PXE
 *   boot → power reset (or on) → return. The machine's installer then talks to the
 *   config center, which marks it `installed` and deletes the boot files.
 *
 * Nothing is written before the BMC has answered: a wrong BMC password or an
 * unreachable BMC leaves the machine's state unchanged. A second install of a machine
 * that is installing (token not yet expired) is a ConflictError (409).
 */
import { randomBytes } from 'node:crypto';
import { ConflictError, KiverError, NotFoundError } from '../errors.js';
import type { BmcDriverFactory } from './bmc/driver.js';
import type { BootFileWriter } from './bootfiles.js';
import { hashToken } from './config-center.js';
import { BmcUnsupportedError } from './errors.js';
import type { MachinePhase, MachineRecord } from '../model/machine.js';
import { mutateMachine, systemClock, withEvent, withPhase, type Clock, type MachineStore } from './machine-store.js';
import { kernelArgs, type ProfileRegistry } from './profiles/index.js';
import { redactMachine, type SecretBox } from './secrets.js';
import type { MachineView } from '../model/machine.js';

export const DEFAULT_TOKEN_TTL_MS = 2 * 60 * 60 * 1000;

export type InstallStep = 'bmc-macs' | 'boot-files' | 'installing' | 'pxe-once' | 'reset' | 'power-on' | 'failed';

export interface InstallProgress {
  machine: string;
  step: InstallStep;
  at: Date;
  detail?: string;
}

export interface InstallerDeps {
  store: MachineStore;
  secrets: SecretBox;
  bmcFor: BmcDriverFactory;
  bootFiles: Pick<BootFileWriter, 'write' | 'remove'>;
  profiles: ProfileRegistry;
  /** Base URL of the Kiver server as the machines reach it (goes on the kernel command line). */
  serverUrl: string;
  clock?: Clock;
  /** Token (and boot file) lifetime; keep equal to the reaper's max age. Default 2 h. */
  tokenTtlMs?: number;
  onProgress?: (p: InstallProgress) => void;
  /** Installs in flight in this process (shared by all calls with the same deps). */
  inFlight?: Set<string>;
}

export interface InstallOptions {
  /** Override the machine's OS profile for this install (and record it). */
  osProfile?: string;
}

export interface InstallStarted {
  machine: MachineView;
  macs: string[];
  bootFiles: string[];
  expiresAt: Date;
  /** When the BMC accepted the reset/power-on. */
  resetAt: Date;
}

const defaultInFlight = new WeakMap<MachineStore, Set<string>>();

function inFlightOf(deps: InstallerDeps): Set<string> {
  if (deps.inFlight) return deps.inFlight;
  let s = defaultInFlight.get(deps.store);
  if (!s) defaultInFlight.set(deps.store, (s = new Set()));
  return s;
}

/** Is an install of this record still live (installing and its token unexpired)? */
export function installPending(m: MachineRecord, now: Date): boolean {
  return m.status.phase === 'installing' && !!m.status.install && now.getTime() < new Date(m.status.install.expiresAt).getTime();
}

export async function startInstall(deps: InstallerDeps, name: string, opts: InstallOptions = {}): Promise<InstallStarted> {
  const clock = deps.clock ?? systemClock;
  const progress = (step: InstallStep, detail?: string) => deps.onProgress?.({ machine: name, step, at: clock.now(), detail });
  const cur = await deps.store.get(name);
  if (!cur) throw new NotFoundError(`machine "${name}" not found`);
  const inFlight = inFlightOf(deps);
  if (installPending(cur.value, clock.now()) || inFlight.has(name)) {
    const until = cur.value.status.install?.expiresAt;
    throw new ConflictError(`machine "${name}" is already installing${until ? ` (its boot file expires ${until})` : ''}`);
  }
  inFlight.add(name);
  try {
    const m = cur.value;
    const profileName = opts.osProfile ?? m.osProfile;
    const profile = deps.profiles.get(profileName);
    const bmc = deps.bmcFor(deps.secrets.openBmc(name, m.bmc));

    // 1. The BMC first: nothing is written if it refuses or does not answer.
    let macs: string[];
    try {
      macs = await bmc.readMacs();
    } catch (err) {
      if (!(err instanceof BmcUnsupportedError) || m.macs.length === 0) throw err;
      macs = [...m.macs];
    }
    progress('bmc-macs', macs.join(' '));

    // 2. Boot files with a fresh one-time token.
    const token = randomBytes(32).toString('base64url');
    const createdAt = clock.now();
    const expiresAt = new Date(createdAt.getTime() + (deps.tokenTtlMs ?? DEFAULT_TOKEN_TTL_MS));
    const bootFiles: string[] = [];
    try {
      for (const mac of macs) {
        bootFiles.push(
          ...(await deps.bootFiles.write({
            machine: name,
            mac,
            kernelUrl: profile.kernelUrl,
            initrdUrl: profile.initrdUrl,
            args: kernelArgs(profile, { machine: name, mac, token, serverUrl: deps.serverUrl, identity: m.identity }),
            createdAt,
          })),
        );
      }
    } catch (err) {
      for (const mac of macs) await deps.bootFiles.remove(mac).catch(() => undefined);
      throw err;
    }
    progress('boot-files', bootFiles.join(' '));

    // 3. installing, compare-and-swap against what we read (another server may race us).
    let next = withPhase(m, 'installing', createdAt, `install ${profileName} started; boot files for ${macs.join(', ')}`);
    next.osProfile = profileName;
    next.status.bmcMacs = macs;
    next.status.install = {
      tokenSha256: hashToken(token),
      startedAt: createdAt.toISOString(),
      expiresAt: expiresAt.toISOString(),
      osProfile: profileName,
      serverUrl: deps.serverUrl,
      macs,
      bootFiles,
    };
    try {
      await deps.store.update(next, cur.version);
    } catch (err) {
      for (const mac of macs) await deps.bootFiles.remove(mac).catch(() => undefined);
      if (err instanceof ConflictError) throw new ConflictError(`machine "${name}" changed while starting the install (another install?); try again`);
      throw err;
    }
    progress('installing');

    // 4. One-time PXE, then reset (or power on).
    let resetAt: Date;
    try {
      await bmc.bootPxeOnce();
      progress('pxe-once');
      const power = await bmc.powerStatus();
      if (power === 'on') {
        await bmc.powerReset();
        resetAt = clock.now();
        progress('reset');
      } else {
        await bmc.powerOn();
        resetAt = clock.now();
        progress('power-on');
      }
    } catch (err) {
      for (const mac of macs) await deps.bootFiles.remove(mac).catch(() => undefined);
      const reason = `BMC: ${(err as Error).message}`;
      await mutateMachine(deps.store, name, (x) => {
        const f = withPhase(x, 'failed', clock.now(), reason, reason);
        delete f.status.install;
        return f;
      }).catch(() => undefined);
      progress('failed', reason);
      throw err;
    }
    const after = await deps.store.get(name);
    next = after ? withEvent(after.value, resetAt, 'reset', 'one-time PXE boot set; machine reset') : next;
    if (after) await deps.store.update(next, after.version).catch(() => undefined);
    return { machine: redactMachine(next), macs, bootFiles, expiresAt, resetAt };
  } finally {
    inFlight.delete(name);
  }
}

export interface InstallOutcome {
  name: string;
  ok: boolean;
  started?: InstallStarted;
  error?: { code: string; status: number; message: string };
}

/** Starts installs of many machines, at most `concurrency` BMC conversations at once. */
export async function installMany(deps: InstallerDeps, names: string[], opts: InstallOptions & { concurrency?: number } = {}): Promise<InstallOutcome[]> {
  const limit = Math.max(1, opts.concurrency ?? 4);
  const results: InstallOutcome[] = new Array(names.length);
  let next = 0;
  const worker = async () => {
    while (next < names.length) {
      const i = next++;
      const name = names[i];
      try {
        results[i] = { name, ok: true, started: await startInstall(deps, name, opts) };
      } catch (err) {
        const e = err as Error;
        results[i] = {
          name,
          ok: false,
          error: e instanceof KiverError ? { code: e.code, status: e.status, message: e.message } : { code: 'internal', status: 500, message: e.message },
        };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, names.length) }, worker));
  return results;
}

/**
 * Follows a machine until it reaches one of `phases` (for `install` without `--detach`).
 * Calls `onChange` on every phase change; resolves with the final record.
 */
export async function waitForPhase(
  store: MachineStore,
  name: string,
  phases: MachinePhase[],
  opts: { timeoutMs: number; pollMs?: number; onChange?: (m: MachineRecord) => void },
): Promise<MachineRecord> {
  const deadline = Date.now() + opts.timeoutMs;
  let last = '';
  for (;;) {
    const cur = await store.get(name);
    if (!cur) throw new NotFoundError(`machine "${name}" not found`);
    const key = `${cur.value.status.phase}@${cur.value.status.since}`;
    if (key !== last) {
      last = key;
      opts.onChange?.(cur.value);
    }
    if (phases.includes(cur.value.status.phase)) return cur.value;
    if (Date.now() > deadline) throw new KiverError(`machine "${name}" did not reach ${phases.join('/')} within ${Math.round(opts.timeoutMs / 1000)} s (now ${cur.value.status.phase})`);
    await new Promise((r) => setTimeout(r, opts.pollMs ?? 500));
  }
}
