/**
 * The role controller (leader only): for every managed service it probes each
 * replica's server, initialises the first primary, re-joins replicas that point
 * elsewhere, and fails over when the primary stops being a writable primary —
 * promoting the most advanced replica (highest GTID sequence / replication
 * offset), re-pointing the others, fencing the old one. The roles it writes
 * (/kiver/service-roles/<name>, fenced by the leader key) are what the write
 * endpoint follows.
 */
import type { Store, Compare } from '../store/store.js';
import type { StoreCache } from '../controllers/cache.js';
import type { EventRecorder } from '../controllers/events.js';
import type { Logger } from '../log.js';
import type { SecretBox } from '../secrets.js';
import { K } from '../model/keys.js';
import type { Service } from '../model/service.js';
import type { Replica } from '../model/replica.js';
import type { Node } from '../model/node.js';
import type { ReplicaRole, ServiceRoles } from '../model/service-roles.js';
import { managedType } from './catalog.js';
import { openCredentials } from './credentials.js';
import type { Addr, HookContext, Probe, ServiceType } from './types.js';

export interface RoleControllerOptions {
  /** Probe period per service, ms (default 400). */
  intervalMs?: number;
  /** Failed probes of the primary in a row before a failover (default 3). */
  failAfter?: number;
  /** How long a switchover waits for the target to catch up, ms (default 15 s). */
  catchUpMs?: number;
}

interface Member {
  ordinal: number;
  node: string;
  addr: Addr;
}

/** Per-service memory of this leader (lost on a leader change: it only delays a failover by a few probes). */
interface Mem {
  busy: boolean;
  failures: number;
  /** The roles last written, without positions and lag (those alone are written every few seconds). */
  lastShape?: string;
  lastWriteAt: number;
  diverged: Set<number>;
}

const shapeOf = (r: ServiceRoles) => JSON.stringify({
  epoch: r.epoch, primary: r.primary, phase: r.phase, switchoverTo: r.switchoverTo,
  replicas: r.replicas.map(({ position: _p, lagSeconds: _l, ...x }) => x),
});

const sameAddr = (a: Addr | undefined, b: Addr | undefined) => !!a && !!b && a.host === b.host && a.port === b.port;

/** The replica to promote: the most advanced one (ties: the lowest ordinal). */
export function pickMostAdvanced(cands: { ordinal: number; position: number }[]): number | undefined {
  let best: { ordinal: number; position: number } | undefined;
  for (const c of cands) if (!best || c.position > best.position || (c.position === best.position && c.ordinal < best.ordinal)) best = c;
  return best?.ordinal;
}

export class RoleController {
  private timer?: NodeJS.Timeout;
  private running = false;
  private readonly mem = new Map<string, Mem>();
  private readonly inflight = new Set<Promise<void>>();
  private readonly intervalMs: number;
  private readonly failAfter: number;
  private readonly catchUpMs: number;

  constructor(
    private readonly store: Store,
    private readonly cache: StoreCache,
    private readonly events: EventRecorder,
    private readonly secrets: SecretBox,
    private readonly log: Logger,
    private readonly fence?: () => Compare | undefined,
    opts: RoleControllerOptions = {},
  ) {
    this.intervalMs = opts.intervalMs ?? 400;
    this.failAfter = opts.failAfter ?? 3;
    this.catchUpMs = opts.catchUpMs ?? 15_000;
  }

  start(): void {
    this.running = true;
    this.mem.clear();
    this.timer = setInterval(() => this.tickAll(), this.intervalMs);
  }

  async stop(): Promise<void> {
    this.running = false;
    clearInterval(this.timer);
    await Promise.allSettled([...this.inflight]);
  }

  private tickAll(): void {
    for (const kv of this.cache.all(K.services)) {
      const svc = JSON.parse(kv.value) as Service;
      const t = managedType(svc.spec.type);
      if (!t || svc.deleting) continue;
      const name = svc.spec.name;
      let m = this.mem.get(name);
      if (!m) this.mem.set(name, (m = { busy: false, failures: 0, lastWriteAt: 0, diverged: new Set() }));
      if (m.busy) continue;
      m.busy = true;
      const p = this.tick(svc, t, m)
        .catch((err) => this.log.warn({ service: name, err: (err as Error).message }, 'role controller'))
        .finally(() => {
          m!.busy = false;
          this.inflight.delete(p);
        });
      this.inflight.add(p);
    }
    // Roles and credentials of services that are gone.
    for (const kv of this.cache.all(K.serviceRolesAll)) {
      const name = kv.key.slice(K.serviceRolesAll.length);
      if (!this.cache.getKv(K.service(name))) {
        void this.store.txn({ compare: this.fences(), success: [{ type: 'delete', key: kv.key }, { type: 'delete', key: K.serviceCredentials(name) }] }).catch(() => {});
        this.mem.delete(name);
      }
    }
  }

