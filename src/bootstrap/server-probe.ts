/** What node init asks a Kiver server: is it there, does it accept the join token, has the node joined. */
import { UnauthenticatedError, UnavailableError } from '../errors.js';
import { readSecretFile } from '../secret-file.js';

/** Who the server takes a token for (GET /v1/agent/whoami: join tokens and node credentials); the HTTP status. */
async function whoami(server: string, token: string, timeoutMs: number): Promise<number> {
  const res = await fetch(`${server.replace(/\/+$/, '')}/v1/agent/whoami`, {
    headers: { authorization: `Bearer ${token}` },
    signal: AbortSignal.timeout(timeoutMs),
  });
  const body = (await res.json().catch(() => undefined)) as { role?: string } | undefined;
  return res.status === 200 && body?.role !== 'agent' ? 403 : res.status;
}

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
 * Checks that one of the servers answers and takes the token for the join token
 * (401/403 means the token is wrong). Changes nothing on the server.
 */
export async function probeServer(servers: string[], token: string): Promise<string> {
  const errors: string[] = [];
  for (const s of servers) {
    let status: number;
    try {
      status = await whoami(s, token, 5000);
    } catch (err) {
      const e = err as Error & { cause?: { code?: string; message?: string } };
      errors.push(`${s}: ${e.name === 'TimeoutError' ? 'no answer within 5 s' : e.cause?.code ?? e.cause?.message ?? e.message}`);
      continue;
    }
    if (status === 401 || status === 403) throw new UnauthenticatedError(`--join-token: the server ${s} rejected the join token (HTTP ${status}); copy it from the server's data dir (join.token) — nothing was changed`);
    if (status === 200) return s;
    errors.push(`${s}: HTTP ${status}`);
  }
  throw new UnavailableError(`--server: no Kiver server reachable (${errors.join('; ')}) — nothing was changed`);
}

/** True once the agent has joined (its credential file exists) and the server keeps the node's lease alive. */
export async function nodeJoined(servers: string[], credentialFile: string, node: string): Promise<boolean> {
  const token = await readSecretFile(credentialFile);
  if (!token) return false;
  for (const s of servers) {
    try {
      if ((await heartbeat(s, token, node, 3000)) === 200) return true;
    } catch {
      /* try the next */
    }
  }
  return false;
}
