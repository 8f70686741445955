/**
 * Operations on the machine collection, one per `kiver machine …` command:
 * add / import FILE / ls / get / rm / inspect. They take the store and the secret box
 * and return redacted views only.
 */
import { ConflictError, InputError, NotFoundError, type KiverError } from '../errors.js';
import type { BmcDriverFactory } from './bmc/driver.js';
import type { BootFileWriter } from './bootfiles.js';
import { InventoryError, type InventoryProblem } from './errors.js';
import { installPending } from './installer.js';
import { parseInventory, type InventoryFormat } from './inventory.js';
import { validateMachine } from './inventory-validate.js';
import type { MachineRecord, MachineSpec } from '../model/machine.js';
import { mutateMachine, systemClock, withPhase, type Clock, type MachineStore } from './machine-store.js';
import { redactMachine, type SecretBox } from './secrets.js';
import type { MachineView } from '../model/machine.js';

export function newRecord(spec: MachineSpec, secrets: SecretBox, now: Date): MachineRecord {
  const at = now.toISOString();
  return {
    name: spec.name,
    bmc: secrets.sealBmc(spec.name, spec.bmc),
    macs: spec.macs,
    osProfile: spec.osProfile,
    identity: spec.identity,
    createdAt: at,
    status: { phase: 'registered', since: at, timestamps: { registered: at }, events: [{ at, type: 'registered', message: 'machine added' }] },
  };
}

/** Checks specs against machines already stored: names, MACs, addresses must stay unique. */
async function checkAgainstStore(store: MachineStore, specs: MachineSpec[], lineOf: (i: number) => number): Promise<void> {
  const existing = (await store.list()).map((v) => v.value);
  const problems: InventoryProblem[] = [];
  specs.forEach((s, i) => {
    if (existing.some((m) => m.name === s.name)) problems.push({ line: lineOf(i), field: 'name', message: `machine "${s.name}" exists already` });
    for (const mac of s.macs) {
      const o = existing.find((m) => m.macs.includes(mac));
      if (o) problems.push({ line: lineOf(i), field: 'macs', message: `${mac} belongs to machine "${o.name}"` });
    }
    const o = existing.find((m) => m.identity.ip === s.identity.ip);
    if (o) problems.push({ line: lineOf(i), field: 'identity.ip', message: `${s.identity.ip} is the address of machine "${o.name}"` });
  });
  if (problems.length > 0) throw new InventoryError(problems);
}

/** One machine's problems as a single error naming every field (no lines: there is no file). */
function specError(problems: InventoryProblem[], Kind: typeof InputError | typeof ConflictError = InputError): KiverError {
  const msg = problems.map((p) => `${p.field ? `${p.field}: ` : ''}${p.message}`).join('; ');
  return new Kind(msg, problems[0]?.field || undefined);
}

/** `kiver machine add`: one machine from its nested JSON form (the API body). */
export async function addMachine(store: MachineStore, secrets: SecretBox, body: unknown, clock: Clock = systemClock): Promise<MachineView> {
  const { spec, problems } = validateMachine(body, () => 0);
  if (!spec) throw specError(problems);
  try {
    await checkAgainstStore(store, [spec], () => 0);
  } catch (err) {
    if (err instanceof InventoryError) throw specError(err.problems, ConflictError);
    throw err;
  }
  const rec = newRecord(spec, secrets, clock.now());
  await store.create([rec]);
  return redactMachine(rec);
}

/** `kiver machine import FILE`: all machines of a YAML/CSV inventory, or none. */
export async function importInventory(
  store: MachineStore,
  secrets: SecretBox,
  text: string,
  format: InventoryFormat,
  clock: Clock = systemClock,
): Promise<MachineView[]> {
  const rows = parseInventory(text, format);
  const specs = rows.map((r) => r.spec);
  await checkAgainstStore(store, specs, (i) => rows[i].line);
  const now = clock.now();
  const recs = specs.map((s) => newRecord(s, secrets, now));
  await store.create(recs);
  return recs.map(redactMachine);
}

export async function listMachines(store: MachineStore): Promise<MachineView[]> {
  return (await store.list()).map((v) => redactMachine(v.value));
}

export async function getMachine(store: MachineStore, name: string): Promise<MachineView> {
  const v = await store.get(name);
  if (!v) throw new NotFoundError(`machine "${name}" not found`);
  return redactMachine(v.value);
}

/** `kiver machine rm`: refuses while an install is live unless forced; deletes its boot files. */
export async function removeMachine(
  store: MachineStore,
  bootFiles: Pick<BootFileWriter, 'remove'>,
  name: string,
  opts: { force?: boolean; clock?: Clock } = {},
): Promise<void> {
  const v = await store.get(name);
  if (!v) throw new NotFoundError(`machine "${name}" not found`);
  if (installPending(v.value, (opts.clock ?? systemClock).now()) && !opts.force) {
    throw new ConflictError(`machine "${name}" is installing; wait for it or remove with --force`);
  }
  const macs = new Set([...v.value.macs, ...(v.value.status.install?.macs ?? []), ...(v.value.status.bmcMacs ?? [])]);
  for (const mac of macs) await bootFiles.remove(mac);
  await store.delete(name, v.version);
}

/** `kiver machine inspect`: asks the BMC for power state and MACs; registered → inspected. */
export async function inspectMachine(
  store: MachineStore,
  secrets: SecretBox,
  bmcFor: BmcDriverFactory,
  name: string,
  clock: Clock = systemClock,
): Promise<{ machine: MachineView; power: string; macs: string[] }> {
  const v = await store.get(name);
  if (!v) throw new NotFoundError(`machine "${name}" not found`);
  const bmc = bmcFor(secrets.openBmc(name, v.value.bmc));
  const power = await bmc.powerStatus();
  const macs = await bmc.readMacs();
  const after = await mutateMachine(store, name, (m) => {
    const n = m.status.phase === 'registered' || m.status.phase === 'failed' ? withPhase(m, 'inspected', clock.now(), `BMC answered: power ${power}, MACs ${macs.join(', ')}`) : m;
    n.status.bmcMacs = macs;
    return n;
  });
  return { machine: redactMachine(after.value), power, macs };
}