  private fences(): Compare[] {
    if (!this.fence) return [];
    const f = this.fence();
    if (!f) throw new Error('not the leader; not writing');
    return [f];
  }

  private members(svc: Service): Member[] {
    const out: Member[] = [];
    for (const kv of this.cache.group(K.replicas, svc.spec.name)) {
      const r = JSON.parse(kv.value) as Replica;
      if (r.desired !== 'run' || !r.node || !r.spec.ports[0]) continue;
      const node = this.cache.get<Node>(K.node(r.node));
      if (!node) continue;
      out.push({ ordinal: r.ordinal, node: r.node, addr: { host: node.address, port: r.spec.ports[0].host } });
    }
    return out.sort((a, b) => a.ordinal - b.ordinal);
  }

  private context(svc: Service): HookContext | undefined {
    const rec = this.cache.get<{ sealed: string }>(K.serviceCredentials(svc.spec.name));
    if (!rec) return undefined;
    return {
      credentials: openCredentials(this.secrets, svc.spec.name, rec.sealed),
      params: svc.spec.params ?? {},
      syncReplicas: svc.spec.replicas > 1 ? 1 : 0,
    };
  }

  private current(name: string): { roles: ServiceRoles; rev: number } {
    const kv = this.cache.getKv(K.serviceRoles(name));
    if (!kv) return { roles: { epoch: 0, phase: 'init', replicas: [], updatedAt: new Date().toISOString() }, rev: 0 };
    return { roles: JSON.parse(kv.value) as ServiceRoles, rev: kv.modRevision };
  }

  /** Writes the roles (fenced; CAS on the key, retried on a fresh read so a switchover request is never lost). */
  private async save(name: string, mem: Mem, change: (cur: ServiceRoles) => ServiceRoles): Promise<ServiceRoles> {
    for (let i = 0; i < 5; i++) {
      const kv = await this.store.get(K.serviceRoles(name));
      const cur: ServiceRoles = kv ? JSON.parse(kv.value) : { epoch: 0, phase: 'init', replicas: [], updatedAt: '' };
      const next = { ...change(cur), updatedAt: new Date().toISOString() };
      const value = JSON.stringify(next);
      const res = await this.store.txn({
        compare: [{ key: K.serviceRoles(name), modRevision: kv?.modRevision ?? 0 }, ...this.fences()],
        success: [{ type: 'put', key: K.serviceRoles(name), value }],
      });
      if (res.succeeded) {
        this.cache.applyLocal(K.serviceRoles(name), value, res.revision);
        mem.lastShape = shapeOf(next);
        mem.lastWriteAt = Date.now();
        return next;
      }
    }
    throw new Error(`roles of ${name}: too many conflicting writes`);
  }

  private event(name: string, type: 'Normal' | 'Warning', reason: string, message: string): Promise<void> {
    return this.events.record(`service/${name}`, type, reason, message);
  }

  private async tick(svc: Service, t: ServiceType, mem: Mem): Promise<void> {
    const name = svc.spec.name;
    const c = this.context(svc);
    if (!c) return;
    const members = this.members(svc);
    const probes = new Map<number, Probe>();
    await Promise.all(members.map(async (m) => probes.set(m.ordinal, await t.hooks.probe(m.addr, c))));
    const { roles } = this.current(name);

    if (roles.primary === undefined) {
      if (roles.phase === 'init') return this.init(svc, t, c, members, probes, mem);
      return this.failover(svc, t, c, members, probes, mem, roles, undefined, 'no primary');
    }
    const primary = members.find((m) => m.ordinal === roles.primary);
    const pp = primary ? probes.get(primary.ordinal) : undefined;
    if (!primary || !pp?.up || pp.role !== 'primary') {
      // Up but not a writable primary = it restarted (every server starts read-only / parked): no reason to wait.
      mem.failures = pp?.up ? this.failAfter : mem.failures + 1;
      if (mem.failures >= this.failAfter) {
        const why = !primary ? `replica ${roles.primary} has no node` : pp?.up ? 'the primary restarted (came back read-only)' : `the primary does not answer (${pp?.error ?? 'no probe'})`;
        return this.failover(svc, t, c, members, probes, mem, roles, primary, why);
      }
      return;
    }
    mem.failures = 0;
    if (roles.switchoverTo !== undefined) return this.switchover(svc, t, c, members, probes, mem, roles, primary);

    // Replicas not following the primary (fresh, restarted, the old primary back): point them at it.
    for (const m of members) {
      if (m.ordinal === primary.ordinal) continue;
      const p = probes.get(m.ordinal)!;
      if (!p.up || mem.diverged.has(m.ordinal)) continue;
      if (p.diverged) {
        // Its extra transactions were never acknowledged: the promoted replica was the most advanced.
        await this.event(name, 'Warning', 'Diverged', `replica ${m.ordinal} has transactions the primary does not (never acknowledged); rebuilding it from the primary`);
        if (!t.hooks.rebuild) continue;
        try {
          await t.hooks.rebuild(m.addr, primary.addr, c);
          await this.event(name, 'Normal', 'Rebuilt', `replica ${m.ordinal} on ${m.node} was re-seeded from the primary and replicates from it`);
        } catch (err) {
          mem.diverged.add(m.ordinal);
          await this.event(name, 'Warning', 'RebuildFailed', `replica ${m.ordinal}: ${(err as Error).message}`);
        }
        continue;
      }
      if (p.role !== 'replica' || !sameAddr(p.source, primary.addr)) {
        await t.hooks.replicate(m.addr, primary.addr, c);
        await this.event(name, 'Normal', 'Rejoined', `replica ${m.ordinal} on ${m.node} now replicates from the primary (replica ${primary.ordinal})`);
      }
    }
    await this.report(name, mem, roles, members, probes, primary.ordinal);
  }

