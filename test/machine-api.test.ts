/**
 * Machines through the real Kiver server (in-process KiverServer, its HTTP API and the
 * `kiver machine` / `kiver pxe` CLI as child processes), with OpenIPMI's ipmi_sim on
 * loopback as the BMC (no QEMU: the test plays the installer with the token from the
 * boot file). The fault cases of issue 5: unknown MAC / wrong / expired token at the
 * config center → 404/403 revealing nothing; wrong BMC password → clear error, state
 * unchanged; BMC unreachable → timeout error; second install → 409; malformed
 * inventory → every bad row with its line, nothing imported.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KiverServer } from '../src/server/server.js';
import { ApiClient } from '../src/client/api-client.js';
import { createLogger } from '../src/log.js';
import { BootFileWriter } from '../src/machine/bootfiles.js';
import { BAD_TOKEN, NOT_PENDING } from '../src/machine/config-center.js';
import { KvMachineStore, mutateMachine } from '../src/machine/machine-store.js';
import type { MachineView } from '../src/model/machine.js';
import type { OsProfile } from '../src/machine/profiles/index.js';
import { IpmiDriver } from '../src/machine/bmc/ipmi.js';
import { KIVER_BIN, freePort, until } from './harness/kiver.js';
import { writeBmcSim } from './harness/machine-lab.js';

const PROFILE: OsProfile = {
  name: 'debian-12', kind: 'debian-preseed', kernelUrl: 'http://10.0.0.1/d/linux', initrdUrl: 'http://10.0.0.1/d/initrd.gz',
  params: { mirror: 'http://deb.example/debian' },
};
const MAC = '52:54:00:4b:56:77';
const HAVE_IPMI = existsSync('/usr/bin/ipmi_sim') && existsSync('/usr/bin/ipmitool');
// A missing BMC simulator is a broken test machine, not a reason to skip: .ci/run installs it.
if (!HAVE_IPMI) throw new Error('these tests need ipmi_sim and ipmitool: apt-get install openipmi ipmitool (bash .ci/run does)');

function udpPort(): Promise<Socket> {
  return new Promise((resolve) => {
    const s = createSocket('udp4');
    s.bind(0, '127.0.0.1', () => resolve(s));
  });
}

describe('machines through the Kiver server', () => {
  let dir: string;
  let server: KiverServer;
  let admin: ApiClient;
  let tftpRoot: string;
  let sim: ChildProcess | undefined;
  let simDir: string;
  let simRequests = '';
  let blackhole: Socket;
  const bmc = { address: '127.0.0.1', port: 0, user: 'admin', password: randomBytes(6).toString('hex') };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kiver-machine-api-'));
    tftpRoot = join(dir, 'tftp');
    server = await KiverServer.start({
      dataDir: join(dir, 'state'), listen: '127.0.0.1:0', log: createLogger('test', 'silent'),
      machines: {
        tftpRoot, profiles: [PROFILE], reapIntervalMs: 1000,
        // Short BMC timeouts keep the unreachable case quick; ipmitool's own -N/-R still apply.
        bmc: { timeoutMs: 6000, retries: 0, ipmi: { lanTimeoutSec: 1, lanRetries: 1 } },
      },
    });
    admin = new ApiClient({ servers: [server.url], token: server.tokens.admin });
    blackhole = await udpPort(); // a "BMC" that never answers
    blackhole.on('message', () => undefined);
    if (HAVE_IPMI) {
      const probe = await udpPort();
      bmc.port = (probe.address() as { port: number }).port;
      await new Promise<void>((r) => probe.close(() => r()));
      simDir = join(dir, 'bmc');
      const s = writeBmcSim({ dir: simDir, ...bmc, mac: MAC, selfPower: true });
      simRequests = s.requestsFile;
      sim = spawn(s.argv[0], s.argv.slice(1), { stdio: 'ignore' });
      const drv = new IpmiDriver({ ...bmc, retries: 0, timeoutMs: 3000 });
      await until('ipmi_sim answers', async () => (await drv.powerStatus()) === 'off', 10_000, 200);
    }
  });
  after(async () => {
    sim?.kill('SIGKILL');
    blackhole?.close();
    await server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  async function raw(method: string, path: string, opts: { body?: string; type?: string; token?: string | null; headers?: Record<string, string> } = {}) {
    const token = opts.token === undefined ? server.tokens.admin : opts.token;
    const res = await fetch(`${server.url}${path}`, {
      method,
      headers: {
        ...(token ? { authorization: `Bearer ${token}` } : {}),
        ...(opts.body !== undefined ? { 'content-type': opts.type ?? 'application/json' } : {}),
        ...opts.headers,
      },
      body: opts.body,
    });
    const text = await res.text();
    let json: any; // eslint-disable-line @typescript-eslint/no-explicit-any
    try { json = JSON.parse(text); } catch { json = undefined; }
    return { status: res.status, text, json };
  }

  const body = (name: string, over: Record<string, unknown> = {}) => ({
    name, bmc: { driver: 'ipmi', address: bmc.address, port: bmc.port || 623, user: bmc.user, password: bmc.password },
    osProfile: 'debian-12', identity: { ip: `10.0.0.${10 + name.length}/24`, hostname: name, gateway: '10.0.0.1', dns: ['10.0.0.2'] }, ...over,
  });

  async function storeDump(): Promise<string> {
    return JSON.stringify((await server.store.list('/kiver/')).kvs);
  }

  function tokenFromBootFile(text: string): string {
    const m = /kiver\.token=(\S+)/.exec(text);
    assert.ok(m, 'token on the kernel command line');
    return m[1];
  }

  async function bootFiles(): Promise<string[]> {
    const out: string[] = [];
    for (const d of ['pxelinux.cfg', 'grub', 'ipxe']) out.push(...(await readdir(join(tftpRoot, d)).catch(() => [])).map((f) => `${d}/${f}`));
    return out.sort();
  }

  function cli(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
    return new Promise((res) => {
      const p = spawn(process.execPath, [KIVER_BIN, ...args], {
        env: { ...process.env, KIVER_ADDR: server.url, KIVER_TOKEN: server.tokens.admin, KIVER_HOME: join(dir, 'home'), ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      p.stdout.on('data', (d) => (stdout += d));
      p.stderr.on('data', (d) => (stderr += d));
      p.on('close', (code) => res({ code: code ?? 1, stdout, stderr }));
    });
  }

  it('machines need the API token; the config center needs none and answers 404 to strangers', async () => {
    assert.equal((await raw('GET', '/v1/machines', { token: null })).status, 401);
    assert.equal((await raw('GET', '/v1/machines', { token: server.tokens.join })).status, 403);
    const cc = await raw('GET', `/v1/config-center/${MAC}?token=x`, { token: null });
    assert.equal(cc.status, 404);
    assert.deepEqual(cc.json, { error: { code: 'not_found', message: NOT_PENDING } });
    // Only routes of the config center are public, not paths that merely start like one.
    const sneaky = await raw('GET', '/v1/config-center/../machines', { token: null });
    assert.equal(sneaky.status, 401, sneaky.text);
    assert.equal((await raw('GET', '/v1/config-center', { token: null })).status, 401);
    const doc = await admin.get<{ paths: Record<string, Record<string, { security?: unknown[] }>> }>('/v1/openapi.json');
    for (const p of ['/v1/machines', '/v1/machines/{name}', '/v1/machines/{name}/install', '/v1/machines/install', '/v1/machines/import', '/v1/machines/reap']) assert.ok(doc.paths[p], p);
    assert.deepEqual(doc.paths['/v1/config-center/{mac}'].get.security, []);
  });

  it('add: 201 redacted, password sealed at rest; bad input 400 naming the field, duplicates 409, nothing stored', async () => {
    const res = await raw('POST', '/v1/machines', { body: JSON.stringify(body('alpha', { macs: ['52-54-00-00-00-0A'] })) });
    assert.equal(res.status, 201, res.text);
    assert.equal(res.json.bmc.password, '(set)');
    assert.deepEqual(res.json.macs, ['52:54:00:00:00:0a']);
    assert.equal(res.json.status.phase, 'registered');
    assert.ok(!res.text.includes(bmc.password) && !res.text.includes('passwordEnc'));
    const dump = await storeDump();
    assert.ok(dump.includes('passwordEnc') && !dump.includes(bmc.password), 'sealed at rest');
    const before_ = await server.store.revision();
    const bad: [Record<string, unknown>, RegExp][] = [
      [{ ...body('beta'), extra: 1 }, /^extra$/],
      [body('beta', { identity: { ip: '10.0.0.300/24', hostname: 'beta' } }), /^identity\.ip$/],
      [body('Beta'), /^name$/],
      [body('beta', { bmc: { address: '10.1.0.1', user: 'a' } }), /bmc.*password/],
      [body('beta', { bmc: { driver: 'ilo', address: '10.1.0.1', user: 'a', password: 'b' } }), /bmc\/driver/],
      [body('beta', { identity: { ip: '10.0.0.20/24', hostname: 'beta', gateway: '192.168.1.1' } }), /^identity\.gateway$/],
    ];
    for (const [b, field] of bad) {
      const r = await raw('POST', '/v1/machines', { body: JSON.stringify(b) });
      assert.equal(r.status, 400, r.text);
      assert.match(r.json.error.field ?? '', field, r.text);
    }
    const dup = await raw('POST', '/v1/machines', { body: JSON.stringify(body('alpha')) });
    assert.equal(dup.status, 409);
    assert.match(dup.json.error.message, /exists already/);
    assert.equal(await server.store.revision(), before_, 'nothing stored');
    assert.equal((await raw('GET', '/v1/machines/alpha')).json.name, 'alpha');
    assert.equal((await raw('GET', '/v1/machines/nope')).status, 404);
    assert.equal((await raw('GET', '/v1/machines/..%2Fetc')).status, 400);
    assert.equal((await raw('DELETE', '/v1/machines/alpha')).status, 204);
    assert.equal((await raw('GET', '/v1/machines/alpha')).status, 404);
  });

  it('import: a malformed inventory → 400 with every bad row and its line, nothing imported; YAML and CSV bodies', async () => {
    const yaml = `defaults:
  bmc: { driver: ipmi, user: admin, password: pw }
  osProfile: debian-12
machines:
  - name: imp1
    bmc: { address: 10.1.0.1 }
    identity: { ip: 10.0.1.1/24, hostname: imp1 }
  - name: Imp_2
    bmc: { address: 10.1.0.2 }
    identity: { ip: 10.0.1.300/24, hostname: imp2 }
  - name: imp3
    bmc: { driver: ilo, address: 10.1.0.3 }
    macs: [zz]
    identity: { ip: 10.0.1.3/24, hostname: imp3, gateway: 10.9.9.9 }
  - name: imp1
    bmc: { address: 10.1.0.4 }
    identity: { ip: 10.0.1.4/24, hostname: imp4 }
`;
    const before_ = await server.store.revision();
    const r = await raw('POST', '/v1/machines/import?format=yaml', { body: yaml, type: 'application/yaml' });
    assert.equal(r.status, 400, r.text);
    assert.deepEqual(r.json.error.problems.map((p: { line: number; field: string }) => `${p.line}:${p.field}`),
      ['8:name', '10:identity.ip', '12:bmc.driver', '13:macs', '14:identity.gateway', '15:name']);
    assert.match(r.json.error.message, /^inventory has 6 problems; nothing imported:\n {2}line 8: name:/);
    assert.ok(!r.text.includes('"pw"'));
    assert.equal(await server.store.revision(), before_, 'nothing imported');
    // The same text as a JSON string (what the CLI sends) gets the same answer.
    const j = await raw('POST', '/v1/machines/import', { body: JSON.stringify(yaml) });
    assert.equal(j.status, 400);
    assert.equal(j.json.error.problems.length, 6);
    const csv = 'name,bmc_address,bmc_user,bmc_password,os,ip,hostname\ncsv1,10.1.0.5,admin,pw,debian-12,10.0.1.5/24,csv1\ncsv2,10.1.0.6,admin,pw,debian-12,10.0.1.6/24,csv2\n';
    const ok = await raw('POST', '/v1/machines/import', { body: csv, type: 'text/csv' });
    assert.equal(ok.status, 201, ok.text);
    assert.equal(ok.json.imported, 2);
    assert.ok(!ok.text.includes('passwordEnc'));
    const again = await raw('POST', '/v1/machines/import', { body: csv, type: 'text/csv' });
    assert.equal(again.status, 400);
    assert.deepEqual(again.json.error.problems.map((p: { line: number; field: string }) => `${p.line}:${p.field}`), ['2:name', '2:identity.ip', '3:name', '3:identity.ip']);
    for (const n of ['csv1', 'csv2']) assert.equal((await raw('DELETE', `/v1/machines/${n}`)).status, 204);
  });

  it('wrong BMC password → a clear error, state unchanged, no boot file (real ipmi_sim)', async () => {
    await admin.post('/v1/machines', body('badpw', { bmc: { ...body('x').bmc, password: 'not-the-password' } }));
    const before_ = (await raw('GET', '/v1/machines/badpw')).text;
    for (const path of ['/v1/machines/badpw/install', '/v1/machines/badpw/inspect']) {
      const r = await raw('POST', path, { body: '{}' });
      assert.equal(r.status, 502, r.text);
      assert.equal(r.json.error.code, 'bmc_auth_failed');
      assert.match(r.json.error.message, /refused the user name or password/);
      assert.ok(!r.text.includes('not-the-password'));
    }
    assert.equal((await raw('GET', '/v1/machines/badpw')).text, before_, 'state unchanged');
    assert.deepEqual(await bootFiles(), []);
    await admin.delete('/v1/machines/badpw');
  });

  it('BMC unreachable → a timeout error (503), state unchanged, no boot file', async () => {
    const port = (blackhole.address() as { port: number }).port;
    await admin.post('/v1/machines', body('gone', { bmc: { ...body('x').bmc, port } }));
    const t = Date.now();
    const r = await raw('POST', '/v1/machines/gone/install', { body: '{}' });
    const took = Date.now() - t;
    assert.equal(r.status, 503, r.text);
    assert.equal(r.json.error.code, 'bmc_unreachable');
    assert.match(r.json.error.message, /BMC 127\.0\.0\.1:\d+ (is unreachable|did not answer in time)/);
    assert.ok(took < 15_000, `took ${took} ms`);
    assert.equal((await admin.get<MachineView>('/v1/machines/gone')).status.phase, 'registered');
    assert.deepEqual(await bootFiles(), []);
    await admin.delete('/v1/machines/gone');
  });

  it('install over real ipmi_sim; second install 409; config center 404/403 reveal nothing; expired token; reap; report', async () => {
    await admin.post('/v1/machines', body('node01'));
    const r = await raw('POST', '/v1/machines/node01/install', { body: '{}' });
    assert.equal(r.status, 202, r.text);
    assert.deepEqual(r.json.macs, [MAC], 'MAC read from the FRU data');
    assert.equal(r.json.machine.status.phase, 'installing');
    assert.ok(!r.text.includes('tokenSha256') && !r.text.includes('kiver.token'));
    assert.deepEqual(await bootFiles(), ['grub/grub.cfg-01-52-54-00-4b-56-77', 'ipxe/52-54-00-4b-56-77.ipxe', 'pxelinux.cfg/01-52-54-00-4b-56-77']);
    const requests = await readFile(simRequests, 'utf8');
    assert.match(requests, /^boot pxe\npower 1\n$/, 'one-time PXE, then power on (it was off)');

    // Second install: 409 on the single route and in the batch outcome, nothing changed.
    const second = await raw('POST', '/v1/machines/node01/install', { body: '{}' });
    assert.equal(second.status, 409);
    assert.match(second.json.error.message, /already installing/);
    const batch = await admin.post<{ results: { name: string; ok: boolean; error?: { status: number } }[] }>('/v1/machines/install', { names: ['node01', 'ghost'] });
    assert.deepEqual(batch.results.map((x) => [x.name, x.ok, x.error?.status]), [['node01', false, 409], ['ghost', false, 404]]);
    assert.equal(await readFile(simRequests, 'utf8'), requests, 'the BMC was not asked again');

    // The config center, as anyone on the network would try it.
    const pxe = await readFile(join(tftpRoot, 'pxelinux.cfg', '01-52-54-00-4b-56-77'), 'utf8');
    const token = tokenFromBootFile(pxe);
    assert.match(pxe, new RegExp(`kiver\\.url=${server.url.replace(/[.]/g, '\\.')}/v1/config-center kiver\\.mac=${MAC}`));
    const denied = [
      await raw('GET', '/v1/config-center/52:54:00:99:99:99', { token: null, headers: { 'x-kiver-install-token': token } }),
      await raw('GET', '/v1/config-center/not-a-mac?token=x', { token: null }),
    ];
    for (const d of denied) assert.deepEqual([d.status, d.json], [404, { error: { code: 'not_found', message: NOT_PENDING } }]);
    const forbidden = [
      await raw('GET', `/v1/config-center/${MAC}`, { token: null }),
      await raw('GET', `/v1/config-center/${MAC}?token=guessed`, { token: null }),
      await raw('GET', `/v1/config-center/${MAC}`, { token: server.tokens.admin }), // the API token is not an install token
      await raw('POST', `/v1/config-center/${MAC}/installed`, { token: null, headers: { 'x-kiver-install-token': 'guessed' } }),
      await raw('GET', `/v1/config-center/${MAC}/seed/guessed/preseed.cfg`, { token: null }),
    ];
    for (const f of forbidden) {
      assert.deepEqual([f.status, f.json], [403, { error: { code: 'forbidden', message: BAD_TOKEN } }]);
      assert.ok(!/node01|10\.0\.0\./.test(f.text));
    }
    const id = await raw('GET', `/v1/config-center/${MAC}`, { token: null, headers: { 'x-kiver-install-token': token } });
    assert.equal(id.status, 200);
    assert.deepEqual(id.json, { name: 'node01', mac: MAC, ip: '10.0.0.16', prefix: 24, netmask: '255.255.255.0', hostname: 'node01', gateway: '10.0.0.1', dns: ['10.0.0.2'], ntp: [] });
    const seed = await raw('GET', `/v1/config-center/${MAC}/seed/${token}/preseed.cfg`, { token: null });
    assert.equal(seed.status, 200);
    assert.match(seed.text, /late_command/);
    const served = await admin.get<MachineView>('/v1/machines/node01');
    assert.ok(served.status.install?.identityServedAt, 'progress: identity served');
    assert.ok(served.status.events.some((e) => e.type === 'identity'));

    // Expired token (as if 2 h had passed): 403, same body.
    const machines = new KvMachineStore(server.store);
    await mutateMachine(machines, 'node01', (m) => {
      m.status.install!.expiresAt = new Date(Date.now() - 1000).toISOString();
      return m;
    });
    const expired = await raw('GET', `/v1/config-center/${MAC}`, { token: null, headers: { 'x-kiver-install-token': token } });
    assert.deepEqual([expired.status, expired.json], [403, { error: { code: 'forbidden', message: BAD_TOKEN } }]);
    // The reaper (by hand, max age 0) deletes its boot files and fails the install; a foreign file stays.
    await writeFile(join(tftpRoot, 'pxelinux.cfg', '01-52-54-00-00-00-ff'), 'DEFAULT local\n');
    const reaped = await admin.post<{ deleted: { path: string }[]; expiredInstalls: string[] }>('/v1/machines/reap', { maxAgeSeconds: 0 });
    assert.equal(reaped.deleted.length, 3);
    // (the scheduled reaper, every second here, may have failed the expired install first)
    assert.deepEqual(await bootFiles(), ['pxelinux.cfg/01-52-54-00-00-00-ff']);
    const failed = await admin.get<MachineView>('/v1/machines/node01');
    assert.equal(failed.status.phase, 'failed');
    assert.match(failed.status.reason!, /did not report/);

    // A fresh install; the installer reports; boot files go at once.
    const again = await admin.post<{ machine: MachineView }>('/v1/machines/node01/install', {});
    assert.equal(again.machine.status.phase, 'installing');
    const token2 = tokenFromBootFile(await readFile(join(tftpRoot, 'pxelinux.cfg', '01-52-54-00-4b-56-77'), 'utf8'));
    assert.notEqual(token2, token);
    assert.equal((await raw('GET', `/v1/config-center/${MAC}`, { token: null, headers: { 'x-kiver-install-token': token } })).status, 403, 'the old token is dead');
    // Removing a machine while it installs needs --force.
    assert.equal((await raw('DELETE', '/v1/machines/node01')).status, 409);
    const done = await raw('POST', `/v1/config-center/${MAC}/installed`, { token: null, headers: { 'x-kiver-install-token': token2, 'content-type': 'application/x-www-form-urlencoded' }, body: '' });
    assert.deepEqual([done.status, done.json], [200, { status: 'installed', machine: 'node01' }]);
    assert.deepEqual(await bootFiles(), ['pxelinux.cfg/01-52-54-00-00-00-ff']);
    assert.equal((await admin.get<MachineView>('/v1/machines/node01')).status.phase, 'installed');
    assert.equal((await raw('GET', `/v1/config-center/${MAC}`, { token: null, headers: { 'x-kiver-install-token': token2 } })).status, 404);

    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    for (const re of [/^kiver_machine_installs_started_total [1-9]/m, /^kiver_machine_installs_finished_total [1-9]/m, /^kiver_machine_installs_failed_total\{reason="expired"\} [1-9]/m,
      /^kiver_machine_installs_failed_total\{reason="conflict"\} [1-9]/m, /^kiver_machine_boot_files_reaped_total [1-9]/m, /^kiver_machine_config_center_denied_total\{status="403"\} [1-9]/m]) {
      assert.match(metrics, re);
    }
    await admin.delete('/v1/machines/node01');
    await rm(join(tftpRoot, 'pxelinux.cfg', '01-52-54-00-00-00-ff'));
  });

  it('the leader runs the reaper on its own: a boot file older than the max age disappears', async () => {
    const w = new BootFileWriter({ tftpRoot, formats: ['pxelinux'] });
    const [path] = await w.write({ machine: 'old', mac: '52:54:00:00:00:aa', kernelUrl: 'http://x/k', initrdUrl: 'http://x/i', args: ['kiver.token=x'], createdAt: new Date(Date.now() - 3 * 3600_000) });
    const [young] = await w.write({ machine: 'young', mac: '52:54:00:00:00:ab', kernelUrl: 'http://x/k', initrdUrl: 'http://x/i', args: ['kiver.token=y'], createdAt: new Date() });
    await until('the scheduled reaper deleted the stale file', async () => !existsSync(path), 5000, 100);
    assert.ok(existsSync(young), 'young boot files stay');
    await rm(young);
  });

  it('CLI: add, import with every bad line, ls/get, install --detach, 409, install following progress to the end', async () => {
    const pw = join(dir, 'bmc-password');
    await writeFile(pw, `${bmc.password}\n`, { mode: 0o600 });
    const add = await cli(['machine', 'add', 'cli01', '--bmc', `ipmi://${bmc.user}@${bmc.address}:${bmc.port}`, '--bmc-password-file', pw,
      '--os', 'debian-12', '--ip', '10.0.2.1/24', '--hostname', 'cli01', '--gateway', '10.0.2.254', '--dns', '10.0.2.253']);
    assert.equal(add.code, 0, add.stderr);
    assert.match(add.stdout, /machine cli01 added \(registered\)/);
    const inUrl = await cli(['machine', 'add', 'cli02', '--bmc', 'ipmi://admin:secret@10.1.0.9', '--os', 'debian-12', '--ip', '10.0.2.2/24', '--hostname', 'cli02']);
    assert.equal(inUrl.code, 2, "exit code 2: bad input");
    assert.match(inUrl.stderr, /^kiver: --bmc: do not put the password in the URL/);

    const bad = join(dir, 'bad.csv');
    await writeFile(bad, 'name,bmc_address,bmc_user,bmc_password,os,ip,hostname\nok1,10.1.0.1,admin,pw,debian-12,10.0.3.1/24,ok1\nbad_2,10.1.0.2,admin,pw,debian-12,10.0.3.2,ok2\nok3,10.1.0.3,admin,,debian-12,10.0.3.3/24,ok3\n');
    const imp = await cli(['machine', 'import', bad]);
    assert.equal(imp.code, 2, "exit code 2: bad input");
    assert.match(imp.stderr, /^kiver: inventory has 3 problems; nothing imported:\n {2}line 3: name: "bad_2" .*\n {2}line 3: identity\.ip: a prefix length is required.*\n {2}line 4: bmc\.password: required\n$/);
    const ls = await cli(['-o', 'json', 'machine', 'ls']);
    assert.deepEqual(JSON.parse(ls.stdout).map((m: MachineView) => m.name), ['cli01'], 'nothing imported');
    const get = await cli(['machine', 'get', 'cli01']);
    assert.match(get.stdout, /BMC: +ipmi:\/\/admin@127\.0\.0\.1:\d+ \(password \(set\)\)/);
    assert.ok(!get.stdout.includes(bmc.password) && !ls.stdout.includes(bmc.password));

    const inspect = await cli(['machine', 'inspect', 'cli01']);
    assert.equal(inspect.code, 0, inspect.stderr);
    assert.match(inspect.stdout, new RegExp(`cli01: power (on|off); MACs ${MAC}; inspected`));

    const det = await cli(['machine', 'install', 'cli01', '--detach']);
    assert.equal(det.code, 0, det.stderr);
    assert.match(det.stdout, new RegExp(`cli01 +${MAC}`));
    const twice = await cli(['machine', 'install', 'cli01']);
    assert.equal(twice.code, 1);
    assert.match(twice.stderr, /kiver: cli01: machine "cli01" is already installing/);
    assert.equal((await cli(['machine', 'rm', 'cli01'])).code, 4, "exit code 4: conflict");
    const rm_ = await cli(['machine', 'rm', 'cli01', '--force']);
    assert.equal(rm_.code, 0, rm_.stderr);
    assert.deepEqual(await bootFiles(), [], 'rm deletes its boot files');

    // Follow an install to the end while this test plays the installer.
    const again = await cli(['machine', 'add', 'cli01', '--bmc', `ipmi://${bmc.user}@${bmc.address}:${bmc.port}`, '--os', 'debian-12', '--ip', '10.0.2.1/24', '--hostname', 'cli01'], { KIVER_BMC_PASSWORD: bmc.password });
    assert.equal(again.code, 0, again.stderr);
    const follow = cli(['machine', 'install', 'cli01', '--timeout', '60s']);
    const pxePath = join(tftpRoot, 'pxelinux.cfg', '01-52-54-00-4b-56-77');
    await until('boot file written', async () => existsSync(pxePath), 20_000);
    const token = tokenFromBootFile(await readFile(pxePath, 'utf8'));
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal((await raw('GET', `/v1/config-center/${MAC}?format=shell`, { token: null, headers: { 'x-kiver-install-token': token } })).status, 200);
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal((await raw('POST', `/v1/config-center/${MAC}/installed?token=${encodeURIComponent(token)}`, { token: null })).status, 200);
    const out = await follow;
    assert.equal(out.code, 0, out.stderr);
    // Progress: phase and elapsed time per machine (stderr is not a terminal: one line per change).
    assert.match(out.stderr, /cli01 +0:0\d +PXE boot, waiting for the installer\n/);
    assert.match(out.stderr, /cli01 +0:0\d +installer running \(identity served\)\n/);
    assert.match(out.stderr, /cli01 +0:0\d +installed\n/);
    assert.match(out.stdout, /cli01 +installed +\d+\.\ds +installed/);

    // A failing install: exit non-zero with the reason.
    const follow2 = cli(['machine', 'install', 'cli01', '--timeout', '60s']);
    await until('boot file written', async () => existsSync(pxePath), 20_000);
    await new Promise((r) => setTimeout(r, 1200));
    const reap = await cli(['machine', 'reap', '--max-age', '0s']);
    assert.equal(reap.code, 0, reap.stderr);
    assert.match(reap.stdout, /deleted 3 boot file\(s\) older than 0s[^]*installs expired \(machines now failed\): cli01/);
    const out2 = await follow2;
    assert.equal(out2.code, 1);
    assert.match(out2.stderr, /cli01 +0:0\d +failed: the installer did not report/);
    assert.match(out2.stderr, /kiver: 1 of 1 machine\(s\) not installed: cli01/);
    await admin.delete('/v1/machines/cli01');
  });

  it('CLI: pxe config passes dnsmasq --test; pxe serve prepares the TFTP root and supervises dnsmasq', async () => {
    const conf = await cli(['pxe', 'config', '--interface', 'br0', '--dhcp-range', '10.77.0.100,10.77.0.199,255.255.255.0', '--tftp-root', '/srv/tftp', '--ra-prefix', 'fd77::', '--mode', 'ipxe']);
    assert.equal(conf.code, 0, conf.stderr);
    for (const l of ['interface=br0', 'dhcp-range=10.77.0.100,10.77.0.199,255.255.255.0,1h', 'tftp-root=/srv/tftp', 'dhcp-boot=tag:ipxe,kiver.ipxe', 'enable-ra']) {
      assert.ok(conf.stdout.split('\n').includes(l), l);
    }
    const f = join(dir, 'dnsmasq.conf');
    await writeFile(f, conf.stdout);
    const t = spawnSync('dnsmasq', ['--test', `--conf-file=${f}`], { encoding: 'utf8' });
    if (!t.error) assert.match(t.stderr + t.stdout, /syntax check OK/);
    const badRange = await cli(['pxe', 'config', '--interface', 'br0', '--dhcp-range', '10.0.0.1']);
    assert.equal(badRange.code, 2, "exit code 2: bad input");
    assert.match(badRange.stderr, /^kiver: --dhcp-range: expected START,END/);

    if (!existsSync('/usr/lib/PXELINUX/lpxelinux.0') || !existsSync('/usr/lib/syslinux/modules/bios/ldlinux.c32')) return; // no loaders to copy
    const data = join(dir, 'pxe');
    await mkdir(data, { recursive: true });
    const fake = join(dir, 'fake-dnsmasq');
    await writeFile(fake, '#!/bin/sh\necho "dnsmasq: started with $2"\nsleep 0.3\nexit 2\n', { mode: 0o755 });
    const mport = await freePort();
    const serve = spawn(process.execPath, [KIVER_BIN, 'pxe', 'serve', '--interface', 'br0', '--dhcp-range', '10.77.0.100,10.77.0.199', '--data-dir', data,
      '--tftp-root', join(dir, 'pxe-tftp'), '--dnsmasq', fake, '--metrics-listen', `127.0.0.1:${mport}`], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    serve.stdout!.on('data', (d) => (out += d));
    serve.stderr!.on('data', (d) => (out += d));
    try {
      await until('two dnsmasq restarts', async () => (out.match(/dnsmasq exited \(2\); restarting/g) ?? []).length >= 2, 10_000);
      assert.match(out, /dnsmasq: started with --conf-file=\S+\/pxe\/dnsmasq\.conf/);
      const metrics = await (await fetch(`http://127.0.0.1:${mport}/metrics`)).text();
      assert.match(metrics, /^kiver_pxe_dnsmasq_restarts_total [2-9]/m);
      const tftp = await readdir(join(dir, 'pxe-tftp'));
      for (const n of ['lpxelinux.0', 'ldlinux.c32', 'kiver.ipxe', 'pxelinux.cfg']) assert.ok(tftp.includes(n), n);
      assert.match(await readFile(join(dir, 'pxe-tftp', 'pxelinux.cfg', 'default'), 'utf8'), /no install is scheduled/);
      assert.match(await readFile(join(data, 'dnsmasq.conf'), 'utf8'), /dhcp-leasefile=\S+\/pxe\/dnsmasq\.leases/);
    } finally {
      const closed = new Promise((r) => serve.once('close', r));
      serve.kill('SIGTERM');
      await closed;
    }
    assert.equal(serve.exitCode, 0, out);
  });
});
