/**
 * Simulated nodes (the role kubemark, KWOK and nomad-nodesim play): N agents in one
 * process on the real agent protocol — register (join token → node credential),
 * heartbeat, long-poll assignments, report replicas running/exited/removed — with no
 * containers. For benchmarks and scale tests only; never on a production path.
 *
 * Cheap by construction: one timer per node, one shared keep-alive socket pool,
 * statuses reported only when they change, one report per node per burst of changes.
 */
import { randomInt } from 'node:crypto';
import { SimHttp } from './http.js';
import type { Replica, StatusItem } from '../model/replica.js';

export interface SimOptions {
  servers: string[];
  joinToken: string;
  nodes: number;
  /** Node names are `<prefix>-<i>` (default sim). */
  prefix?: string;
  cpus?: number;
  memory?: number;
  labels?: Record<string, string>;
  heartbeatMs?: number;
  /** Long-poll wait, seconds (the server caps it at 60). */
  waitSeconds?: number;
  /** How long a replica takes from assigned to running (each one ±50 %, uniformly). */
  startLatencyMs?: number;
  /** Fraction of replicas that exit (code 1) instead of running. */
  failureRate?: number;
  /** Registrations in flight at once. */
  registerParallel?: number;
}

export interface SimStats {
  registered: number;
  registerFailures: number;
  heartbeats: number;
  heartbeatFailures: number;
  polls: number;
  pollFailures: number;
  statusReports: number;
  statusFailures: number;
  /** Replica incarnations currently reported running / exited. */
  running: number;
  exited: number;
}

interface Local {
  uid: string;
  generation: number;
  state: 'creating' | 'running' | 'exited' | 'removed';
  timer?: NodeJS.Timeout;
}

class SimNode {
  token = '';
  index?: string;
  readonly replicas = new Map<string, Local>();
  readonly outbox = new Map<string, StatusItem>();
  flushing = false;
  hbTimer?: NodeJS.Timeout;
  constructor(readonly name: string) {}
}

export class SimFleet {
  readonly stats: SimStats = { registered: 0, registerFailures: 0, heartbeats: 0, heartbeatFailures: 0, polls: 0, pollFailures: 0, statusReports: 0, statusFailures: 0, running: 0, exited: 0 };
  readonly nodes: SimNode[];
  private readonly http: SimHttp;
  private running = false;
  private readonly polls = new Set<Promise<void>>();
  private readonly o: Required<Omit<SimOptions, 'labels'>> & { labels?: Record<string, string> };

  constructor(opts: SimOptions) {
    this.o = {
      prefix: 'sim', cpus: 16, memory: 64 * 2 ** 30, heartbeatMs: 10_000, waitSeconds: 30, startLatencyMs: 0, failureRate: 0, registerParallel: 32,
      ...opts,
    };
    this.http = new SimHttp(opts.servers);
    this.nodes = Array.from({ length: opts.nodes }, (_, i) => new SimNode(`${this.o.prefix}-${i}`));
  }

  /** Registers every node (join token), then starts its heartbeats and its long-poll. */
  async start(onProgress?: (registered: number) => void): Promise<void> {
    this.running = true;
    let next = 0;
    await Promise.all(Array.from({ length: this.o.registerParallel }, async () => {
      while (this.running && next < this.nodes.length) {
        const n = this.nodes[next++];
        await this.register(n);
        if (this.stats.registered % 500 === 0) onProgress?.(this.stats.registered);
        this.startNode(n);
      }
    }));
  }

  private body(n: SimNode) {
    return { name: n.name, address: '127.0.0.1', cpus: this.o.cpus, memory: this.o.memory, agentVersion: 'kiver-sim', ...(this.o.labels ? { labels: this.o.labels } : {}) };
  }

  private async register(n: SimNode): Promise<void> {
    for (let attempt = 0; this.running; attempt++) {
      try {
        // A node that has a credential registers again with it (after its lease expired).
        const res = await this.http.request<{ credential?: string }>('POST', '/v1/agent/register', n.token || this.o.joinToken, this.body(n), 30_000);
        if (res.credential) n.token = res.credential;
        this.stats.registered++;
        return;
      } catch {
        this.stats.registerFailures++;
        await sleep(Math.min(200 * 2 ** attempt, 5000));
      }
    }
  }

  private startNode(n: SimNode): void {
    if (!this.running) return;
    const beat = () => {
      if (!this.running) return;
      this.http.request('POST', '/v1/agent/heartbeat', n.token, { node: n.name }).then(() => {
        this.stats.heartbeats++;
      }, async (err: { status?: number }) => {
        this.stats.heartbeatFailures++;
        if (err.status === 404) {
          this.stats.registered--;
          await this.register(n); // lease lost: join again with the node credential, as the agent does
        }
      }).finally(() => {
        if (this.running) n.hbTimer = setTimeout(beat, this.o.heartbeatMs);
      });
    };
    // Spread the fleet's heartbeats over the interval, as independent agents would be.
    n.hbTimer = setTimeout(beat, randomInt(Math.max(1, this.o.heartbeatMs)));
    const p = this.poll(n).finally(() => this.polls.delete(p));
    this.polls.add(p);
  }

