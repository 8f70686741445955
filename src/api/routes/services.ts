import { randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { Type } from '@sinclair/typebox';
import type { ApiContext } from '../context.js';
import { K } from '../../model/keys.js';
import { SERVICE_NAME } from '../../model/names.js';
import {
  MAX_APPLY, ScaleRequest, ServiceCreate, ServiceUpdate, ServiceView, applyDefaults, checkServiceSpec, needsRollout,
  type Service, type ServiceSpec,
} from '../../model/service.js';
import { ReplicaView } from '../../model/replica.js';
import { createJson, getJson, listJson, updateJson } from '../../store/json.js';
import { ConflictError, InputError, NotFoundError } from '../../errors.js';
import { replicaViews, serviceView } from '../views.js';
import { sealEnv } from '../../secrets.js';
import { checkBackupPolicy, putPolicy } from './backups.js';
import { applyServices } from './service-apply.js';
import type { ServiceRoles } from '../../model/service-roles.js';
import { prepareCreate } from '../../services/create.js';
import { managedType } from '../../services/catalog.js';
import { checkPins } from '../../ipam/service-fields.js';

const NameParams = Type.Object({ name: Type.String({ pattern: SERVICE_NAME }) }, { additionalProperties: false });
const DeleteQuery = Type.Object({ purge: Type.Optional(Type.Boolean()) }, { additionalProperties: false });
const ApplyRequest = Type.Object(
  { services: Type.Array(ServiceCreate, { minItems: 1, maxItems: MAX_APPLY }) },
  { additionalProperties: false },
);
const ApplyResult = Type.Object({
  created: Type.Array(Type.String()),
  updated: Type.Array(Type.String()),
  unchanged: Type.Array(Type.String()),
});

export function serviceRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const { store } = ctx;
  const check = (spec: ServiceSpec): void => {
    const bad = checkServiceSpec(spec, ctx.hostPorts) ?? checkPins(spec);
    if (bad) throw new InputError(`${bad[0]}: ${bad[1]}`, bad[0]);
  };

  async function view(name: string) {
    const svc = await getJson<Service>(store, K.service(name));
    if (!svc) throw new NotFoundError(`service ${name} not found`);
    const roles = await getJson<ServiceRoles>(store, K.serviceRoles(name));
    return { ...serviceView(svc.value, await replicaViews(store, name)), ...(roles ? { roles: roles.value } : {}) };
  }

  app.post('/v1/services', { schema: { tags: ['services'], summary: 'Create a service', body: ServiceCreate, response: { 201: ServiceView } } }, async (req, reply) => {
    const prepared = await prepareCreate(store, ctx.secrets, req.body as ServiceCreate);
    const spec = { ...applyDefaults(prepared.create), ...prepared.extra };
    check(spec);
    const backup = (req.body as ServiceCreate).backup;
    if (backup) await checkBackupPolicy(ctx, spec.name, backup, 'backup/'); // before anything is stored
    spec.secretEnv = sealEnv(ctx.secrets, spec.name, spec.secretEnv);
    const now = new Date().toISOString();
    const svc: Service = { spec, uid: randomUUID(), generation: 1, createdAt: now, updatedAt: now };
    if (prepared.puts.length === 0) await createJson(store, K.service(spec.name), svc, `service ${spec.name}`);
    else {
      // The service and its credentials together, or neither.
      const keys = [K.service(spec.name), ...prepared.puts.map((o) => (o.type === 'put' ? o.key : ''))];
      const res = await store.txn({ compare: keys.map((key) => ({ key, modRevision: 0 })), success: [{ type: 'put', key: keys[0], value: JSON.stringify(svc) }, ...prepared.puts] });
      if (!res.succeeded) throw new ConflictError(`service ${spec.name} already exists`);
    }
    if (backup) await putPolicy(ctx, spec.name, backup);
    await ctx.events.record(`service/${spec.name}`, 'Normal', 'Created', `service ${spec.name} created with ${spec.replicas} replicas of ${spec.image}`);
    return reply.status(201).send(serviceView(svc, []));
  });

  app.post('/v1/services/apply', {
    bodyLimit: 8 * 1024 * 1024,
    schema: {
      tags: ['services'], summary: 'Create or update many services in one request (idempotent: an unchanged service is left alone)',
      body: ApplyRequest, response: { 200: ApplyResult },
    },
  }, async (req) => applyServices(ctx, (req.body as { services: ServiceCreate[] }).services, check));

  app.get('/v1/services', { schema: { tags: ['services'], summary: 'List services', response: { 200: Type.Array(ServiceView) } } }, async () => {
    const [services, replicas] = await Promise.all([listJson<Service>(store, K.services), replicaViews(store)]);
    return services.map((s) => serviceView(s, replicas.filter((r) => r.service === s.spec.name)));
  });

  app.get('/v1/services/:name', { schema: { tags: ['services'], summary: 'Get a service with its replicas', params: NameParams, response: { 200: ServiceView } } }, async (req) => {
    return view((req.params as { name: string }).name);
  });

  app.get('/v1/services/:name/replicas', { schema: { tags: ['replicas'], summary: "A service's replicas", params: NameParams, response: { 200: Type.Array(ReplicaView) } } }, async (req) => {
    return (await view((req.params as { name: string }).name)).replicas;
  });

  app.patch('/v1/services/:name', {
    schema: { tags: ['services'], summary: 'Update a service (rolling, one replica at a time)', params: NameParams, body: ServiceUpdate, response: { 200: ServiceView } },
  }, async (req) => {
    const { name } = req.params as { name: string };
    const patch = req.body as ServiceUpdate;
    await updateJson<Service>(store, K.service(name), `service ${name}`, (svc) => {
      if (svc.deleting) throw new InputError(`service ${name} is being deleted`, 'name');
      const t = managedType(svc.spec.type);
      for (const f of ['image', 'command', 'ports', 'secretEnv'] as const) {
        if (t && patch[f] !== undefined) throw new InputError(`${f}: set by type ${t.name}`, f);
      }
      if (t && patch.replicas !== undefined && (patch.replicas < t.replicas.min || patch.replicas > t.replicas.max)) {
        throw new InputError(`replicas: type ${t.name} needs ${t.replicas.min}..${t.replicas.max} replicas, got ${patch.replicas}`, 'replicas');
      }
      const spec: ServiceSpec = { ...svc.spec, ...patch } as ServiceSpec;
      check(spec);
      if (patch.secretEnv) spec.secretEnv = sealEnv(ctx.secrets, name, patch.secretEnv);
      const generation = needsRollout(svc.spec, spec) ? svc.generation + 1 : svc.generation;
      return { ...svc, spec, generation, updatedAt: new Date().toISOString() };
    });
    return view(name);
  });

  app.put('/v1/services/:name/scale', {
    schema: { tags: ['services'], summary: 'Set the replica count', params: NameParams, body: ScaleRequest, response: { 200: ServiceView } },
  }, async (req) => {
    const { name } = req.params as { name: string };
    const { replicas } = req.body as { replicas: number };
    await updateJson<Service>(store, K.service(name), `service ${name}`, (svc) => {
      if (svc.deleting) throw new InputError(`service ${name} is being deleted`, 'name');
      const t = managedType(svc.spec.type);
      if (t && (replicas < t.replicas.min || replicas > t.replicas.max)) {
        throw new InputError(`replicas: type ${t.name} needs ${t.replicas.min}..${t.replicas.max} replicas, got ${replicas}`, 'replicas');
      }
      return { ...svc, spec: { ...svc.spec, replicas }, updatedAt: new Date().toISOString() };
    });
    await ctx.events.record(`service/${name}`, 'Normal', 'Scaled', `service ${name} scaled to ${replicas}`);
    return view(name);
  });

  app.delete('/v1/services/:name', {
    schema: { tags: ['services'], summary: 'Delete a service; its data dirs stay unless purge=true', params: NameParams, querystring: DeleteQuery },
  }, async (req, reply) => {
    const { name } = req.params as { name: string };
    const purge = (req.query as { purge?: boolean }).purge ?? false;
    await updateJson<Service>(store, K.service(name), `service ${name}`, (svc) => ({
      ...svc,
      deleting: { purge: purge || Boolean(svc.deleting?.purge), at: svc.deleting?.at ?? new Date().toISOString() },
    }));
    return reply.status(202).send(await view(name).catch(() => ({ name, deleting: true })));
  });
}
