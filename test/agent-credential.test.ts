/**
 * The real `kiver agent` binary against a real server and the machine's dockerd
 * (no replicas are assigned, so it starts no containers): it joins once with the
 * join token and keeps its node credential in a 0600 file, restarts with that
 * credential alone, cannot take over another node's name, and says clearly when
 * an admin revoked its credential.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { KiverServer } from '../src/server/server.js';
import { ApiClient } from '../src/client/api-client.js';
import { createLogger } from '../src/log.js';
import { KIVER_BIN, until } from './harness/kiver.js';
import { ensureDocker } from './harness/docker.js';

describe('kiver agent: node credential', () => {
  let dir: string;
  let server: KiverServer;
  let admin: ApiClient;
  const node = `ka-${randomBytes(3).toString('hex')}`;
  const procs: ChildProcess[] = [];

  function agent(home: string, env: Record<string, string>): { proc: ChildProcess; out: () => string } {
    let out = '';
    const proc = spawn(process.execPath, [
      KIVER_BIN, 'agent', '--server', server.url, '--node', node, '--data-root', join(dir, 'data'), '--log-root', join(dir, 'log'),
      '--no-guard', '--no-docker-watchdog', '--allow-no-live-restore',
    ], { env: { ...process.env, KIVER_HOME: home, KIVER_LOG_LEVEL: 'info', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    proc.stdout!.on('data', (d) => (out += d));
    proc.stderr!.on('data', (d) => (out += d));
    procs.push(proc);
    return { proc, out: () => out };
  }
  const exited = (p: ChildProcess) => new Promise<number>((r) => (p.exitCode !== null ? r(p.exitCode) : p.once('exit', (c) => r(c ?? 1))));

  before(async () => {
    await ensureDocker();
    dir = await mkdtemp(join(tmpdir(), 'kiver-agentcred-'));
    server = await KiverServer.start({ dataDir: join(dir, 'server'), listen: '127.0.0.1:0', log: createLogger('test', 'silent'), nodeLeaseTtl: 3 });
    admin = new ApiClient({ servers: [server.url], token: server.tokens.admin });
  });
  after(async () => {
    for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    await server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('joins once, keeps the credential 0600, restarts on it, and reports a revoked credential clearly', async () => {
    const home = join(dir, 'home');
    const first = agent(home, { KIVER_JOIN_TOKEN: server.tokens.join });
    await until('agent joined', async () => first.out().includes(`Kiver agent ${node} joined`) || (first.proc.exitCode !== null && Promise.reject(new Error(first.out()))));
    const file = join(home, `node-${node}.credential`);
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    first.proc.kill('SIGKILL');
    await exited(first.proc);

    // A restart needs no join token: the stored credential registers the node again.
    const second = agent(home, {});
    await until('agent re-registered with its credential', async () => second.out().includes(`Kiver agent ${node} joined`) || (second.proc.exitCode !== null && Promise.reject(new Error(second.out()))));
    await until('node ready', async () => (await admin.get<{ ready: boolean }>(`/v1/nodes/${node}`)).ready);

    // Another host with the join token cannot take over the name.
    const thief = agent(join(dir, 'thief'), { KIVER_JOIN_TOKEN: server.tokens.join });
    assert.notEqual(await exited(thief.proc), 0);
    assert.match(thief.out(), new RegExp(`node ${node} is already registered`));

    // An admin revokes the credential: the running agent says so, once, and how to join again.
    await admin.post(`/v1/nodes/${node}/rekey`);
    await until('agent logs the 401', async () => second.out().includes(`the server refused node ${node}'s credential (401`), 15_000);
    await new Promise((r) => setTimeout(r, 3000));
    assert.equal(second.out().split(`refused node ${node}'s credential`).length - 1, 1, 'said once, not at every heartbeat');
    assert.match(second.out(), new RegExp(`remove ${file.replaceAll('.', '\\.')}`));
    second.proc.kill('SIGKILL');
    await exited(second.proc);
  });
});
