/**
 * A stand-in for a node agent that runs no containers: it registers, heartbeats,
 * and reports every assigned replica running (after an optional start delay) or removed, so controller behaviour
 * (node loss, drain) can be tested fast and deterministically. Container behaviour
 * is tested with the real agent on real Docker elsewhere.
 */
import { ApiClient } from '../../src/client/api-client.js';
import type { Replica } from '../../src/model/replica.js';

export class FakeAgent {
  private timers: NodeJS.Timeout[] = [];
  private client: ApiClient;
  private readonly servers: string[];
  /** This node's credential, from its join (a restarted agent registers again with it). */
  credential?: string;
  /** Replica ids reported running, in the order they first came up here. */
  readonly started: string[] = [];
  private readonly reported = new Map<string, string>();
  /** When each replica incarnation assigned here is up (first seen + startDelayMs then). */
  private readonly upAt = new Map<string, number>();
  /**
   * How long a newly assigned replica stays 'creating' before it reports 'running', like a
   * real container starting; 0 = running at once. It applies to replicas assigned after it is set.
   */
  startDelayMs = 0;

  constructor(url: string | string[], joinToken: string, readonly name: string, private readonly cpus = 2, private readonly memory = 4 * 1024 ** 3) {
    this.servers = Array.isArray(url) ? url : [url];
    this.client = new ApiClient({ servers: this.servers, token: joinToken, timeoutMs: 3000 });
  }

  /** Joins with the join token the first time, registers again with the node credential after. */
  async start(): Promise<void> {
    const res = await this.client.post<{ credential?: string }>('/v1/agent/register', { name: this.name, address: '127.0.0.1', cpus: this.cpus, memory: this.memory });
    if (res.credential) {
      this.credential = res.credential;
      this.client = new ApiClient({ servers: this.servers, token: res.credential, timeoutMs: 3000 });
    }
    this.timers.push(setInterval(() => void this.client.post('/v1/agent/heartbeat', { node: this.name }).catch(() => {}), 300));
    this.timers.push(setInterval(() => void this.sync().catch(() => {}), 200));
  }

  /** Stops heartbeating and syncing: to the server, the node is lost. */
  stop(): void {
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
  }

  async sync(): Promise<Replica[]> {
    const a = await this.client.get<{ replicas: Replica[] }>(`/v1/agent/assignments?node=${this.name}`);
    for (const r of a.replicas) if (r.desired === 'run' && !this.started.includes(`${r.service}/${r.ordinal}@${r.uid}`)) this.started.push(`${r.service}/${r.ordinal}@${r.uid}`);
    const now = Date.now();
    for (const r of a.replicas) if (!this.upAt.has(r.uid)) this.upAt.set(r.uid, now + this.startDelayMs);
    const upState = (r: Replica) => (now >= this.upAt.get(r.uid)! ? 'running' : 'creating');
    // Like the real agent, report only what changed.
    const statuses = a.replicas
      .map((r) => ({
        service: r.service, ordinal: r.ordinal, uid: r.uid, generation: r.generation,
        state: r.desired === 'delete' ? 'removed' : upState(r), restartCount: 0,
      }))
      .filter((s) => this.reported.get(`${s.service}/${s.ordinal}`) !== JSON.stringify(s));
    if (statuses.length > 0) {
      await this.client.put('/v1/agent/status', { node: this.name, statuses });
      for (const s of statuses) this.reported.set(`${s.service}/${s.ordinal}`, JSON.stringify(s));
    }
    return a.replicas;
  }
}
