/**
 * A lean JSON-over-HTTP client for the simulator: one keep-alive socket pool shared by
 * every simulated node. `fetch` costs several times more CPU per request than
 * `http.request`, and at 10,000 nodes the simulator must stay under one core.
 */
import http from 'node:http';
import { toError } from '../client/api-client.js';
import { UnavailableError } from '../errors.js';

export class SimHttp {
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: Infinity, maxFreeSockets: 4096, scheduling: 'lifo' });
  private next = 0;

  constructor(private readonly servers: string[]) {}

  /** One request to one server (the next in turn on a connection error); rejects with the API's typed error. */
  request<T>(method: string, path: string, token: string, body?: unknown, timeoutMs = 10_000): Promise<T> {
    const base = this.servers[this.next % this.servers.length];
    const data = body === undefined ? undefined : JSON.stringify(body);
    return new Promise<T>((resolve, reject) => {
      const req = http.request(`${base}${path}`, {
        method,
        agent: this.agent,
        timeout: timeoutMs,
        headers: { authorization: `Bearer ${token}`, ...(data !== undefined ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } : {}) },
      }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: unknown;
          try {
            json = text ? JSON.parse(text) : undefined;
          } catch {
            json = undefined;
          }
          const status = res.statusCode ?? 0;
          if (status >= 200 && status < 300) resolve(json as T);
          else reject(toError(status, json as never, text.slice(0, 200)));
        });
      });
      req.on('timeout', () => req.destroy(new UnavailableError(`${method} ${path} timed out after ${timeoutMs} ms`)));
      req.on('error', (err) => {
        this.next++;
        reject(err instanceof UnavailableError ? err : new UnavailableError(`cannot reach ${base}: ${(err as Error).message}`));
      });
      req.end(data);
    });
  }

  close(): void {
    this.agent.destroy();
  }
}
