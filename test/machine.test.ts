// Unit tests of the bare-metal provisioning modules (issue 5): fast, no root, no QEMU.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm, stat, writeFile, mkdir, chmod } from 'node:fs/promises';
import { spawnSync } from 'node:child_process';
import { writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import http from 'node:http';
import Fastify from 'fastify';
import { ConflictError, ForbiddenError, InputError, NotFoundError } from '../src/errors.js';
import { InventoryError, BmcAuthError, BmcUnreachableError, BmcUnsupportedError } from '../src/machine/errors.js';
import { parseInventory } from '../src/machine/inventory.js';
import { normalizeMac } from '../src/machine/inventory-validate.js';
import type { MachineSpec } from '../src/model/machine.js';
import { SecretBox, redactMachine, SecretKeyError } from '../src/machine/secrets.js';
import { BootFileWriter, parseMarker } from '../src/machine/bootfiles.js';
import { reapBootFiles } from '../src/machine/reaper.js';
import { generateDnsmasqConfig, DnsmasqSupervisor, prepareTftpRoot } from '../src/machine/dnsmasq.js';
import { ConfigCenter, BAD_TOKEN, NOT_PENDING } from '../src/machine/config-center.js';
import { configCenterRoutes } from '../src/api/routes/config-center.js';
import { startInstall, installMany, type InstallerDeps } from '../src/machine/installer.js';
import { MemoryMachineStore, KvMachineStore, type Clock } from '../src/machine/machine-store.js';
import { importInventory, addMachine, listMachines, removeMachine } from '../src/machine/machines.js';
import { ProfileRegistry, renderSeed, kernelArgs, type OsProfile } from '../src/machine/profiles/index.js';
import { postInstallScript } from '../src/machine/profiles/post-install.js';
import { classifyIpmiFailure, parseFruMacs, IpmiDriver } from '../src/machine/bmc/ipmi.js';
import { RedfishDriver } from '../src/machine/bmc/redfish.js';
import type { BmcDriver } from '../src/machine/bmc/driver.js';
import type { Store, KeyValue, TxnRequest } from '../src/store/store.js';

const GOOD_YAML = `defaults:
  bmc: { driver: ipmi, user: admin, password: s3cret }
  osProfile: debian-12
  identity: { gateway: 10.0.0.1, dns: [10.0.0.2], ntp: [ntp.example.org] }
machines:
  - name: node01
    bmc: { address: 10.1.0.11 }
    macs: [52:54:00:00:00:01]
    identity: { ip: 10.0.0.11/24, hostname: node01.dc1 }
  - name: node02
    bmc: { address: 10.1.0.12, port: 6230 }
    identity: { ip: 10.0.0.12/24, hostname: node02.dc1 }
`;

test('inventory: YAML with defaults parses and normalizes', () => {
  const rows = parseInventory(GOOD_YAML, 'yaml');
  assert.equal(rows.length, 2);
  const a = rows[0].spec;
  assert.equal(rows[0].line, 6);
  assert.deepEqual(a.bmc, { driver: 'ipmi', address: '10.1.0.11', user: 'admin', password: 's3cret' });
  assert.deepEqual(a.identity, { ip: '10.0.0.11', prefix: 24, hostname: 'node01.dc1', gateway: '10.0.0.1', dns: ['10.0.0.2'], ntp: ['ntp.example.org'] });
  assert.equal(rows[1].spec.bmc.port, 6230);
  assert.deepEqual(rows[1].spec.macs, []);
  assert.equal(normalizeMac('5254.0012.3456'), '52:54:00:12:34:56');
  assert.equal(normalizeMac('52-54-00-12-34-5G'), undefined);
});

test('inventory: malformed YAML reports every bad row with its line and field', () => {
  const bad = `machines:
  - name: Node_1
    bmc: { driver: ilo, address: "bad host!", user: admin, password: x }
    osProfile: debian-12
    identity: { ip: 10.0.0.300/24, hostname: n1 }
  - name: node2
    bmc: { address: 10.1.0.2, user: admin, password: x }
    macs: [zz:zz]
    osProfile: debian-12
    identity:
      ip: 10.0.0.2/24
      hostname: node2
      gateway: 192.168.9.1
  - name: node2
    bmc: { address: 10.1.0.3, user: admin }
    osProfile: debian-12
    identity: { ip: 10.0.0.2/24, hostname: node3 }
`;
  assert.throws(() => parseInventory(bad, 'yaml'), (err: unknown) => {
    assert.ok(err instanceof InventoryError);
    const got = err.problems.map((p) => `${p.line}:${p.field}`);
    for (const want of ['2:name', '3:bmc.driver', '3:bmc.address', '5:identity.ip', '8:macs', '13:identity.gateway', '15:bmc.password']) {
      assert.ok(got.includes(want), `missing ${want} in ${got.join(' ')}`);
    }
    assert.equal(err.status, 400);
    assert.match(err.message, /nothing imported/);
    return true;
  });
});

test('inventory: YAML syntax error has a line', () => {
  assert.throws(() => parseInventory('machines:\n  - name: a\n   bad: [\n', 'yaml'), (err: unknown) => err instanceof InventoryError && err.problems[0].line >= 2);
});

test('inventory: CSV good and bad rows, every problem with its line', () => {
  const good = `name,bmc_driver,bmc_address,bmc_user,bmc_password,macs,os,ip,hostname,gateway,dns,ntp
# a comment
n1,ipmi,10.1.0.1,admin,"pa,ss",52:54:00:00:00:01;52:54:00:00:00:02,debian-12,10.0.0.1/24,n1,10.0.0.254,10.0.0.2 10.0.0.3,
n2,redfish,bmc-n2.example,root,pw,,rocky-9,10.0.0.2/24,n2,,,
`;
  const rows = parseInventory(good, 'csv');
  assert.equal(rows.length, 2);
  assert.equal(rows[0].spec.bmc.password, 'pa,ss');
  assert.deepEqual(rows[0].spec.macs, ['52:54:00:00:00:01', '52:54:00:00:00:02']);
  assert.deepEqual(rows[0].spec.identity.dns, ['10.0.0.2', '10.0.0.3']);
  assert.equal(rows[1].line, 4);
  const bad = `name,bmc_address,bmc_user,bmc_password,os,ip,hostname
n1,10.1.0.1,admin,pw,debian-12,10.0.0.1/24,n1
n2,10.1.0.2,admin,,debian-12,10.0.0.2,n2
n3,10.1.0.3,admin,pw,debian-12
n1,10.1.0.4,admin,pw,debian-12,10.0.0.4/24,n4
n5,10.1.0.5,admin,"pw,debian-12,10.0.0.5/24,n5
`;
  assert.throws(() => parseInventory(bad, 'csv'), (err: unknown) => {
    assert.ok(err instanceof InventoryError);
    const got = err.problems.map((p) => `${p.line}:${p.field}`);
    assert.deepEqual(got, ['3:bmc.password', '3:identity.ip', '4:', '5:name', '6:']);
    return true;
  });
});

test('secrets: encrypt/decrypt, key file 0600, context binding, tamper detection, redaction', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'kiver-sec-'));
  try {
    const box = await SecretBox.loadOrCreate(dir);
    const st = await stat(join(dir, 'machine-secrets.key'));
    assert.equal(st.mode & 0o777, 0o600);
    const again = await SecretBox.loadOrCreate(dir);
    const env = box.encrypt('hunter2', 'machine/a/bmc');
    assert.match(env, /^v1:/);
    assert.ok(!env.includes('hunter2'));
    assert.equal(again.decrypt(env, 'machine/a/bmc'), 'hunter2');
    assert.throws(() => box.decrypt(env, 'machine/b/bmc'), SecretKeyError);
    const raw = Buffer.from(env.slice(3), 'base64');
    raw[raw.length - 1] ^= 1;
    assert.throws(() => box.decrypt(`v1:${raw.toString('base64')}`, 'machine/a/bmc'), SecretKeyError);
    await chmod(join(dir, 'machine-secrets.key'), 0o644);
    await assert.rejects(SecretBox.loadOrCreate(dir), /readable by group or others/);
    const store = new MemoryMachineStore();
    const views = await importInventory(store, box, GOOD_YAML, 'yaml');
    const text = JSON.stringify(views) + JSON.stringify(await listMachines(store));
    assert.ok(!text.includes('s3cret') && !text.includes('passwordEnc'), text);
    const stored = (await store.get('node01'))!.value;
    assert.ok(!JSON.stringify(stored).includes('s3cret'));
    assert.equal(box.openBmc('node01', stored.bmc).password, 's3cret');
    assert.equal(redactMachine(stored).bmc.password, '(set)');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('machines: import is all-or-nothing against the store; add validates', async () => {
  const box = SecretBox.fromKey(Buffer.alloc(32, 7));
  const store = new MemoryMachineStore();
  await importInventory(store, box, GOOD_YAML, 'yaml');
  const clash = GOOD_YAML.replace('node02', 'node03').replace('10.0.0.12/24', '10.0.0.13/24').replace('node03.dc1', 'n3');
  await assert.rejects(importInventory(store, box, clash, 'yaml'), (err: unknown) => {
    assert.ok(err instanceof InventoryError);
    assert.deepEqual(err.problems.map((p) => `${p.line}:${p.field}`), ['6:name', '6:macs', '6:identity.ip']);
    return true;
  });
  assert.deepEqual((await listMachines(store)).map((m) => m.name), ['node01', 'node02']);
  await assert.rejects(addMachine(store, box, { name: 'x' }), (e: unknown) => e instanceof InputError && /bmc: required/.test((e as Error).message));
});

const WHEN = new Date('2026-01-01T10:00:00Z');
const entry = (mac: string, createdAt = WHEN) => ({
  machine: 'node01',
  mac,
  kernelUrl: 'http://10.0.0.1/vmlinuz',
  initrdUrl: 'http://10.0.0.1/initrd.img',
  args: ['console=ttyS0', 'kiver.url=http://10.0.0.1/v1/config-center', `kiver.mac=${mac}`, 'kiver.token=TOKEN'],
  createdAt,
});

test('bootfiles: atomic per-MAC files in three formats with marker; foreign files untouched', async () => {
  const root = await mkdtemp(join(tmpdir(), 'kiver-tftp-'));
  try {
    const w = new BootFileWriter({ tftpRoot: root });
    const paths = await w.write(entry('52:54:00:12:34:56'));
    assert.deepEqual(paths.map((p) => p.slice(root.length)), [
      '/pxelinux.cfg/01-52-54-00-12-34-56',
      '/grub/grub.cfg-01-52-54-00-12-34-56',
      '/ipxe/52-54-00-12-34-56.ipxe',
    ]);
    const pxe = await readFile(paths[0], 'utf8');
    assert.match(pxe, /^# kiver:bootfile v1 machine=node01 mac=52:54:00:12:34:56 created=2026-01-01T10:00:00.000Z/);
    assert.match(pxe, /APPEND initrd=http:\/\/10.0.0.1\/initrd.img console=ttyS0 kiver.url=\S+ kiver.mac=52:54:00:12:34:56 kiver.token=TOKEN/);
    assert.match(await readFile(paths[2], 'utf8'), /^#!ipxe\n# kiver:bootfile/);
    assert.match(await readFile(paths[1], 'utf8'), /linux http:\/\/10.0.0.1\/vmlinuz console=ttyS0/);
    assert.deepEqual((await readdir(join(root, 'pxelinux.cfg'))).filter((n) => n.startsWith('.')), []);
    // A file somebody else wrote at a per-MAC path: never overwritten, listed, removed or reaped.
    const foreign = join(root, 'pxelinux.cfg', '01-aa-bb-cc-dd-ee-ff');
    await writeFile(foreign, 'DEFAULT local\n');
    await assert.rejects(w.write(entry('aa:bb:cc:dd:ee:ff')), ConflictError);
    assert.deepEqual(await w.remove('aa:bb:cc:dd:ee:ff'), []);
    const list = await w.list(new Date(WHEN.getTime() + 60_000));
    assert.equal(list.length, 3);
    assert.equal(list[0].ageMs, 60_000);
    assert.ok(parseMarker(pxe));
    assert.throws(() => void w.pathFor('pxelinux', 'nope'));
    await assert.rejects(w.write({ ...entry('52:54:00:12:34:57'), args: ['a b'] }), /whitespace/);
    assert.equal((await w.remove('52:54:00:12:34:56')).length, 3);
    assert.equal(await readFile(foreign, 'utf8'), 'DEFAULT local\n');
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test('reaper: deletes Kiver boot files older than max age, keeps young and foreign ones', async () => {
  const root = await mkdtemp(join(tmpdir(), 'kiver-reap-'));
  try {
    const w = new BootFileWriter({ tftpRoot: root, formats: ['pxelinux', 'ipxe'] });
    const old = new Date(WHEN.getTime() - 3 * 3600_000);
    await w.write(entry('52:54:00:00:00:01', old));
    await w.write(entry('52:54:00:00:00:02', new Date(WHEN.getTime() - 3600_000)));
    await mkdir(join(root, 'pxelinux.cfg'), { recursive: true });
    const foreign = join(root, 'pxelinux.cfg', '01-52-54-00-00-00-03');
    await writeFile(foreign, '# written by hand long ago\nDEFAULT local\n');
    await prepareTftpRoot({ tftpRoot: root, mode: 'pxelinux' }).catch(() => undefined);
    const r = await reapBootFiles({ bootFiles: w, clock: { now: () => WHEN } });
    assert.deepEqual(r.deleted.map((f) => f.mac), ['52:54:00:00:00:01', '52:54:00:00:00:01']);
    assert.equal(r.kept.length, 2);
    const left = (await readdir(join(root, 'pxelinux.cfg'))).sort();
    assert.ok(left.includes('01-52-54-00-00-00-02') && left.includes('01-52-54-00-00-00-03') && !left.includes('01-52-54-00-00-00-01'));
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test('dnsmasq: generated config has DHCP, TFTP, chain-loading, option 175 and the RA fix', () => {
  const c = generateDnsmasqConfig({
    interface: 'br0', dhcpRange: { start: '10.77.0.100', end: '10.77.0.199', netmask: '255.255.255.0' },
    tftpRoot: '/srv/tftp', mode: 'pxelinux', raPrefix: 'fd77::', leaseFile: '/run/k/leases',
  });
  for (const l of ['port=0', 'interface=br0', 'bind-interfaces', 'dhcp-range=10.77.0.100,10.77.0.199,255.255.255.0,1h', 'enable-tftp', 'tftp-root=/srv/tftp',
    'dhcp-match=set:ipxe,175', 'dhcp-boot=tag:!efi-x86_64,lpxelinux.0', 'enable-ra', 'dhcp-range=fd77::,ra-only']) {
    assert.ok(c.split('\n').includes(l), `missing ${l}`);
  }
  const i = generateDnsmasqConfig({ interface: 'eth1', dhcpRange: { start: '192.0.2.0' }, proxy: true, tftpRoot: '/t', mode: 'ipxe' });
  assert.ok(i.includes('dhcp-range=192.0.2.0,proxy') && i.includes('dhcp-boot=tag:ipxe,kiver.ipxe') && i.includes('dhcp-boot=tag:!ipxe,tag:!efi-x86_64,undionly.kpxe'));
  assert.throws(() => generateDnsmasqConfig({ interface: 'br0\nx', dhcpRange: { start: '10.0.0.1', end: '10.0.0.2' }, tftpRoot: '/t', mode: 'ipxe' }));
  // dnsmasq itself accepts the file.
  const f = join(tmpdir(), `kiver-dnsmasq-${process.pid}.conf`);
  writeFileSync(f, c);
  const r = spawnSync('dnsmasq', ['--test', `--conf-file=${f}`], { encoding: 'utf8' });
  rmSync(f, { force: true });
  if (!r.error) assert.match(r.stderr + r.stdout, /syntax check OK/);
});

test('dnsmasq supervisor restarts a dying process and stops cleanly', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'kiver-sup-'));
  try {
    const fake = join(dir, 'fake-dnsmasq');
    await writeFile(fake, '#!/bin/sh\necho "dnsmasq: started $*" >&2\nsleep 0.2\nexit 3\n', { mode: 0o755 });
    const lines: string[] = [];
    const sup = new DnsmasqSupervisor({ configPath: '/x.conf', binary: fake, minDelayMs: 50, onLog: (l) => lines.push(l) });
    sup.start();
    await new Promise((r) => setTimeout(r, 1200));
    await sup.stop();
    assert.ok(sup.restarts >= 2, `restarts ${sup.restarts}`);
    assert.match(lines[0], /started --keep-in-foreground --conf-file=\/x.conf --log-facility=-/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

// ------------------------------------------------------------------------------------
// Installer + config center over a fake BMC

class FakeBmc implements BmcDriver {
  calls: string[] = [];
  power: 'on' | 'off' = 'on';
  constructor(private readonly macs: string[], private readonly fail?: Error, private readonly delayMs = 0) {}
  private async step(name: string) {
    if (this.delayMs) await new Promise((r) => setTimeout(r, this.delayMs));
    if (this.fail) throw this.fail;
    this.calls.push(name);
  }
  async powerStatus() { await this.step('status'); return this.power; }
  async powerOn() { await this.step('on'); }
  async powerOff() { await this.step('off'); }
  async powerReset() { await this.step('reset'); }
  async bootPxeOnce() { await this.step('pxe'); }
  async readMacs() { await this.step('macs'); return this.macs; }
}

const PROFILE: OsProfile = { name: 'debian-12', kind: 'debian-preseed', kernelUrl: 'http://10.0.0.1/d/linux', initrdUrl: 'http://10.0.0.1/d/initrd.gz', params: { mirror: 'http://deb.example/debian' } };

async function rig(opts: { bmcError?: Error; delayMs?: number } = {}) {
  const root = await mkdtemp(join(tmpdir(), 'kiver-inst-'));
  const box = SecretBox.fromKey(Buffer.alloc(32, 1));
  const store = new MemoryMachineStore();
  await importInventory(store, box, GOOD_YAML, 'yaml');
  let now = WHEN;
  const clock: Clock = { now: () => now };
  const bmcs: FakeBmc[] = [];
  const writer = new BootFileWriter({ tftpRoot: root, formats: ['pxelinux'] });
  const deps: InstallerDeps = {
    store, secrets: box, bootFiles: writer, profiles: new ProfileRegistry([PROFILE]), serverUrl: 'http://10.0.0.1:7400', clock,
    bmcFor: (bmc) => {
      assert.equal(bmc.password, 's3cret');
      const b = new FakeBmc(bmc.address === '10.1.0.11' ? ['52:54:00:00:00:01'] : ['52:54:00:00:00:02'], opts.bmcError, opts.delayMs);
      bmcs.push(b);
      return b;
    },
  };
  const events: string[] = [];
  const center = new ConfigCenter({ store, bootFiles: writer, profiles: deps.profiles, clock, onEvent: (e) => events.push(e.type) });
  return { root, store, deps, bmcs, writer, center, events, advance: (ms: number) => { now = new Date(now.getTime() + ms); } };
}

function tokenOf(path: string, text: string): string {
  const m = /kiver\.token=(\S+)/.exec(text);
  assert.ok(m, `no token in ${path}`);
  return m[1];
}

test('installer: MAC from BMC → boot file → installing → PXE once → reset; second install 409', async () => {
  const r = await rig();
  try {
    const started = await startInstall(r.deps, 'node01');
    assert.deepEqual(r.bmcs[0].calls, ['macs', 'pxe', 'status', 'reset']);
    assert.equal(started.machine.status.phase, 'installing');
    assert.equal(started.bootFiles.length, 1);
    assert.ok(!JSON.stringify(started).includes('tokenSha256'));
    await assert.rejects(startInstall(r.deps, 'node01'), (e: unknown) => e instanceof ConflictError && e.status === 409);
    const text = await readFile(started.bootFiles[0], 'utf8');
    assert.match(text, /url=http:\/\/10.0.0.1:7400\/v1\/config-center\/52:54:00:00:00:01\/seed\/\S+\/preseed.cfg/);
    const token = tokenOf(started.bootFiles[0], text);
    // Config center: wrong MAC → 404; wrong token → 403; right token → identity.
    await assert.rejects(r.center.lookup('52:54:00:00:00:99', token), (e: unknown) => e instanceof NotFoundError && e.message === NOT_PENDING);
    await assert.rejects(r.center.lookup('node02', token), (e: unknown) => e instanceof NotFoundError && e.message === NOT_PENDING);
    await assert.rejects(r.center.lookup('52:54:00:00:00:01', 'wrong'), (e: unknown) => e instanceof ForbiddenError && e.message === BAD_TOKEN);
    await assert.rejects(r.center.lookup('52:54:00:00:00:01', undefined), ForbiddenError);
    const id = await r.center.lookup('52-54-00-00-00-01', token);
    assert.deepEqual(id, { name: 'node01', mac: '52:54:00:00:00:01', ip: '10.0.0.11', prefix: 24, hostname: 'node01.dc1', gateway: '10.0.0.1', dns: ['10.0.0.2'], ntp: ['ntp.example.org'], netmask: '255.255.255.0' });
    const seed = await r.center.seed('52:54:00:00:00:01', token, 'preseed.cfg');
    assert.match(seed.body, /late_command/);
    // Report: boot file gone at once, installed, token no longer valid.
    const rep = await r.center.reportInstalled('52:54:00:00:00:01', token);
    assert.deepEqual(rep.removedBootFiles, started.bootFiles);
    assert.deepEqual(await r.writer.list(WHEN), []);
    assert.equal((await r.store.get('node01'))!.value.status.phase, 'installed');
    await assert.rejects(r.center.lookup('52:54:00:00:00:01', token), NotFoundError);
    assert.deepEqual(r.events, ['denied', 'denied', 'denied', 'denied', 'lookup', 'seed', 'installed', 'denied']);
  } finally {
    await rm(r.root, { recursive: true, force: true });
  }
});

test('installer: expired token → 403; reaper marks the install failed', async () => {
  const r = await rig();
  try {
    const s = await startInstall(r.deps, 'node01');
    const token = tokenOf(s.bootFiles[0], await readFile(s.bootFiles[0], 'utf8'));
    r.advance(2 * 3600_000 + 1000);
    await assert.rejects(r.center.lookup('52:54:00:00:00:01', token), ForbiddenError);
    const rr = await reapBootFiles({ bootFiles: r.writer, store: r.store, clock: { now: () => new Date(WHEN.getTime() + 2 * 3600_000 + 1000) } });
    assert.equal(rr.deleted.length, 1);
    assert.deepEqual(rr.expiredInstalls, ['node01']);
    const m = (await r.store.get('node01'))!.value;
    assert.equal(m.status.phase, 'failed');
    assert.match(m.status.reason!, /did not report/);
    // An expired install can be started again.
    await startInstall(r.deps, 'node01');
  } finally {
    await rm(r.root, { recursive: true, force: true });
  }
});

test('installer: bad BMC credentials → clear error, state unchanged, no boot file', async () => {
  const r = await rig({ bmcError: new BmcAuthError('BMC 10.1.0.11 refused the user name or password (FRU read)') });
  try {
    const before = await r.store.get('node01');
    await assert.rejects(startInstall(r.deps, 'node01'), (e: unknown) => e instanceof BmcAuthError && /refused/.test((e as Error).message));
    assert.deepEqual(await r.store.get('node01'), before);
    assert.deepEqual(await r.writer.list(), []);
    await assert.rejects(startInstall(r.deps, 'nope'), NotFoundError);
  } finally {
    await rm(r.root, { recursive: true, force: true });
  }
});

test('installer: installMany runs with a concurrency limit and reports each outcome', async () => {
  const r = await rig({ delayMs: 30 });
  try {
    let live = 0;
    let peak = 0;
    const orig = r.deps.bmcFor;
    r.deps.bmcFor = (b) => {
      const d = orig(b);
      const wrap = <T>(f: () => Promise<T>) => async () => { live++; peak = Math.max(peak, live); try { return await f(); } finally { live--; } };
      return { ...d, readMacs: wrap(() => d.readMacs()), powerStatus: () => d.powerStatus(), powerOn: () => d.powerOn(), powerOff: () => d.powerOff(), powerReset: () => d.powerReset(), bootPxeOnce: () => d.bootPxeOnce() };
    };
    const out = await installMany(r.deps, ['node01', 'node02', 'ghost'], { concurrency: 1 });
    assert.deepEqual(out.map((o) => o.ok), [true, true, false]);
    assert.equal(out[2].error!.status, 404);
    assert.equal(peak, 1);
    await assert.rejects(removeMachine(r.store, r.writer, 'node01', { clock: { now: () => WHEN } }), ConflictError);
    await removeMachine(r.store, r.writer, 'node01', { force: true });
    assert.equal((await r.writer.list()).filter((f) => f.machine === 'node01').length, 0);
  } finally {
    await rm(r.root, { recursive: true, force: true });
  }
});

test('config center routes: 200 JSON/shell, 404/403 bodies reveal nothing, POST installed', async () => {
  const r = await rig();
  const app = Fastify();
  try {
    await app.register(configCenterRoutes, { center: r.center });
    const s = await startInstall(r.deps, 'node01');
    const token = tokenOf(s.bootFiles[0], await readFile(s.bootFiles[0], 'utf8'));
    const unknown = await app.inject({ url: '/v1/config-center/52:54:00:00:00:99', headers: { 'x-kiver-install-token': token } });
    assert.equal(unknown.statusCode, 404);
    assert.deepEqual(unknown.json(), { error: { code: 'not_found', message: NOT_PENDING } });
    const garbage = await app.inject({ url: '/v1/config-center/not-a-mac?token=x' });
    assert.equal(garbage.statusCode, 404);
    assert.equal(garbage.body, unknown.body);
    const wrong = await app.inject({ url: '/v1/config-center/52:54:00:00:00:01?token=nope' });
    assert.equal(wrong.statusCode, 403);
    assert.deepEqual(wrong.json(), { error: { code: 'forbidden', message: BAD_TOKEN } });
    assert.ok(!wrong.body.includes('node01') && !wrong.body.includes('10.0.0.11'));
    const ok = await app.inject({ url: '/v1/config-center/52:54:00:00:00:01', headers: { 'x-kiver-install-token': token } });
    assert.equal(ok.statusCode, 200);
    assert.equal(ok.json().hostname, 'node01.dc1');
    assert.equal(ok.headers['cache-control'], 'no-store');
    const sh = await app.inject({ url: `/v1/config-center/52:54:00:00:00:01?format=shell&token=${token}` });
    assert.match(sh.body, /^KIVER_NAME='node01'\n/);
    assert.match(sh.body, /KIVER_IP='10.0.0.11'\nKIVER_PREFIX='24'\nKIVER_NETMASK='255.255.255.0'\nKIVER_GATEWAY='10.0.0.1'/);
    const seed = await app.inject({ url: `/v1/config-center/52:54:00:00:00:01/seed/${token}/preseed.cfg` });
    assert.equal(seed.statusCode, 200);
    assert.match(seed.body, /d-i preseed\/late_command/);
    const badSeed = await app.inject({ url: `/v1/config-center/52:54:00:00:00:01/seed/x/preseed.cfg` });
    assert.equal(badSeed.statusCode, 403);
    const post = await app.inject({ method: 'POST', url: '/v1/config-center/52:54:00:00:00:01/installed', headers: { 'x-kiver-install-token': token, 'content-type': 'application/x-www-form-urlencoded' }, payload: '' });
    assert.equal(post.statusCode, 200);
    assert.deepEqual(post.json(), { status: 'installed', machine: 'node01' });
    const again = await app.inject({ method: 'POST', url: '/v1/config-center/52:54:00:00:00:01/installed', headers: { 'x-kiver-install-token': token } });
    assert.equal(again.statusCode, 404);
  } finally {
    await app.close();
    await rm(r.root, { recursive: true, force: true });
  }
});

// ------------------------------------------------------------------------------------
// KV store adapter over a minimal in-memory implementation of the store contract

class TinyKv implements Pick<Store, 'get' | 'list' | 'put' | 'delete' | 'txn'> {
  rev = 0;
  m = new Map<string, KeyValue>();
  async get(k: string) { return this.m.get(k); }
  async list(prefix: string) { return { kvs: [...this.m.values()].filter((kv) => kv.key.startsWith(prefix)).sort((a, b) => a.key.localeCompare(b.key)), revision: this.rev }; }
  async put(key: string, value: string) { this.rev++; const p = this.m.get(key); this.m.set(key, { key, value, createRevision: p?.createRevision ?? this.rev, modRevision: this.rev, version: (p?.version ?? 0) + 1, lease: 0 }); return this.rev; }
  async delete(k: string) { const had = this.m.delete(k); if (had) this.rev++; return had; }
  async txn(req: TxnRequest) {
    const ok = req.compare.every((c) => (this.m.get(c.key)?.modRevision ?? 0) === c.modRevision);
    const ops = ok ? req.success : req.failure ?? [];
    if (ops.length) this.rev++;
    for (const op of ops) {
      if (op.type === 'put') { const p = this.m.get(op.key); this.m.set(op.key, { key: op.key, value: op.value, createRevision: p?.createRevision ?? this.rev, modRevision: this.rev, version: (p?.version ?? 0) + 1, lease: 0 }); }
      else if (op.type === 'delete') this.m.delete(op.key);
    }
    return { succeeded: ok, revision: this.rev };
  }
}

test('KvMachineStore: keys under /kiver/machines/, CAS on mod revision, atomic create', async () => {
  const kv = new TinyKv();
  const store = new KvMachineStore(kv as unknown as Store);
  const box = SecretBox.fromKey(Buffer.alloc(32, 2));
  await importInventory(store, box, GOOD_YAML, 'yaml');
  assert.deepEqual([...kv.m.keys()], ['/kiver/machines/node01', '/kiver/machines/node02']);
  const a = (await store.get('node01'))!;
  await store.update(a.value, a.version);
  await assert.rejects(store.update(a.value, a.version), ConflictError);
  await assert.rejects(store.create([a.value]), ConflictError);
  assert.equal(kv.m.size, 2);
  assert.equal(await store.delete('node02'), true);
});

// ------------------------------------------------------------------------------------
// Profiles

test('profiles: every seed ends with the post-install call; the script is valid sh', () => {
  const ctx = { machine: 'node01', mac: '52:54:00:00:00:01', token: 'TOK', serverUrl: 'http://10.0.0.1:7400', identity: { ip: '10.0.0.11', prefix: 24, hostname: 'node01.dc1', gateway: '10.0.0.1', dns: ['10.0.0.2'], ntp: [] } };
  for (const style of ['ifupdown', 'networkmanager', 'netplan'] as const) {
    const script = postInstallScript(ctx, style, '/target');
    const r = spawnSync('sh', ['-n'], { input: script, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.match(script, /KIVER_URL='http:\/\/10.0.0.1:7400\/v1\/config-center\/52:54:00:00:00:01'/);
    assert.match(script, /--post-data "" "\$KIVER_URL\/installed"; fi; }\n[^]*\nreport\n$/);
  }
  const rocky: OsProfile = { name: 'rocky-9', kind: 'rocky-kickstart', kernelUrl: 'http://x/vmlinuz', initrdUrl: 'http://x/initrd.img', params: { repo: 'http://mirror/rocky/9/BaseOS/x86_64/os' } };
  const ks = renderSeed(rocky, ctx, 'ks.cfg').body;
  assert.match(ks, /%post[^]*X-Kiver-Install-Token[^]*\/installed[^]*%end\s*$/);
  const ubuntu: OsProfile = { name: 'ubuntu-24', kind: 'ubuntu-autoinstall', kernelUrl: 'http://x/vmlinuz', initrdUrl: 'http://x/initrd' };
  assert.match(renderSeed(ubuntu, ctx, 'user-data').body, /^#cloud-config\nautoinstall:|late-commands:[^]*kiver-post-install/m);
  assert.ok(kernelArgs(ubuntu, ctx).includes('ds=nocloud-net;s=http://10.0.0.1:7400/v1/config-center/52:54:00:00:00:01/seed/TOK/'));
  assert.throws(() => renderSeed(ubuntu, ctx, 'ks.cfg'), NotFoundError);
  assert.match(renderSeed(PROFILE, ctx, 'preseed.cfg').body, /late_command string echo \S+ \| base64 -d/);
});

// ------------------------------------------------------------------------------------
// BMC drivers without a BMC

test('ipmi: failure classification and FRU MAC parsing', () => {
  const t = 'bmc:623';
  const base = { stdout: '', code: 1, timedOut: false };
  assert.ok(classifyIpmiFailure({ ...base, stderr: 'Loading IANA PEN Registry...\n> RAKP 2 HMAC is invalid\nError: Unable to establish IPMI v2 / RMCP+ session\n' }, 'x', t) instanceof BmcAuthError);
  assert.ok(classifyIpmiFailure({ ...base, stderr: 'RAKP 2 message indicates an error : unauthorized name\n' }, 'x', t) instanceof BmcAuthError);
  assert.ok(classifyIpmiFailure({ ...base, stderr: 'Get Auth Capabilities error\nError issuing Get Channel Authentication Capabilities request\nError: Unable to establish IPMI v2 / RMCP+ session\n' }, 'x', t) instanceof BmcUnreachableError);
  assert.ok(classifyIpmiFailure({ ...base, code: 0, stderr: 'Running Get VSO Capabilities my_addr 0x20, transit 0, target 0x20\nInvalid completion code received: Invalid command\nSet Chassis Boot Parameter 5 failed: Invalid data field in request\n' }, 'x', t) instanceof BmcUnsupportedError);
  assert.equal(classifyIpmiFailure({ ...base, code: 0, stderr: 'Loading IANA PEN Registry...\nInvalid completion code received: Invalid command\n' }, 'x', t), undefined);
  assert.deepEqual(parseFruMacs(' Product Name : X\n Product Extra         : MAC0=52:54:00:12:34:56\n Board Extra : MAC1=52-54-00-12-34-57\n Product Serial : 00:11:22:33:44:55\n'), ['52:54:00:12:34:56', '52:54:00:12:34:57']);
  const argv = new IpmiDriver({ address: 'h', user: 'u', password: 'PASSWORD' }).argv(['power', 'status']);
  assert.ok(!argv.includes('PASSWORD') && argv.includes('-E') && argv.join(' ').includes('-I lanplus -C 3'));
});

test('redfish: power, one-time PXE and MACs against realistic payloads; 401 → auth error', async () => {
  const requests: string[] = [];
  let sys = {
    '@odata.id': '/redfish/v1/Systems/1', Id: '1', PowerState: 'On',
    Boot: { BootSourceOverrideEnabled: 'Disabled', BootSourceOverrideTarget: 'None', 'BootSourceOverrideTarget@Redfish.AllowableValues': ['None', 'Pxe', 'Hdd', 'Cd', 'BiosSetup'] },
    EthernetInterfaces: { '@odata.id': '/redfish/v1/Systems/1/EthernetInterfaces' },
    Actions: { '#ComputerSystem.Reset': { target: '/redfish/v1/Systems/1/Actions/ComputerSystem.Reset', 'ResetType@Redfish.AllowableValues': ['On', 'ForceOff', 'GracefulShutdown', 'ForceRestart', 'Nmi', 'PushPowerButton'] } },
  } as Record<string, unknown>;
  const docs: Record<string, unknown> = {
    '/redfish/v1/Systems': { '@odata.id': '/redfish/v1/Systems', 'Members@odata.count': 1, Members: [{ '@odata.id': '/redfish/v1/Systems/1' }] },
    '/redfish/v1/Systems/1/EthernetInterfaces': { Members: [{ '@odata.id': '/redfish/v1/Systems/1/EthernetInterfaces/NIC.Integrated.1-1-1' }, { '@odata.id': '/redfish/v1/Systems/1/EthernetInterfaces/NIC.Integrated.1-2-1' }] },
    '/redfish/v1/Systems/1/EthernetInterfaces/NIC.Integrated.1-1-1': { Id: 'NIC.Integrated.1-1-1', MACAddress: 'B0:7B:25:00:00:01', PermanentMACAddress: 'B0:7B:25:00:00:01', LinkStatus: 'LinkUp' },
    '/redfish/v1/Systems/1/EthernetInterfaces/NIC.Integrated.1-2-1': { Id: 'NIC.Integrated.1-2-1', MACAddress: 'b0:7b:25:00:00:02' },
  };
  const srv = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      requests.push(`${req.method} ${req.url} ${body}`);
      if (req.headers.authorization !== `Basic ${Buffer.from('root:calvin').toString('base64')}`) {
        res.writeHead(401, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { code: 'Base.1.8.GeneralError', message: 'Unauthorized' } }));
        return;
      }
      if (req.method === 'PATCH' && req.url === '/redfish/v1/Systems/1') {
        sys = { ...sys, Boot: { ...(sys.Boot as object), ...JSON.parse(body).Boot } };
        res.writeHead(204).end();
        return;
      }
      if (req.method === 'POST' && req.url === '/redfish/v1/Systems/1/Actions/ComputerSystem.Reset') {
        const t = JSON.parse(body).ResetType;
        sys.PowerState = t === 'ForceOff' ? 'Off' : 'On';
        res.writeHead(204).end();
        return;
      }
      const doc = req.url === '/redfish/v1/Systems/1' ? sys : docs[req.url!];
      if (!doc) { res.writeHead(404).end(); return; }
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(doc));
    });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  try {
    const d = new RedfishDriver({ address: '127.0.0.1', port, user: 'root', password: 'calvin', scheme: 'http' });
    assert.equal(await d.powerStatus(), 'on');
    assert.deepEqual(await d.readMacs(), ['b0:7b:25:00:00:01', 'b0:7b:25:00:00:02']);
    await d.bootPxeOnce();
    assert.deepEqual((sys.Boot as Record<string, string>).BootSourceOverrideTarget, 'Pxe');
    assert.deepEqual((sys.Boot as Record<string, string>).BootSourceOverrideEnabled, 'Once');
    await d.powerReset();
    assert.ok(requests.some((r) => r === 'POST /redfish/v1/Systems/1/Actions/ComputerSystem.Reset {"ResetType":"ForceRestart"}'));
    await d.powerOff();
    assert.equal(await d.powerStatus(), 'off');
    const bad = new RedfishDriver({ address: '127.0.0.1', port, user: 'root', password: 'wrong', scheme: 'http' });
    await assert.rejects(bad.powerStatus(), BmcAuthError);
    const gone = new RedfishDriver({ address: '127.0.0.1', port: 1, user: 'root', password: 'x', scheme: 'http', retries: 0 });
    await assert.rejects(gone.powerStatus(), BmcUnreachableError);
  } finally {
    srv.close();
  }
});

test('specs never carry clear passwords into boot files or logs', () => {
  const spec: MachineSpec = parseInventory(GOOD_YAML, 'yaml')[0].spec;
  assert.equal(spec.bmc.password, 's3cret');
});
