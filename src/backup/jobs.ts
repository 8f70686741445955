/**
 * The server's side of backups: creating backup and restore records (a job for the
 * agent of one node), taking the agents' reports, retention and failing jobs whose
 * agent went quiet. The API and the leader's BackupController both go through here.
 */
import { randomBytes } from 'node:crypto';
import type { Store, Compare, Op } from '../store/store.js';
import type { StoreCache } from '../controllers/cache.js';
import type { EventRecorder } from '../controllers/events.js';
import type { Logger } from '../log.js';
import type { SecretBox } from '../secrets.js';
import { openEnv, sealEnv } from '../secrets.js';
import { K } from '../model/keys.js';
import type { Backup, BackupJob, BackupPolicy, JobReport, Restore, StoredTarget } from '../model/backup.js';
import type { Service } from '../model/service.js';
import { getJson, listJson, updateJson } from '../store/json.js';
import { replicaViews } from '../api/views.js';
import { ConflictError, ForbiddenError, InputError, NotFoundError } from '../errors.js';
import { backupKeys, openTarget } from './target.js';
import { openStoredTarget } from './targets.js';
import { expired } from './retention.js';
import { stamp } from './policy.js';
import { backupMetrics } from './metrics.js';

export interface CreateBackup {
  service: string;
  target?: string;
  trigger: Backup['trigger'];
  slot?: Date;
  /** Scheduled backups: compares (policy revision, leader fence) and ops (the policy's lastSlot) in the same transaction. */
  compare?: Compare[];
  ops?: Op[];
  now?: Date;
}

const ACTIVE = new Set(['pending', 'running']);

export class BackupJobs {
  constructor(private readonly store: Store, private readonly cache: StoreCache, private readonly secrets: SecretBox,
    private readonly events: EventRecorder, private readonly log: Logger,
    /** The clock of policies and schedules (a test clock in tests). */
    readonly now: () => Date = () => new Date()) {}

  async target(name: string, field = 'target'): Promise<StoredTarget> {
    const t = await getJson<StoredTarget>(this.store, K.backupTarget(name));
    if (!t) throw new InputError(`${field}: backup target ${name} does not exist (kiver backup target ls)`, field);
    return t.value;
  }

  /** A new backup record (pending) for the agent of a running replica's node; the highest ordinal is preferred (0 is usually a primary). */
  async create(req: CreateBackup): Promise<Backup> {
    const now = req.now ?? this.now();
    const svc = await getJson<Service>(this.store, K.service(req.service));
    if (!svc) throw new InputError(`service: service ${req.service} does not exist`, 'service');
    const policy = await getJson<BackupPolicy>(this.store, K.backupPolicy(req.service));
    const targetName = req.target ?? policy?.value.target;
    if (!targetName) throw new InputError(`target: service ${req.service} has no backup policy; name a target`, 'target');
    await this.target(targetName);
    const id = `${req.service}.${req.slot ? `s${stamp(req.slot)}` : `m${stamp(now)}${randomBytes(2).toString('hex')}`}`;
    const running = (await replicaViews(this.store, req.service)).filter((r) => r.desired === 'run' && r.state === 'running' && r.node)
      .sort((a, b) => b.ordinal - a.ordinal)[0];
    const b: Backup = {
      id, service: req.service, target: targetName, trigger: req.trigger, ...(req.slot ? { slot: req.slot.toISOString() } : {}),
      state: running ? 'pending' : 'failed', createdAt: now.toISOString(), bytes: 0, verified: false, ...backupKeys(req.service, id),
      ...(running ? { ordinal: running.ordinal, node: running.node } : { finishedAt: now.toISOString(), error: `no running replica of ${req.service} to back up` }),
    };
    if (!running && !req.slot) throw new ConflictError(`no running replica of ${req.service} to back up`);
    const res = await this.store.txn({
      compare: [{ key: K.backup(id), modRevision: 0 }, ...(req.compare ?? [])],
      success: [{ type: 'put', key: K.backup(id), value: JSON.stringify(b) }, ...(req.ops ?? [])],
    });
    if (!res.succeeded) throw new ConflictError(`backup ${id} exists already or its policy changed`);
    if (b.state === 'failed') await this.failed(b);
    else await this.events.record(`service/${req.service}`, 'Normal', 'BackupStarted', `backup ${id} of ${req.service}/${b.ordinal} on node ${b.node} to ${targetName} (${req.trigger})`);
    return b;
  }

  async get(id: string): Promise<Backup> {
    const b = await getJson<Backup>(this.store, K.backup(id));
    if (!b) throw new NotFoundError(`backup ${id} not found`);
    return b.value;
  }

