/**
 * Bare-metal machines (issue 5): inventory (add, import, ls, get, rm), BMC inspection,
 * installs (one or many, with a concurrency limit) and the boot-file reaper; plus the
 * config center, which is mounted here but is not behind the API token (the installing
 * machine only has its one-time install token; see api/server.ts).
 *
 * Every machine leaves through `redactMachine` and, as a second guard, a response
 * schema that has no place for a password, its ciphertext or a token hash.
 */
import type { FastifyInstance } from 'fastify';
import { Type } from '@sinclair/typebox';
import type { ApiContext } from '../context.js';
import { InputError, UnavailableError } from '../../errors.js';
import { configCenterRoutes } from './config-center.js';
import { ErrorBody } from '../../model/error-body.js';
import { MACHINE_NAME_PATTERN, MachineView, OS_PROFILE_PATTERN } from '../../model/machine.js';
import type { InventoryFormat } from '../../machine/inventory.js';
import { addMachine, getMachine, importInventory, inspectMachine, listMachines, removeMachine } from '../../machine/machines.js';
import type { InstallStarted } from '../../machine/installer.js';

const NameParams = Type.Object({ name: Type.String({ pattern: MACHINE_NAME_PATTERN }) }, { additionalProperties: false });
const Text = (max: number, extra: object = {}) => Type.String({ minLength: 1, maxLength: max, ...extra });

const BmcBody = Type.Object(
  {
    driver: Type.Optional(Type.Union([Type.Literal('ipmi'), Type.Literal('redfish')], { description: 'default ipmi' })),
    address: Text(253, { description: 'host name or IP address of the BMC' }),
    port: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535, description: 'default 623 (IPMI) / 443 (Redfish)' })),
    user: Text(64),
    password: Text(256, { description: 'encrypted at rest; never returned' }),
  },
  { additionalProperties: false },
);
const IdentityBody = Type.Object(
  {
    ip: Text(64, { description: 'address/prefix, e.g. 10.20.0.11/24' }),
    prefix: Type.Optional(Type.Integer({ minimum: 1, maximum: 128 })),
    hostname: Text(253),
    gateway: Type.Optional(Text(64)),
    dns: Type.Optional(Type.Array(Text(64), { maxItems: 8 })),
    ntp: Type.Optional(Type.Array(Text(253), { maxItems: 8 })),
  },
  { additionalProperties: false },
);
export const MachineCreate = Type.Object(
  {
    name: Type.String({ pattern: MACHINE_NAME_PATTERN }),
    bmc: BmcBody,
    macs: Type.Optional(Type.Array(Text(32), { maxItems: 16, description: 'optional: read from the BMC at install' })),
    osProfile: Type.String({ pattern: OS_PROFILE_PATTERN }),
    identity: IdentityBody,
  },
  { additionalProperties: false },
);

const ImportQuery = Type.Object(
  { format: Type.Optional(Type.Union([Type.Literal('yaml'), Type.Literal('csv')], { description: 'default: from the content type, else yaml' })) },
  { additionalProperties: false },
);
const ImportBody = Type.String({ maxLength: 1024 * 1024, description: 'the inventory file (text/csv, application/yaml, text/plain, or a JSON string)' });
const DeleteQuery = Type.Object({ force: Type.Optional(Type.Boolean({ description: 'also while installing' })) }, { additionalProperties: false });
const InstallOneBody = Type.Object(
  { osProfile: Type.Optional(Type.String({ pattern: OS_PROFILE_PATTERN, description: "override the machine's OS profile" })) },
  { additionalProperties: false },
);
const InstallManyBody = Type.Object(
  {
    names: Type.Array(Type.String({ pattern: MACHINE_NAME_PATTERN }), { minItems: 1, maxItems: 1000, uniqueItems: true }),
    osProfile: Type.Optional(Type.String({ pattern: OS_PROFILE_PATTERN })),
    concurrency: Type.Optional(Type.Integer({ minimum: 1, maximum: 64, description: 'BMC conversations at once (default 4)' })),
  },
  { additionalProperties: false },
);
const ReapBody = Type.Object(
  { maxAgeSeconds: Type.Optional(Type.Integer({ minimum: 0, maximum: 30 * 86400, description: "default: the server's --boot-file-max-age" })) },
  { additionalProperties: false },
);

const Strs = Type.Array(Type.String());
const MachineViewSchema = MachineView;
const StartedSchema = Type.Object({
  machine: MachineViewSchema, macs: Strs, bootFiles: Strs, expiresAt: Type.String(), resetAt: Type.String(),
});
const OutcomeSchema = Type.Object({
  name: Type.String(),
  ok: Type.Boolean(),
  started: Type.Optional(StartedSchema),
  error: Type.Optional(Type.Object({ code: Type.String(), status: Type.Integer(), message: Type.String() })),
});

const YAML_TYPES = ['application/yaml', 'application/x-yaml', 'text/yaml', 'text/x-yaml'];

function formatOf(query: { format?: InventoryFormat }, contentType: string | undefined): InventoryFormat {
  if (query.format) return query.format;
  return /^text\/csv\b/i.test(contentType ?? '') ? 'csv' : 'yaml';
}

const startedView = (s: InstallStarted) => ({ ...s, expiresAt: s.expiresAt.toISOString(), resetAt: s.resetAt.toISOString() });

