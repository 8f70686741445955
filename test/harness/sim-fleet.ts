/**
 * A fleet of simulated nodes on the real agent protocol (register, heartbeat) — no
 * containers — to load the control plane with heartbeats the way thousands of agents do.
 */
import { ApiClient } from '../../src/client/api-client.js';
import { UnavailableError } from '../../src/errors.js';

export class SimFleet {
  private readonly client: ApiClient;
  /** Each node's client, with the credential its join returned (the join token only joins). */
  private readonly nodes = new Map<string, ApiClient>();
  private running = false;
  private loops: Promise<void>[] = [];
  heartbeats = 0;
  failures = 0;
  /** The last heartbeat error, for the test's diagnostics. */
  lastError = '';

  constructor(private readonly servers: string[], joinToken: string, readonly names: string[]) {
    this.client = new ApiClient({ servers, token: joinToken, timeoutMs: 5000 });
  }

  /** Registers every node, `parallel` at a time. */
  async register(parallel = 16): Promise<void> {
    const queue = [...this.names];
    await Promise.all(Array.from({ length: parallel }, async () => {
      for (let n = queue.shift(); n; n = queue.shift()) {
        // A join is not idempotent (a repeat is a 409): not retried after a timeout. A 503
        // "cannot reach its store" is refused before anything is written (a busy machine's
        // store can lag by over a second): tried again.
        let credential = '';
        for (const giveUp = Date.now() + 30_000; !credential;) {
          try {
            ({ credential } = await this.client.post<{ credential: string }>('/v1/agent/register', { name: n, address: '127.0.0.1', cpus: 4, memory: 8 * 2 ** 30 }));
          } catch (err) {
            if (!(err instanceof UnavailableError && /cannot reach its store/.test(err.message)) || Date.now() > giveUp) throw err;
            await new Promise((r) => setTimeout(r, 200));
          }
        }
        this.nodes.set(n, new ApiClient({ servers: this.servers, token: credential, timeoutMs: 5000 }));
      }
    }));
  }

  /** Every node heartbeats once per `everyMs`, spread evenly over the interval. */
  start(everyMs: number): void {
    this.running = true;
    this.loops = this.names.map(async (node, i) => {
      await new Promise((r) => setTimeout(r, (everyMs * i) / this.names.length));
      while (this.running) {
        const t = Date.now();
        try {
          await this.nodes.get(node)!.post('/v1/agent/heartbeat', { node }, { idempotent: true });
          this.heartbeats++;
        } catch (err) {
          this.failures++;
          this.lastError = (err as Error).message;
        }
        await new Promise((r) => setTimeout(r, Math.max(0, everyMs - (Date.now() - t))));
      }
    });
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
  }
}