  async list(service?: string): Promise<Backup[]> {
    const all = await listJson<Backup>(this.store, service ? K.backupsOf(service) : K.backups);
    return all.sort((a, b) => (a.createdAt < b.createdAt ? 1 : -1));
  }

  /** The jobs an agent runs: pending or running backups and restores on its node, each with its target opened. */
  async jobsFor(node: string): Promise<BackupJob[]> {
    const jobs: BackupJob[] = [];
    const image = (service: string) => this.cache.get<Service>(K.service(service))?.spec.image ?? '';
    for (const kv of this.cache.all(K.backups)) {
      const b = JSON.parse(kv.value) as Backup;
      if (b.node !== node || !ACTIVE.has(b.state)) continue;
      const t = this.cache.get<StoredTarget>(K.backupTarget(b.target));
      if (!t) continue; // target removed: the stale-job check fails it
      jobs.push({ kind: 'backup', id: b.id, service: b.service, ordinal: b.ordinal!, image: image(b.service), objectKey: b.objectKey, manifestKey: b.manifestKey, target: openStoredTarget(this.secrets, t) });
    }
    for (const kv of this.cache.all(K.restores)) {
      const r = JSON.parse(kv.value) as Restore;
      if (r.node !== node || !ACTIVE.has(r.state)) continue;
      const b = this.cache.get<Backup>(K.backup(r.backup));
      const t = b && this.cache.get<StoredTarget>(K.backupTarget(b.target));
      if (!b || !t) continue;
      jobs.push({ kind: 'restore', id: r.to, service: r.to, ordinal: 0, image: image(r.to), objectKey: b.objectKey, manifestKey: b.manifestKey, sha256: b.sha256, target: openStoredTarget(this.secrets, t) });
    }
    return jobs;
  }

  /** An agent's report on one of its jobs. */
  async report(kind: 'backup' | 'restore', id: string, node: string, rep: JobReport): Promise<void> {
    const now = this.now().toISOString(); // the schedules' clock: stale checks compare like with like
    const key = kind === 'backup' ? K.backup(id) : K.restore(id);
    let ended: (Backup | Restore) | undefined;
    await updateJson<Backup | Restore>(this.store, key, `${kind} ${id}`, (cur) => {
      if (cur.node !== node) throw new ForbiddenError(`${kind} ${id} is not assigned to node ${node}`);
      if (!ACTIVE.has(cur.state)) throw new ConflictError(`${kind} ${id} is ${cur.state} already`);
      const next = { ...cur, state: rep.state, bytes: rep.bytes, progressAt: now } as Backup & Restore;
      if (rep.state === 'running') next.startedAt ??= now;
      if (kind === 'backup') {
        if (rep.source) next.source = rep.source;
        if (rep.state === 'completed') {
          if (!rep.sha256 || !rep.position || rep.verified !== true) throw new InputError('a completed backup needs sha256, position and verified=true', 'sha256');
          Object.assign(next, { sha256: rep.sha256, position: rep.position, verified: true });
        }
      }
      if (rep.state === 'completed' || rep.state === 'failed') {
        next.finishedAt = now;
        if (next.startedAt) next.durationMs = Date.parse(now) - Date.parse(next.startedAt);
        if (rep.error) next.error = rep.error;
        ended = next;
      }
      return next;
    });
    if (!ended) return;
    if (kind === 'restore') return this.restoreEnded(ended as Restore);
    const b = ended as Backup;
    if (b.state === 'failed') return this.failed(b);
    await this.events.record(`service/${b.service}`, 'Normal', 'BackupCompleted', `backup ${b.id}: ${b.bytes} bytes in ${b.durationMs} ms, SHA-256 ${b.sha256}, verified`);
  }

  private async failed(b: Backup): Promise<void> {
    backupMetrics.failures.inc({ service: b.service });
    await this.events.record(`service/${b.service}`, 'Warning', 'BackupFailed', `backup ${b.id} failed: ${b.error ?? 'unknown cause'}`);
  }

  private async restoreEnded(r: Restore): Promise<void> {
    if (r.state === 'failed') {
      await this.events.record(`service/${r.to}`, 'Warning', 'RestoreFailed', `restore of ${r.backup} into ${r.to} failed: ${r.error ?? 'unknown cause'}; nothing was started`);
      return;
    }
    // The data is in place and verified: now the new service may run.
    await updateJson<Service>(this.store, K.service(r.to), `service ${r.to}`, (s) => ({ ...s, spec: { ...s.spec, replicas: r.replicas }, updatedAt: new Date().toISOString() }));
    await this.events.record(`service/${r.to}`, 'Normal', 'Restored', `restored ${r.backup} (${r.bytes} bytes, checksum verified) into ${r.to}; starting ${r.replicas} replicas`);
  }