export async function machineRoutes(app: FastifyInstance, ctx: ApiContext): Promise<void> {
  const p = ctx.machines;
  if (!p) return;
  const tags = ['machines'];

  // Inventory files arrive as text (the JSON parser also yields a string for a JSON string body).
  app.addContentTypeParser(['text/csv', ...YAML_TYPES], { parseAs: 'string', bodyLimit: 1024 * 1024 }, (_req, body, done) => done(null, body));

  app.post('/v1/machines', {
    schema: { tags, summary: 'Add a bare-metal machine (BMC password encrypted at rest)', body: MachineCreate, response: { 201: MachineViewSchema } },
  }, async (req, reply) => {
    const m = await addMachine(p.machines, p.secrets, req.body);
    ctx.log.info({ machine: m.name, bmc: `${m.bmc.driver}://${m.bmc.address}` }, 'machine added');
    return reply.status(201).send(m);
  });

  app.post('/v1/machines/import', {
    schema: {
      tags, summary: 'Import a YAML or CSV inventory: every machine or none; every bad row reported with its line',
      querystring: ImportQuery, body: ImportBody,
      response: { 201: Type.Object({ imported: Type.Integer(), machines: Type.Array(MachineViewSchema) }), 400: ErrorBody },
    },
  }, async (req, reply) => {
    const format = formatOf(req.query as { format?: InventoryFormat }, req.headers['content-type']);
    // A bad file throws an InventoryError: 400 with every bad line in error.problems.
    const ms = await importInventory(p.machines, p.secrets, req.body as string, format);
    ctx.log.info({ machines: ms.map((m) => m.name), format }, 'inventory imported');
    return reply.status(201).send({ imported: ms.length, machines: ms });
  });

  app.get('/v1/machines', { schema: { tags, summary: 'List machines', response: { 200: Type.Array(MachineViewSchema) } } }, async () => listMachines(p.machines));

  app.get('/v1/machines/:name', {
    schema: { tags, summary: 'Get a machine with its state and recent events', params: NameParams, response: { 200: MachineViewSchema } },
  }, async (req) => getMachine(p.machines, (req.params as { name: string }).name));

  app.delete('/v1/machines/:name', {
    schema: { tags, summary: "Remove a machine and its boot files (409 while installing unless force)", params: NameParams, querystring: DeleteQuery },
  }, async (req, reply) => {
    const { name } = req.params as { name: string };
    await removeMachine(p.machines, p.bootFiles, name, { force: (req.query as { force?: boolean }).force ?? false, clock: p.deps.clock });
    ctx.log.info({ machine: name }, 'machine removed');
    return reply.status(204).send();
  });

  app.post('/v1/machines/:name/inspect', {
    schema: {
      tags, summary: 'Ask the BMC for power state and NIC MACs (registered → inspected)', params: NameParams,
      response: { 200: Type.Object({ machine: MachineViewSchema, power: Type.String(), macs: Strs }) },
    },
  }, async (req) => inspectMachine(p.machines, p.secrets, p.deps.bmcFor, (req.params as { name: string }).name, p.deps.clock));

  app.post('/v1/machines/:name/install', {
    schema: {
      tags, summary: 'Install one machine: MAC from the BMC, per-MAC boot file, one-time PXE, reset (409 when already installing)',
      params: NameParams, body: InstallOneBody, response: { 202: StartedSchema },
    },
  }, async (req, reply) => {
    const { name } = req.params as { name: string };
    checkServerUrl(p.serverUrl);
    const started = await p.install(name, req.body as { osProfile?: string });
    return reply.status(202).send(startedView(started));
  });

  app.post('/v1/machines/install', {
    schema: {
      tags, summary: 'Install many machines, at most `concurrency` BMC conversations at once; one outcome per machine',
      body: InstallManyBody, response: { 200: Type.Object({ results: Type.Array(OutcomeSchema) }) },
    },
  }, async (req) => {
    const b = req.body as { names: string[]; osProfile?: string; concurrency?: number };
    checkServerUrl(p.serverUrl);
    const out = await p.installMany(b.names, { osProfile: b.osProfile, concurrency: b.concurrency });
    return { results: out.map((o) => ({ ...o, ...(o.started ? { started: startedView(o.started) } : {}) })) };
  });

  app.post('/v1/machines/reap', {
    schema: {
      tags, summary: 'Delete every Kiver-written boot file older than the max age now (never files Kiver did not write)',
      body: ReapBody,
      response: {
        200: Type.Object({
          maxAgeSeconds: Type.Integer(),
          deleted: Type.Array(Type.Object({ path: Type.String(), format: Type.String(), machine: Type.String(), mac: Type.String(), createdAt: Type.String(), ageSeconds: Type.Integer() })),
          kept: Type.Integer(),
          expiredInstalls: Strs,
        }),
      },
    },
  }, async (req) => {
    const s = (req.body as { maxAgeSeconds?: number }).maxAgeSeconds;
    const maxAgeMs = s === undefined ? p.maxAgeMs : s * 1000;
    const r = await p.reap(maxAgeMs);
    return {
      maxAgeSeconds: Math.round(maxAgeMs / 1000),
      deleted: r.deleted.map((f) => ({ path: f.path, format: f.format, machine: f.machine, mac: f.mac, createdAt: f.createdAt.toISOString(), ageSeconds: Math.round(f.ageMs / 1000) })),
      kept: r.kept.length,
      expiredInstalls: r.expiredInstalls,
    };
  });

  app.get('/v1/os-profiles', {
    schema: {
      tags, summary: 'OS profiles this server can install',
      response: { 200: Type.Array(Type.Object({ name: Type.String(), kind: Type.String(), kernelUrl: Type.String(), initrdUrl: Type.String() })) },
    },
  }, async () => p.profiles.list());

  // Outside the API token (api/server.ts lets routes under /v1/config-center/ through).
  await app.register(configCenterRoutes, { center: p.center });
}

function checkServerUrl(url: string): void {
  if (!url) throw new UnavailableError('the server does not know the URL machines reach it at yet; set --machine-url');
  if (!/^https?:\/\//.test(url)) throw new InputError(`machine URL "${url}" is not an http(s) URL`, 'machineUrl');
}
