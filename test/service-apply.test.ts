/**
 * `POST /v1/services/apply` and `kiver service apply -f`: many services in one request,
 * idempotent (the same list again writes nothing), all-or-nothing on bad input.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ServerProcess, freePort, runCli } from './harness/kiver.js';
import { ApiClient, ServerError } from '../src/client/api-client.js';
import { InputError } from '../src/errors.js';
import type { ServiceView } from '../src/model/service.js';

interface Applied { created: string[]; updated: string[]; unchanged: string[] }

describe('service apply', () => {
  let dir: string;
  let server: ServerProcess;
  let admin: ApiClient;
  let token: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kiver-apply-'));
    server = new ServerProcess(dir, await freePort(), `sqlite:${join(dir, 'kiver.db')}`);
    await server.start();
    token = (await readFile(join(dir, 'admin.token'), 'utf8')).trim();
    admin = new ApiClient({ servers: [server.url], token, timeoutMs: 10_000 });
  });
  after(async () => {
    await server?.kill();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const list = (n: number, over: Record<string, unknown> = {}) =>
    Array.from({ length: n }, (_, i) => ({ name: `a${i}`, image: 'nginx', replicas: 0, secretEnv: { PASS: `p${i}` }, ...over }));

  it('creates a list in one request; the same list again is unchanged and writes nothing', async () => {
    const first = await admin.post<Applied>('/v1/services/apply', { services: list(250) });
    assert.equal(first.created.length, 250);
    const before = await admin.get<ServiceView>('/v1/services/a7');
    const again = await admin.post<Applied>('/v1/services/apply', { services: list(250) });
    assert.deepEqual({ created: again.created.length, updated: again.updated.length, unchanged: again.unchanged.length }, { created: 0, updated: 0, unchanged: 250 });
    const after_ = await admin.get<ServiceView>('/v1/services/a7');
    assert.equal(after_.updatedAt, before.updatedAt);
    assert.equal(after_.generation, 1);
  });

  it('updates what differs: a new image rolls (new generation), a new replica count does not', async () => {
    const services = list(3);
    services[0] = { ...services[0], image: 'nginx:1.27' };
    services[1] = { ...services[1], replicas: 2 };
    const r = await admin.post<Applied>('/v1/services/apply', { services });
    assert.deepEqual(r.updated.sort(), ['a0', 'a1']);
    assert.deepEqual(r.unchanged, ['a2']);
    assert.equal((await admin.get<ServiceView>('/v1/services/a0')).generation, 2);
    const a1 = await admin.get<ServiceView>('/v1/services/a1');
    assert.equal(a1.generation, 1);
    assert.equal(a1.spec.replicas, 2);
  });

  it('a bad entry is a 400 naming it, and nothing of the list is stored', async () => {
    const services = [{ name: 'new-ok', image: 'nginx' }, { name: 'new-bad', image: 'nginx', memory: 1024 }];
    await assert.rejects(admin.post('/v1/services/apply', { services }), (e: unknown) => e instanceof InputError && e.field === 'services/1/memory');
    const dup = [{ name: 'dup', image: 'nginx' }, { name: 'dup', image: 'nginx' }];
    await assert.rejects(admin.post('/v1/services/apply', { services: dup }), (e: unknown) => e instanceof InputError && e.field === 'services/1/name');
    const names = (await admin.get<ServiceView[]>('/v1/services')).map((s) => s.name);
    assert.ok(!names.includes('new-ok') && !names.includes('dup'));
    await assert.rejects(admin.post('/v1/services/apply', { services: [] }), (e: unknown) => e instanceof InputError || e instanceof ServerError);
    // Managed types (credentials, endpoints) and backup policies have their own routes.
    await assert.rejects(admin.post('/v1/services/apply', { services: [{ name: 'db', type: 'mysql' }] }), (e: unknown) => e instanceof InputError && e.field === 'services/0/type');
    await assert.rejects(admin.post('/v1/services/apply', { services: [{ name: 'bk', image: 'nginx', backup: { schedule: '0 2 * * *', target: 't' } }] }), (e: unknown) => e instanceof InputError && e.field === 'services/0/backup');
    assert.equal((await admin.get<ServiceView[]>('/v1/services')).filter((s) => s.name === 'db' || s.name === 'bk').length, 0);
  });

  it('kiver service apply -f takes a YAML list (memory as 64Mi) and is idempotent', async () => {
    const file = join(dir, 'services.yaml');
    await writeFile(file, '- name: y1\n  image: nginx\n  replicas: 0\n  memory: 64Mi\n- name: y2\n  image: nginx\n  replicas: 0\n');
    const env = { ...process.env, KIVER_ADDR: server.url, KIVER_TOKEN: token };
    const one = await runCli(env, 'service', 'apply', '-f', file);
    assert.equal(one.code, 0, one.stderr);
    assert.match(one.stdout, /2 created, 0 updated, 0 unchanged/);
    assert.equal((await admin.get<ServiceView>('/v1/services/y1')).spec.memory, 64 * 2 ** 20);
    const two = await runCli(env, 'service', 'apply', '-f', file);
    assert.match(two.stdout, /0 created, 0 updated, 2 unchanged/);
    await writeFile(file, 'name: lonely\n');
    const bad = await runCli(env, 'service', 'apply', '-f', file);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /expected a non-empty list of services/);
  });
});
