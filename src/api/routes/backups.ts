/**
 * Backups (issue 13): targets, backups, policies, restores — and the agent's job routes
 * (a node sees only the jobs on itself, each with its target's keys opened for it).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Type } from '@sinclair/typebox';
import type { ApiContext } from '../context.js';
import { K } from '../../model/keys.js';
import { NODE_NAME, SERVICE_NAME } from '../../model/names.js';
import {
  BACKUP_ID, Backup, BackupCreate, BackupPolicy, JobReport, PolicySet, Restore, RestoreCreate, TARGET_NAME, TargetCheck, TargetCreate, TargetView,
  type StoredTarget,
} from '../../model/backup.js';
import { createJson, getJson, listJson } from '../../store/json.js';
import { ConflictError, ForbiddenError, InputError, NotFoundError, UnavailableError } from '../../errors.js';
import { checkTarget, openStoredTarget, sealTarget, targetView } from '../../backup/targets.js';
import { checkPolicy } from '../../backup/policy.js';
import type { BackupJobs } from '../../backup/jobs.js';

const TargetParams = Type.Object({ name: Type.String({ pattern: TARGET_NAME }) }, { additionalProperties: false });
const IdParams = Type.Object({ id: Type.String({ pattern: BACKUP_ID }) }, { additionalProperties: false });
const ServiceParams = Type.Object({ service: Type.String({ pattern: SERVICE_NAME }) }, { additionalProperties: false });
const ListQuery = Type.Object({ service: Type.Optional(Type.String({ pattern: SERVICE_NAME })) }, { additionalProperties: false });
const JobsQuery = Type.Object({ node: Type.String({ pattern: NODE_NAME }) }, { additionalProperties: false });
const JobParams = Type.Object({
  kind: Type.Union([Type.Literal('backup'), Type.Literal('restore')]),
  id: Type.String({ pattern: `^(?:${BACKUP_ID.slice(1, -1)}|${SERVICE_NAME.slice(1, -1)})$` }),
}, { additionalProperties: false });

function jobs(ctx: ApiContext): BackupJobs {
  if (!ctx.backups) throw new UnavailableError('backups are not enabled on this server');
  return ctx.backups;
}

/** Checks a policy and that its target exists; `prefix` goes before the field (service create's `backup/`). */
export async function checkBackupPolicy(ctx: ApiContext, service: string, body: PolicySet, prefix = ''): Promise<BackupPolicy> {
  try {
    const p = checkPolicy(service, body, jobs(ctx).now());
    await jobs(ctx).target(p.target);
    return p;
  } catch (err) {
    if (!(err instanceof InputError) || !prefix) throw err;
    throw new InputError(`${prefix}${err.message}`, `${prefix}${err.field}`);
  }
}

/** Stores a checked policy for a service (the target must exist); shared by `policy set` and `service create --backup-*`. */
export async function putPolicy(ctx: ApiContext, service: string, body: PolicySet): Promise<BackupPolicy> {
  const p = await checkBackupPolicy(ctx, service, body);
  const cur = await getJson<BackupPolicy>(ctx.store, K.backupPolicy(service));
  // A changed policy keeps its place: slots already run stay done.
  const next: BackupPolicy = cur ? { ...p, createdAt: cur.value.createdAt, ...(cur.value.lastSlot ? { lastSlot: cur.value.lastSlot } : {}) } : p;
  await ctx.store.put(K.backupPolicy(service), JSON.stringify(next));
  return next;
}

function ownNode(req: FastifyRequest, node: string): void {
  const p = req.principal!;
  if (p.role !== 'node' || p.node !== node) throw new ForbiddenError(`this credential may not act for node ${node}`);
}

