/** What node init asks a Kiver server: is it there, does it accept the join token, has the node joined. */
import { UnauthenticatedError, UnavailableError } from '../errors.js';

async function heartbeat(server: string, token: string, node: string, timeoutMs: number): Promise<number> {
  const res = await fetch(`${server.replace(/\/+$/, '')}/v1/agent/heartbeat`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ node }),
    signal: AbortSignal.timeout(timeoutMs),
  });
  await res.arrayBuffer();
  return res.status;
}

/**
 * Checks that one of the servers answers and accepts the join token (an agent-only
 * request: 401/403 means the token is wrong). Changes nothing on the server.
 */
export async function probeServer(servers: string[], token: string, node: string): Promise<string> {
  const errors: string[] = [];
  for (const s of servers) {
    let status: number;
    try {
      status = await heartbeat(s, token, node, 5000);
    } catch (err) {
      const e = err as Error & { cause?: { code?: string; message?: string } };
      errors.push(`${s}: ${e.name === 'TimeoutError' ? 'no answer within 5 s' : e.cause?.code ?? e.cause?.message ?? e.message}`);
      continue;
    }
    if (status === 401 || status === 403) throw new UnauthenticatedError(`--join-token: the server ${s} rejected the join token (HTTP ${status}); copy it from the server's data dir (join.token) — nothing was changed`);
    if (status === 200 || status === 404) return s;
    errors.push(`${s}: HTTP ${status}`);
  }
  throw new UnavailableError(`--server: no Kiver server reachable (${errors.join('; ')}) — nothing was changed`);
}

/** True once the node has registered and its lease is alive. */
export async function nodeJoined(servers: string[], token: string, node: string): Promise<boolean> {
  for (const s of servers) {
    try {
      if ((await heartbeat(s, token, node, 3000)) === 200) return true;
    } catch {
      /* try the next */
    }
  }
  return false;
}