  /**
   * Restore into a new service: never over a live one. The new service is created with no
   * replicas; the agent of `node` streams the backup into staging, checks its SHA-256, moves
   * it into ordinal 0's data directory, and only then the service gets its replicas.
   */
  async restore(backupId: string, to: string, now = this.now()): Promise<Restore> {
    const b = await getJson<Backup>(this.store, K.backup(backupId));
    if (!b) throw new InputError(`backup: backup ${backupId} does not exist`, 'backup');
    if (b.value.state !== 'completed' || !b.value.verified) throw new InputError(`backup: backup ${backupId} is ${b.value.state}${b.value.verified ? '' : ', not verified'}; only a completed, verified backup can be restored`, 'backup');
    const src = await getJson<Service>(this.store, K.service(b.value.service));
    if (!src) throw new InputError(`backup: service ${b.value.service} no longer exists; its spec is needed to restore (limit)`, 'backup');
    const alive = (n?: string) => Boolean(n && this.cache.getKv(K.alive(n)));
    const node = alive(b.value.node) ? b.value.node! : [...this.cache.all(K.alives)].map((kv) => kv.key.slice(K.alives.length))[0];
    if (!node) throw new ConflictError('no ready node to restore on');
    const spec = { ...src.value.spec, name: to, replicas: 0, secretEnv: sealEnv(this.secrets, to, openEnv(this.secrets, src.value.spec.name, src.value.spec.secretEnv)) };
    const at = now.toISOString();
    const svc: Service = { spec, uid: randomBytes(16).toString('hex'), generation: 1, createdAt: at, updatedAt: at };
    const r: Restore = { to, backup: backupId, service: b.value.service, state: 'pending', node, createdAt: at, bytes: 0, replicas: src.value.spec.replicas };
    const res = await this.store.txn({
      compare: [{ key: K.service(to), modRevision: 0 }, { key: K.restore(to), modRevision: 0 }],
      success: [{ type: 'put', key: K.service(to), value: JSON.stringify(svc) }, { type: 'put', key: K.restore(to), value: JSON.stringify(r) }],
    });
    if (!res.succeeded) throw new ConflictError(`service ${to} exists already (or a restore into it was made); a restore always goes into a new service`);
    await this.events.record(`service/${to}`, 'Normal', 'RestoreStarted', `restoring ${backupId} of ${b.value.service} into ${to} on node ${node}`);
    return r;
  }

  async getRestore(to: string): Promise<Restore> {
    const r = await getJson<Restore>(this.store, K.restore(to));
    if (!r) throw new NotFoundError(`restore into ${to} not found`);
    return r.value;
  }

  /** Deletes what retention allows for one policy: objects first (manifest, then data), then the record. */
  async applyRetention(p: BackupPolicy, now: Date, fence?: Compare): Promise<string[]> {
    const backups = [...this.cache.all(K.backups)].map((kv) => JSON.parse(kv.value) as Backup).filter((b) => b.service === p.service);
    const gone: string[] = [];
    for (const b of expired(backups, p, now)) {
      const t = this.cache.get<StoredTarget>(K.backupTarget(b.target));
      if (!t) continue;
      const target = openTarget(openStoredTarget(this.secrets, t));
      try {
        await target.remove(b.manifestKey);
        await target.remove(b.objectKey);
      } finally {
        target.close();
      }
      const kv = this.cache.getKv(K.backup(b.id));
      await this.store.txn({ compare: [...(kv ? [{ key: kv.key, modRevision: kv.modRevision }] : []), ...(fence ? [fence] : [])], success: [{ type: 'delete', key: K.backup(b.id) }] });
      await this.events.record(`service/${p.service}`, 'Normal', 'BackupExpired', `backup ${b.id} deleted by retention (keep ${p.keep}${p.keepDays ? `, ${p.keepDays} days` : ''})`);
      gone.push(b.id);
    }
    return gone;
  }

  /** Jobs whose agent has not reported for `staleMs` (node lost, agent restarted mid-stream) fail. */
  async failStale(now: Date, staleMs: number): Promise<void> {
    for (const [prefix, kind] of [[K.backups, 'backup'], [K.restores, 'restore']] as const) {
      for (const kv of this.cache.all(prefix)) {
        const j = JSON.parse(kv.value) as Backup | Restore;
        if (!ACTIVE.has(j.state)) continue;
        const last = Date.parse(j.progressAt ?? j.createdAt);
        if (now.getTime() - last < staleMs) continue;
        const id = kind === 'backup' ? (j as Backup).id : (j as Restore).to;
        const error = `the agent on node ${j.node} stopped reporting for ${Math.round(staleMs / 1000)} s`;
        await this.report(kind, id, j.node!, { state: 'failed', bytes: j.bytes, error }).catch(() => {});
      }
    }
  }
}