export function backupRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const { store } = ctx;
  const tags = ['backups'];

  app.post('/v1/backup-targets', { schema: { tags, summary: 'Add a backup target (S3 or RBD); keys are sealed at rest', body: TargetCreate, response: { 201: TargetView } } }, async (req, reply) => {
    const t = sealTarget(ctx.secrets, req.body as TargetCreate);
    await createJson(store, K.backupTarget(t.name), t, `backup target ${t.name}`);
    return reply.status(201).send(targetView(t));
  });
  app.get('/v1/backup-targets', { schema: { tags, summary: 'List backup targets', response: { 200: Type.Array(TargetView) } } }, async () =>
    (await listJson<StoredTarget>(store, K.backupTargets)).map(targetView));
  app.get('/v1/backup-targets/:name', { schema: { tags, summary: 'A backup target', params: TargetParams, response: { 200: TargetView } } }, async (req) => {
    const { name } = req.params as { name: string };
    const t = await getJson<StoredTarget>(store, K.backupTarget(name));
    if (!t) throw new NotFoundError(`backup target ${name} not found`);
    return targetView(t.value);
  });
  app.post('/v1/backup-targets/:name/check', {
    schema: { tags, summary: 'Write, read back and delete a probe object; says which step failed', params: TargetParams, response: { 200: TargetCheck } },
  }, async (req) => {
    const { name } = req.params as { name: string };
    const t = await getJson<StoredTarget>(store, K.backupTarget(name));
    if (!t) throw new NotFoundError(`backup target ${name} not found`);
    return checkTarget(openStoredTarget(ctx.secrets, t.value));
  });
  app.delete('/v1/backup-targets/:name', { schema: { tags, summary: 'Remove a backup target (refused while a policy uses it); its backups stay on it', params: TargetParams } }, async (req, reply) => {
    const { name } = req.params as { name: string };
    const users = (await listJson<BackupPolicy>(store, K.backupPolicies)).filter((p) => p.target === name).map((p) => p.service);
    if (users.length) throw new ConflictError(`backup target ${name} is used by the backup policy of ${users.join(', ')}`);
    if (!(await store.delete(K.backupTarget(name)))) throw new NotFoundError(`backup target ${name} not found`);
    return reply.status(204).send();
  });

  app.post('/v1/backups', { schema: { tags, summary: 'Back up a service now (from a running replica, streamed to the target)', body: BackupCreate, response: { 201: Backup } } }, async (req, reply) => {
    const body = req.body as { service: string; target?: string };
    return reply.status(201).send(await jobs(ctx).create({ service: body.service, target: body.target, trigger: 'manual' }));
  });
  app.get('/v1/backups', { schema: { tags, summary: 'Backups, newest first', querystring: ListQuery, response: { 200: Type.Array(Backup) } } }, async (req) =>
    jobs(ctx).list((req.query as { service?: string }).service));
  app.get('/v1/backups/:id', { schema: { tags, summary: 'A backup: state, progress, size, duration, checksum, position', params: IdParams, response: { 200: Backup } } }, async (req) =>
    jobs(ctx).get((req.params as { id: string }).id));

  app.put('/v1/backup-policies/:service', { schema: { tags, summary: "Set a service's backup schedule and retention", params: ServiceParams, body: PolicySet, response: { 200: BackupPolicy } } }, async (req) => {
    const { service } = req.params as { service: string };
    if (!(await store.get(K.service(service)))) throw new NotFoundError(`service ${service} not found`);
    return putPolicy(ctx, service, req.body as PolicySet);
  });
  app.get('/v1/backup-policies/:service', { schema: { tags, summary: "A service's backup policy", params: ServiceParams, response: { 200: BackupPolicy } } }, async (req) => {
    const { service } = req.params as { service: string };
    const p = await getJson<BackupPolicy>(store, K.backupPolicy(service));
    if (!p) throw new NotFoundError(`service ${service} has no backup policy`);
    return p.value;
  });
  app.delete('/v1/backup-policies/:service', { schema: { tags, summary: 'Stop scheduled backups of a service (its backups stay)', params: ServiceParams } }, async (req, reply) => {
    const { service } = req.params as { service: string };
    if (!(await store.delete(K.backupPolicy(service)))) throw new NotFoundError(`service ${service} has no backup policy`);
    return reply.status(204).send();
  });

  app.post('/v1/restores', { schema: { tags, summary: 'Restore a backup into a new service (never over a live one); checksum verified before use', body: RestoreCreate, response: { 201: Restore } } }, async (req, reply) => {
    const body = req.body as { backup: string; to: string };
    return reply.status(201).send(await jobs(ctx).restore(body.backup, body.to));
  });
  app.get('/v1/restores/:service', { schema: { tags, summary: 'A restore by its new service', params: ServiceParams, response: { 200: Restore } } }, async (req) =>
    jobs(ctx).getRestore((req.params as { service: string }).service));

  // The agent's side: its jobs (keys opened for this node only), and reports on them.
  app.get('/v1/agent/backup-jobs', { schema: { tags: ['agent'], summary: 'Backup and restore jobs on this node', querystring: JobsQuery } }, async (req) => {
    const { node } = req.query as { node: string };
    ownNode(req, node);
    return { jobs: await jobs(ctx).jobsFor(node) };
  });
  app.put('/v1/agent/backup-jobs/:kind/:id', { schema: { tags: ['agent'], summary: 'Report progress or the end of a job', params: JobParams, body: JobReport } }, async (req, reply) => {
    const { kind, id } = req.params as { kind: 'backup' | 'restore'; id: string };
    const p = req.principal!;
    if (p.role !== 'node' || !p.node) throw new ForbiddenError('only a node reports on backup jobs');
    const rep = req.body as JobReport;
    if (rep.state === 'pending') throw new InputError('state: a report is running, completed or failed', 'state');
    await jobs(ctx).report(kind, id, p.node, rep);
    return reply.status(204).send();
  });
}
