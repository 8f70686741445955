/**
 * `POST /v1/services/apply`: many services in one request, declaratively. Each entry is a
 * whole spec: absent → created, different → updated (a new generation when containers must
 * change, as PATCH does), equal → left alone, so applying the same file twice writes nothing.
 * Every entry is checked before anything is written (a bad one is a 400 naming
 * `services/i/field`); writes go in compare-and-swap batches within etcd's txn limit.
 */
import { randomUUID } from 'node:crypto';
import type { ApiContext } from '../context.js';
import { K } from '../../model/keys.js';
import { applyDefaults, needsRollout, type Service, type ServiceCreate, type ServiceSpec } from '../../model/service.js';
import { ConflictError, InputError } from '../../errors.js';
import { openEnv, sealEnv } from '../../secrets.js';
import type { Compare, Op } from '../../store/store.js';

/** Services per transaction (one compare and one put each): under etcd's default 128 ops. */
const APPLY_BATCH = 100;

interface Planned {
  name: string;
  kind: 'created' | 'updated' | 'unchanged';
  compare: Compare;
  value?: Service;
}

/** JSON with sorted keys: two specs are equal whatever order their fields came in. */
function canonical(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) => (x && typeof x === 'object' && !Array.isArray(x)
    ? Object.fromEntries(Object.entries(x as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1)))
    : x));
}

export async function applyServices(ctx: ApiContext, entries: ServiceCreate[], check: (spec: ServiceSpec) => void): Promise<{ created: string[]; updated: string[]; unchanged: string[] }> {
  const specs = entries.map((e, i) => {
    try {
      // Managed types need generated credentials and endpoint ports, and a backup policy its
      // own checks: both go through POST /v1/services (and kiver backup policy set) for now.
      if (e.type !== undefined && e.type !== 'app') throw new InputError(`type: ${e.type} services are created one at a time (POST /v1/services); apply takes app services`, 'type');
      if (e.backup !== undefined) throw new InputError('backup: set backup policies with PUT /v1/backup-policies/NAME (kiver backup policy set), not in apply', 'backup');
      const spec = applyDefaults(e);
      check(spec);
      return spec;
    } catch (err) {
      // Field paths as the schema check writes them (services/3/memory).
      if (err instanceof InputError) throw new InputError(`services/${i}/${err.message}`, `services/${i}/${err.field ?? 'name'}`);
      throw err;
    }
  });
  const seen = new Map<string, number>();
  specs.forEach((s, i) => {
    if (seen.has(s.name)) throw new InputError(`services/${i}/name: ${s.name} is also services/${seen.get(s.name)}`, `services/${i}/name`);
    seen.set(s.name, i);
  });
  const out = { created: [] as string[], updated: [] as string[], unchanged: [] as string[] };
  let todo = specs;
  for (let attempt = 0; todo.length > 0; attempt++) {
    if (attempt === 20) throw new ConflictError(`services ${todo.slice(0, 5).map((s) => s.name).join(', ')} are being changed by others; try again`);
    const plans = await Promise.all(todo.map((spec, i) => plan(ctx, spec, specs.indexOf(todo[i]))));
    const retry: ServiceSpec[] = [];
    for (let i = 0; i < plans.length; i += APPLY_BATCH) {
      const batch = plans.slice(i, i + APPLY_BATCH);
      const writes = batch.filter((p) => p.value);
      const res = writes.length === 0 ? { succeeded: true } : await ctx.store.txn({
        compare: writes.map((p) => p.compare),
        success: writes.map((p): Op => ({ type: 'put', key: K.service(p.name), value: JSON.stringify(p.value) })),
      });
      if (!res.succeeded) {
        // Someone changed one of them meanwhile: plan this batch again on what is stored now.
        retry.push(...batch.map((p) => specs[seen.get(p.name)!]));
        continue;
      }
      for (const p of batch) out[p.kind].push(p.name);
    }
    todo = retry;
  }
  for (const name of out.created) void ctx.events.record(`service/${name}`, 'Normal', 'Created', `service ${name} created by apply`);
  for (const name of out.updated) void ctx.events.record(`service/${name}`, 'Normal', 'Updated', `service ${name} updated by apply`);
  return out;
}

async function plan(ctx: ApiContext, spec: ServiceSpec, i: number): Promise<Planned> {
  const key = K.service(spec.name);
  const cur = await ctx.store.get(key);
  const now = new Date().toISOString();
  if (!cur) {
    const value: Service = { spec: { ...spec, secretEnv: sealEnv(ctx.secrets, spec.name, spec.secretEnv) }, uid: randomUUID(), generation: 1, createdAt: now, updatedAt: now };
    return { name: spec.name, kind: 'created', compare: { key, modRevision: 0 }, value };
  }
  const svc = JSON.parse(cur.value) as Service;
  if (svc.deleting) throw new InputError(`services/${i}/name: service ${spec.name} is being deleted`, `services/${i}/name`);
  if (svc.spec.type !== undefined && svc.spec.type !== 'app') throw new InputError(`services/${i}/name: ${spec.name} is a ${svc.spec.type} service; apply changes app services only`, `services/${i}/name`);
  // Sealed values differ on every seal: compare what they open to.
  const stored: ServiceSpec = { ...svc.spec, secretEnv: openEnv(ctx.secrets, spec.name, svc.spec.secretEnv ?? {}) };
  if (canonical(stored) === canonical(spec)) return { name: spec.name, kind: 'unchanged', compare: { key, modRevision: cur.modRevision } };
  const sameSecrets = canonical(stored.secretEnv) === canonical(spec.secretEnv);
  const next: ServiceSpec = { ...spec, secretEnv: sameSecrets ? svc.spec.secretEnv : sealEnv(ctx.secrets, spec.name, spec.secretEnv) };
  const generation = needsRollout(stored, spec) ? svc.generation + 1 : svc.generation;
  return { name: spec.name, kind: 'updated', compare: { key, modRevision: cur.modRevision }, value: { ...svc, spec: next, generation, updatedAt: now } };
}
