/**
 * The CLI's tables show what agents sent as visible text: a node that registers with an
 * address holding an escape sequence and a newline (any agent with the join token can)
 * neither clears the operator's terminal nor forges a row in `kiver node ls` / `node get`.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KiverServer } from '../src/server/server.js';
import { ApiClient } from '../src/client/api-client.js';
import { createLogger } from '../src/log.js';
import { KIVER_BIN, runCommand } from './harness/kiver.js';

const EVIL = '10.0.0.7\u001b[2J\nnode-x  Ready     10.0.0.8';

describe('CLI tables escape what agents sent', () => {
  let dir: string;
  let server: KiverServer;
  const cli = (...args: string[]) => runCommand([process.execPath, KIVER_BIN, ...args],
    { ...process.env, KIVER_ADDR: server.url, KIVER_TOKEN: server.tokens.admin, KIVER_HOME: join(dir, 'home') });

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kiver-cli-output-'));
    server = await KiverServer.start({ dataDir: dir, listen: '127.0.0.1:0', log: createLogger('test', 'silent'), nodeLeaseTtl: 120 });
    const agent = new ApiClient({ servers: [server.url], token: server.tokens.join });
    await agent.post('/v1/agent/register', { name: 'evil-node', address: EVIL, cpus: 2, memory: 4 * 1024 ** 3 });
  });
  after(async () => {
    await server?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('node ls: one row for the node, its address as visible escapes', async () => {
    const r = await cli('node', 'ls');
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stdout, /\u001b/);
    const lines = r.stdout.trimEnd().split('\n');
    assert.equal(lines.length, 2, r.stdout);
    assert.match(lines[0], /^NAME +STATUS +ADDRESS /);
    assert.match(lines[1], /^evil-node +Ready +10\.0\.0\.7\\x1b\[2J\\nnode-x {2}Ready {5}10\.0\.0\.8 +0\/2 /);
  });

  it('node get: the same; -o json gives the address as sent', async () => {
    const r = await cli('node', 'get', 'evil-node');
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stdout, /\u001b/);
    assert.ok(!r.stdout.split('\n').some((l) => l.startsWith('node-x')), r.stdout);
    const j = await cli('node', 'get', 'evil-node', '-o', 'json');
    assert.equal((JSON.parse(j.stdout) as { address: string }).address, EVIL);
  });
});