  private async poll(n: SimNode): Promise<void> {
    for (let failures = 0; this.running;) {
      try {
        const q = `/v1/agent/assignments?node=${n.name}${n.index ? `&index=${encodeURIComponent(n.index)}&wait=${this.o.waitSeconds}` : ''}`;
        const res = await this.http.request<{ index: string; replicas: Replica[] }>('GET', q, n.token, undefined, (this.o.waitSeconds + 15) * 1000);
        this.stats.polls++;
        n.index = res.index;
        failures = 0;
        this.apply(n, res.replicas);
      } catch {
        if (!this.running) return;
        this.stats.pollFailures++;
        n.index = undefined;
        // Backing off (as the agent does), so a struggling server is not hit by the whole fleet at once.
        await sleep(Math.min(500 * 2 ** failures++, 15_000) * (0.5 + Math.random()));
      }
    }
  }

  /** Compares the assignments with what "runs" here, like the agent's reconcile loop. */
  private apply(n: SimNode, replicas: Replica[]): void {
    const seen = new Set<string>();
    for (const r of replicas) {
      const id = `${r.service}/${r.ordinal}`;
      seen.add(id);
      const cur = n.replicas.get(id);
      if (r.desired === 'delete') {
        if (cur?.state === 'removed' && cur.uid === r.uid) continue;
        this.drop(cur);
        n.replicas.set(id, { uid: r.uid, generation: r.generation, state: 'removed' });
        this.report(n, r, 'removed');
        continue;
      }
      if (cur && cur.uid === r.uid && cur.generation === r.generation) continue;
      this.drop(cur);
      const local: Local = { uid: r.uid, generation: r.generation, state: 'creating' };
      n.replicas.set(id, local);
      const start = () => {
        local.timer = undefined;
        const fail = this.o.failureRate > 0 && Math.random() < this.o.failureRate;
        local.state = fail ? 'exited' : 'running';
        if (fail) this.stats.exited++;
        else this.stats.running++;
        this.report(n, r, local.state, fail ? 1 : undefined);
      };
      const lat = this.o.startLatencyMs;
      if (lat > 0) local.timer = setTimeout(start, lat / 2 + Math.random() * lat);
      else start();
    }
    for (const [id, cur] of n.replicas) {
      if (!seen.has(id)) {
        this.drop(cur);
        n.replicas.delete(id);
      }
    }
  }

  private drop(cur: Local | undefined): void {
    if (!cur) return;
    clearTimeout(cur.timer);
    if (cur.state === 'running') this.stats.running--;
    if (cur.state === 'exited') this.stats.exited--;
  }

  private report(n: SimNode, r: Replica, state: StatusItem['state'], exitCode?: number): void {
    n.outbox.set(`${r.service}/${r.ordinal}`, {
      service: r.service, ordinal: r.ordinal, uid: r.uid, generation: r.generation, state, restartCount: 0,
      ...(state === 'running' ? { containerId: `sim-${r.uid.slice(0, 12)}`, startedAt: new Date().toISOString() } : {}),
      ...(exitCode !== undefined ? { exitCode, lastError: 'simulated failure' } : {}),
    });
    if (!n.flushing) {
      n.flushing = true;
      // Reports of one wave of changes go together: one request per node, not per replica.
      setImmediate(() => void this.flush(n));
    }
  }

  private async flush(n: SimNode): Promise<void> {
    for (let attempt = 0; n.outbox.size > 0 && this.running; attempt++) {
      const statuses = [...n.outbox.values()];
      n.outbox.clear();
      try {
        await this.http.request('PUT', '/v1/agent/status', n.token, { node: n.name, statuses });
        this.stats.statusReports++;
      } catch {
        this.stats.statusFailures++;
        for (const s of statuses) if (!n.outbox.has(`${s.service}/${s.ordinal}`)) n.outbox.set(`${s.service}/${s.ordinal}`, s);
        await sleep(Math.min(500 * 2 ** attempt, 5000));
      }
    }
    n.flushing = false;
  }

  async stop(): Promise<void> {
    this.running = false;
    for (const n of this.nodes) {
      clearTimeout(n.hbTimer);
      for (const r of n.replicas.values()) clearTimeout(r.timer);
    }
    this.http.close(); // ends the long-polls in flight
    await Promise.allSettled([...this.polls]);
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