  /** Each replica's role and lag as seen now; written when a role changes, or every few seconds for the lag. */
  private async report(name: string, mem: Mem, roles: ServiceRoles, members: Member[], probes: Map<number, Probe>, primary: number): Promise<void> {
    const pAddr = members.find((m) => m.ordinal === primary)?.addr;
    const view: ReplicaRole[] = members.map((m) => {
      const p = probes.get(m.ordinal)!;
      const base = { ordinal: m.ordinal, ...(p.positionText ? { position: p.positionText } : {}) };
      if (!p.up) return { ...base, role: 'unknown', ...(p.error ? { error: p.error.slice(0, 300) } : {}) };
      if (m.ordinal === primary) return { ...base, role: 'primary' };
      if (mem.diverged.has(m.ordinal)) return { ...base, role: 'diverged', error: 'needs a rebuild from the primary' };
      if (p.role === 'replica' && sameAddr(p.source, pAddr)) {
        return { ...base, role: 'replica', ...(p.lagSeconds !== undefined ? { lagSeconds: p.lagSeconds } : {}), ...(p.linkUp ? {} : { error: p.error?.slice(0, 300) ?? 'replication link down' }) };
      }
      return { ...base, role: 'fenced' };
    });
    if (shapeOf({ ...roles, replicas: view }) === mem.lastShape && Date.now() - mem.lastWriteAt < 5_000) return;
    await this.save(name, mem, (cur) => ({ ...cur, replicas: view }));
  }

  private async init(svc: Service, t: ServiceType, c: HookContext, members: Member[], probes: Map<number, Probe>, mem: Mem): Promise<void> {
    const name = svc.spec.name;
    // Wait for every replica of a fresh service: the first primary is chosen once, among all of them.
    if (members.length < svc.spec.replicas || members.some((m) => !probes.get(m.ordinal)!.up)) return;
    const already = members.find((m) => probes.get(m.ordinal)!.role === 'primary');
    const primary = already ?? members.find((m) => m.ordinal === pickMostAdvanced(members.map((m) => ({ ordinal: m.ordinal, position: probes.get(m.ordinal)!.position }))))!;
    await t.hooks.init(primary.addr, c);
    for (const m of members) if (m !== primary) await t.hooks.replicate(m.addr, primary.addr, c);
    await t.hooks.open(primary.addr, c);
    await this.save(name, mem, (cur) => ({ ...cur, epoch: cur.epoch + 1, primary: primary.ordinal, phase: 'ready' }));
    await this.event(name, 'Normal', 'Initialized', `replica ${primary.ordinal} on ${primary.node} is the primary; ${members.length - 1} replicas follow it`);
  }

