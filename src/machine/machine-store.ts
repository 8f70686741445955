/**
 * The machine state store: a small interface the server implements on its key-value
 * store (KvMachineStore below does it on the store contract, `/kiver/machines/<name>`,
 * version = the key's mod revision), plus an in-memory one for tests and the lab.
 * All writes are compare-and-swap on the version, so two servers (or two requests)
 * cannot both start an install of the same machine.
 */
import { ConflictError, NotFoundError } from '../errors.js';
import type { Store } from '../store/store.js';
import { MAX_EVENTS, type MachinePhase, type MachineRecord } from '../model/machine.js';
import { K } from '../model/keys.js';

export interface Versioned<T> {
  value: T;
  /** Opaque, increases on every write; pass it back to update/delete. */
  version: number;
}

export interface MachineStore {
  get(name: string): Promise<Versioned<MachineRecord> | undefined>;
  list(): Promise<Versioned<MachineRecord>[]>;
  /** Creates all records or none; ConflictError when any name exists. */
  create(records: MachineRecord[]): Promise<void>;
  /** Replaces a record if its version is still `expectedVersion`; else ConflictError. Returns the new version. */
  update(record: MachineRecord, expectedVersion: number): Promise<number>;
  /** Deletes; with `expectedVersion`, only if unchanged (else ConflictError). Returns whether it existed. */
  delete(name: string, expectedVersion?: number): Promise<boolean>;
}

export interface Clock {
  now(): Date;
}
export const systemClock: Clock = { now: () => new Date() };

/** A copy of `m` in `phase`, with the timestamp and an event recorded. */
export function withPhase(m: MachineRecord, phase: MachinePhase, now: Date, message: string, reason?: string): MachineRecord {
  const at = now.toISOString();
  const status = { ...m.status, phase, since: at, timestamps: { ...m.status.timestamps, [phase]: at } };
  if (reason !== undefined) status.reason = reason;
  else delete status.reason;
  return withEvent({ ...m, status }, now, phase, message);
}

export function withEvent(m: MachineRecord, now: Date, type: string, message: string): MachineRecord {
  const events = [...m.status.events, { at: now.toISOString(), type, message }].slice(-MAX_EVENTS);
  return { ...m, status: { ...m.status, events } };
}

/** Reads, applies `fn`, writes with CAS; retries on concurrent writes. `fn` may throw to abort. */
export async function mutateMachine(
  store: MachineStore,
  name: string,
  fn: (m: MachineRecord) => MachineRecord,
  attempts = 5,
): Promise<Versioned<MachineRecord>> {
  for (let i = 0; ; i++) {
    const cur = await store.get(name);
    if (!cur) throw new NotFoundError(`machine "${name}" not found`);
    const next = fn(structuredClone(cur.value));
    try {
      const version = await store.update(next, cur.version);
      return { value: next, version };
    } catch (err) {
      if (!(err instanceof ConflictError) || i + 1 >= attempts) throw err;
    }
  }
}

export async function findByMac(store: MachineStore, mac: string): Promise<Versioned<MachineRecord> | undefined> {
  for (const m of await store.list()) {
    if (m.value.macs.includes(mac) || m.value.status.install?.macs.includes(mac) || m.value.status.bmcMacs?.includes(mac)) return m;
  }
  return undefined;
}

export class MemoryMachineStore implements MachineStore {
  private readonly items = new Map<string, Versioned<MachineRecord>>();
  private rev = 0;

  async get(name: string): Promise<Versioned<MachineRecord> | undefined> {
    const v = this.items.get(name);
    return v && { value: structuredClone(v.value), version: v.version };
  }

  async list(): Promise<Versioned<MachineRecord>[]> {
    return [...this.items.keys()].sort().map((k) => {
      const v = this.items.get(k)!;
      return { value: structuredClone(v.value), version: v.version };
    });
  }

  async create(records: MachineRecord[]): Promise<void> {
    for (const r of records) if (this.items.has(r.name)) throw new ConflictError(`machine "${r.name}" exists already`);
    const names = new Set<string>();
    for (const r of records) {
      if (names.has(r.name)) throw new ConflictError(`machine "${r.name}" is listed twice`);
      names.add(r.name);
    }
    this.rev++;
    for (const r of records) this.items.set(r.name, { value: structuredClone(r), version: this.rev });
  }

  async update(record: MachineRecord, expectedVersion: number): Promise<number> {
    const cur = this.items.get(record.name);
    if (!cur) throw new NotFoundError(`machine "${record.name}" not found`);
    if (cur.version !== expectedVersion) throw new ConflictError(`machine "${record.name}" changed concurrently`);
    this.rev++;
    this.items.set(record.name, { value: structuredClone(record), version: this.rev });
    return this.rev;
  }

  async delete(name: string, expectedVersion?: number): Promise<boolean> {
    const cur = this.items.get(name);
    if (!cur) return false;
    if (expectedVersion !== undefined && cur.version !== expectedVersion) throw new ConflictError(`machine "${name}" changed concurrently`);
    this.items.delete(name);
    this.rev++;
    return true;
  }
}

export const MACHINE_PREFIX = K.machines;

/** MachineStore on the store contract (SQLite or etcd backend, see store/store.ts). */
export class KvMachineStore implements MachineStore {
  constructor(private readonly kv: Store, private readonly prefix = MACHINE_PREFIX) {}

  private key(name: string): string {
    return `${this.prefix}${name}`;
  }

  async get(name: string): Promise<Versioned<MachineRecord> | undefined> {
    const kv = await this.kv.get(this.key(name));
    return kv && { value: JSON.parse(kv.value) as MachineRecord, version: kv.modRevision };
  }

  async list(): Promise<Versioned<MachineRecord>[]> {
    const r = await this.kv.list(this.prefix);
    return r.kvs.map((kv) => ({ value: JSON.parse(kv.value) as MachineRecord, version: kv.modRevision }));
  }

  async create(records: MachineRecord[]): Promise<void> {
    const r = await this.kv.txn({
      compare: records.map((m) => ({ key: this.key(m.name), modRevision: 0 })),
      success: records.map((m) => ({ type: 'put' as const, key: this.key(m.name), value: JSON.stringify(m) })),
    });
    if (!r.succeeded) {
      const existing: string[] = [];
      for (const m of records) if (await this.kv.get(this.key(m.name))) existing.push(m.name);
      throw new ConflictError(`machine${existing.length === 1 ? '' : 's'} ${existing.map((n) => `"${n}"`).join(', ') || '(concurrently created)'} exist${existing.length === 1 ? 's' : ''} already; nothing imported`);
    }
  }

  async update(record: MachineRecord, expectedVersion: number): Promise<number> {
    const r = await this.kv.txn({
      compare: [{ key: this.key(record.name), modRevision: expectedVersion }],
      success: [{ type: 'put', key: this.key(record.name), value: JSON.stringify(record) }],
    });
    if (!r.succeeded) {
      if (!(await this.kv.get(this.key(record.name)))) throw new NotFoundError(`machine "${record.name}" not found`);
      throw new ConflictError(`machine "${record.name}" changed concurrently`);
    }
    return r.revision;
  }

  async delete(name: string, expectedVersion?: number): Promise<boolean> {
    if (expectedVersion === undefined) return this.kv.delete(this.key(name));
    const r = await this.kv.txn({
      compare: [{ key: this.key(name), modRevision: expectedVersion }],
      success: [{ type: 'delete', key: this.key(name) }],
    });
    if (!r.succeeded) {
      if (!(await this.kv.get(this.key(name)))) return false;
      throw new ConflictError(`machine "${name}" changed concurrently`);
    }
    return true;
  }
}
