/** The service catalog and what managed services add: credentials, endpoints, switchover. */
import type { FastifyInstance } from 'fastify';
import { Type } from '@sinclair/typebox';
import type { ApiContext } from '../context.js';
import { K } from '../../model/keys.js';
import { SERVICE_NAME } from '../../model/names.js';
import type { Service } from '../../model/service.js';
import type { ServiceRoles } from '../../model/service-roles.js';
import type { Replica } from '../../model/replica.js';
import type { Node } from '../../model/node.js';
import { getJson, updateJson } from '../../store/json.js';
import { InputError, NotFoundError } from '../../errors.js';
import { catalog, managedType } from '../../services/catalog.js';
import { openCredentials } from '../../services/credentials.js';

const NameParams = Type.Object({ name: Type.String({ pattern: SERVICE_NAME }) }, { additionalProperties: false });
const SwitchoverBody = Type.Object({ to: Type.Optional(Type.Integer({ minimum: 0, maximum: 1000 })) }, { additionalProperties: false });
const Endpoint = Type.Object({ host: Type.String(), port: Type.Integer() });
const EndpointsView = Type.Object({
  service: Type.String(),
  type: Type.String(),
  write: Endpoint,
  read: Endpoint,
  /** Where the primary is now (clients should use `write`, which follows it). */
  primary: Type.Optional(Type.Object({ ordinal: Type.Integer(), node: Type.String(), host: Type.String(), port: Type.Integer() })),
  replicas: Type.Array(Type.Object({ ordinal: Type.Integer(), node: Type.String(), host: Type.String(), port: Type.Integer(), role: Type.String() })),
});

export function serviceCatalogRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const { store } = ctx;

  async function managed(name: string): Promise<Service> {
    const svc = await getJson<Service>(store, K.service(name));
    if (!svc) throw new NotFoundError(`service ${name} not found`);
    if (!managedType(svc.value.spec.type)) throw new InputError(`service ${name} is of type app: it has no generated credentials, endpoints or roles`, 'name');
    return svc.value;
  }

  app.get('/v1/catalog', { schema: { tags: ['catalog'], summary: 'Service types with their versions and parameters' } }, async () => catalog());

  // Admin only (api/server.ts keeps viewers out): it returns passwords.
  app.get('/v1/services/:name/credentials', { schema: { tags: ['services'], summary: "A managed service's generated credentials (admin only)", params: NameParams } }, async (req) => {
    const { name } = req.params as { name: string };
    const svc = await managed(name);
    const t = managedType(svc.spec.type)!;
    const rec = await getJson<{ sealed: string }>(store, K.serviceCredentials(name));
    if (!rec) throw new NotFoundError(`service ${name} has no stored credentials`);
    const c = openCredentials(ctx.secrets, name, rec.value.sealed);
    return {
      service: name, type: t.name,
      user: t.clientCredential.user, password: c[t.clientCredential.passwordKey],
      ...(t.clientCredential.database ? { database: t.clientCredential.database } : {}),
      all: c,
    };
  });

  app.get('/v1/services/:name/endpoints', { schema: { tags: ['services'], summary: 'Write and read endpoints of a managed service', params: NameParams, response: { 200: EndpointsView } } }, async (req) => {
    const { name } = req.params as { name: string };
    const svc = await managed(name);
    const roles = (await getJson<ServiceRoles>(store, K.serviceRoles(name)))?.value;
    const host = req.hostname.replace(/:\d+$/, '').replace(/^\[(.*)\]$/, '$1');
    const replicas = [];
    for (const kv of ctx.cache.group(K.replicas, name)) {
      const r = JSON.parse(kv.value) as Replica;
      if (!r.node || r.desired !== 'run') continue;
      const node = ctx.cache.get<Node>(K.node(r.node));
      const role = roles?.replicas.find((x) => x.ordinal === r.ordinal)?.role ?? 'unknown';
      replicas.push({ ordinal: r.ordinal, node: r.node, host: node?.address ?? '', port: r.spec.ports[0]?.host ?? 0, role });
    }
    replicas.sort((a, b) => a.ordinal - b.ordinal);
    const p = replicas.find((r) => r.ordinal === roles?.primary);
    return {
      service: name, type: svc.spec.type!,
      write: { host, port: svc.spec.endpoints!.write }, read: { host, port: svc.spec.endpoints!.read },
      ...(p ? { primary: { ordinal: p.ordinal, node: p.node, host: p.host, port: p.port } } : {}),
      replicas,
    };
  });

  app.post('/v1/services/:name/switchover', {
    schema: { tags: ['services'], summary: 'Planned switchover of the primary (to an ordinal, or the most advanced replica)', params: NameParams, body: SwitchoverBody },
  }, async (req, reply) => {
    const { name } = req.params as { name: string };
    const { to } = req.body as { to?: number };
    const svc = await managed(name);
    if (to !== undefined && to >= svc.spec.replicas) throw new InputError(`to: ${name} has replicas 0..${svc.spec.replicas - 1}`, 'to');
    const roles = await updateJson<ServiceRoles>(store, K.serviceRoles(name), `roles of ${name}`, (cur) => {
      if (cur.primary === undefined || cur.phase !== 'ready') throw new InputError(`${name} has no serving primary now (phase ${cur.phase}); try again`, 'name');
      if (to !== undefined && to === cur.primary) throw new InputError(`to: replica ${to} is the primary already`, 'to');
      return { ...cur, switchoverTo: to ?? -1, updatedAt: new Date().toISOString() };
    });
    await ctx.events.record(`service/${name}`, 'Normal', 'SwitchoverRequested', `switchover of ${name} requested${to !== undefined ? ` to replica ${to}` : ''}`);
    return reply.status(202).send(roles);
  });
}