  private async failover(
    svc: Service, t: ServiceType, c: HookContext, members: Member[], probes: Map<number, Probe>, mem: Mem,
    roles: ServiceRoles, old: Member | undefined, why: string,
  ): Promise<void> {
    const name = svc.spec.name;
    const oldOrdinal = roles.primary;
    const cands = members.filter((m) => {
      const p = probes.get(m.ordinal)!;
      return m.ordinal !== oldOrdinal && p.up && !p.diverged && !mem.diverged.has(m.ordinal) && (p.role === 'replica' || p.role === 'primary');
    });
    const pick = pickMostAdvanced(cands.map((m) => ({ ordinal: m.ordinal, position: probes.get(m.ordinal)!.position })));
    if (pick === undefined) {
      await this.event(name, 'Warning', 'FailoverBlocked', `${why}; no replica that followed it answers, so none can be promoted without losing writes`);
      return;
    }
    const next = members.find((m) => m.ordinal === pick)!;
    const t0 = Date.now();
    // First the store: every endpoint proxy stops sending to the old primary at once.
    if (roles.primary !== undefined) {
      await this.save(name, mem, (cur) => ({ ...cur, epoch: cur.epoch + 1, primary: undefined, phase: 'failover' }));
      await this.event(name, 'Warning', 'FailoverStarted', `primary replica ${oldOrdinal} lost: ${why}; promoting replica ${pick} (position ${probes.get(pick)!.positionText})`);
    }
    if (old && probes.get(old.ordinal)?.up) {
      await t.hooks.fence(old.addr, c).then(
        () => this.event(name, 'Normal', 'Fenced', `old primary replica ${old.ordinal} is read-only`),
        () => {},
      );
    }
    await t.hooks.promote(next.addr, c);
    // After the promotion (it has applied all it received, so no replica is ahead of it); in parallel:
    // each may first wait out its own link's connect to the dead primary.
    await Promise.all(members
      .filter((m) => m !== next && m.ordinal !== oldOrdinal && probes.get(m.ordinal)!.up)
      .map((m) => t.hooks.replicate(m.addr, next.addr, c).catch((err) => this.log.warn({ service: name, replica: m.ordinal, err: (err as Error).message }, 'repoint failed; retried as a rejoin'))));
    await t.hooks.open(next.addr, c);
    mem.failures = 0;
    await this.save(name, mem, (cur) => ({ ...cur, epoch: cur.epoch + 1, primary: pick, phase: 'ready', switchoverTo: undefined }));
    await this.event(name, 'Normal', 'Promoted', `replica ${pick} on ${next.node} is the primary (failover took ${Date.now() - t0} ms after detection); the old primary rejoins as a replica when it answers`);
  }

  private async switchover(
    svc: Service, t: ServiceType, c: HookContext, members: Member[], probes: Map<number, Probe>, mem: Mem,
    roles: ServiceRoles, old: Member,
  ): Promise<void> {
    const name = svc.spec.name;
    const want = roles.switchoverTo!;
    const cands = members.filter((m) => {
      const p = probes.get(m.ordinal)!;
      return m.ordinal !== old.ordinal && p.up && p.role === 'replica' && p.linkUp && sameAddr(p.source, old.addr) && (want < 0 || m.ordinal === want);
    });
    const pick = pickMostAdvanced(cands.map((m) => ({ ordinal: m.ordinal, position: probes.get(m.ordinal)!.position })));
    if (pick === undefined) {
      await this.save(name, mem, (cur) => ({ ...cur, switchoverTo: undefined }));
      await this.event(name, 'Warning', 'SwitchoverRefused', `no replica${want >= 0 ? ` ${want}` : ''} is following the primary with a working link`);
      return;
    }
    const next = members.find((m) => m.ordinal === pick)!;
    const t0 = Date.now();
    await this.save(name, mem, (cur) => ({ ...cur, epoch: cur.epoch + 1, primary: undefined, phase: 'switchover' }));
    await t.hooks.fence(old.addr, c);
    // The old primary takes no more writes; wait until the target has all of them.
    const target = (await t.hooks.probe(old.addr, c)).position;
    const deadline = Date.now() + this.catchUpMs;
    for (;;) {
      const p = await t.hooks.probe(next.addr, c);
      if (p.up && p.position >= target) break;
      if (Date.now() > deadline) {
        // Give the primary back: nothing was lost, the switchover simply did not happen.
        await t.hooks.open(old.addr, c);
        await this.save(name, mem, (cur) => ({ ...cur, epoch: cur.epoch + 1, primary: old.ordinal, phase: 'ready', switchoverTo: undefined }));
        await this.event(name, 'Warning', 'SwitchoverFailed', `replica ${pick} did not catch up within ${this.catchUpMs} ms; replica ${old.ordinal} stays the primary`);
        return;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    await t.hooks.promote(next.addr, c);
    for (const m of members) {
      if (m === next || !probes.get(m.ordinal)!.up) continue;
      await t.hooks.replicate(m.addr, next.addr, c).catch(() => {});
    }
    await t.hooks.open(next.addr, c);
    await this.save(name, mem, (cur) => ({ ...cur, epoch: cur.epoch + 1, primary: pick, phase: 'ready', switchoverTo: undefined }));
    await this.event(name, 'Normal', 'SwitchedOver', `replica ${pick} on ${next.node} is the primary (writes paused ${Date.now() - t0} ms); replica ${old.ordinal} follows it`);
  }
}
