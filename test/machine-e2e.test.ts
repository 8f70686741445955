// End-to-end provisioning (issue 5) with real tools in a network namespace: Kiver's
// dnsmasq config, ipmi_sim as the BMC (driven through Kiver's ipmitool driver), a QEMU
// (TCG) machine with an empty disk, the config center on a bare fastify. Then the
// talk's incident: a stale boot file + a broken boot sector reinstall the machine;
// after the reaper the same failure leaves it idle. Prints the timeline of each phase.
// Run alone: node --test --test-force-exit dist/test/machine-e2e.test.js (root).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import { ConflictError } from '../src/errors.js';
import { bmcDriverFactory } from '../src/machine/bmc/index.js';
import { BootFileWriter } from '../src/machine/bootfiles.js';
import { ConfigCenter, hashToken, type ConfigCenterEvent } from '../src/machine/config-center.js';
import { configCenterRoutes } from '../src/machine/config-center-routes.js';
import { BmcAuthError, BmcUnreachableError } from '../src/machine/errors.js';
import { startInstall, type InstallerDeps } from '../src/machine/installer.js';
import { importInventory } from '../src/machine/machines.js';
import { MemoryMachineStore, mutateMachine, withPhase, type Clock } from '../src/machine/machine-store.js';
import { ProfileRegistry, kernelArgs } from '../src/machine/profiles/index.js';
import { reapBootFiles } from '../src/machine/reaper.js';
import { SecretBox } from '../src/machine/secrets.js';
import { MachineLab, sleep } from './harness/machine-lab.js';

const log = (s: string) => process.stdout.write(`# ${s}\n`);
const why = MachineLab.unavailable(log);

function timeline(title: string, t0: number, marks: [string, number | undefined][]): void {
  log(`timeline: ${title}`);
  for (const [label, at] of marks) log(`  ${label.padEnd(34)} ${at === undefined ? '—' : `+${((at - t0) / 1000).toFixed(1)} s`}`);
}

test('machine e2e: install over PXE with the config center, then the stale-boot-file incident', { skip: why, timeout: 600_000 }, async () => {
  const store = new MemoryMachineStore();
  const secrets = SecretBox.fromKey(randomBytes(32));
  let skewMs = 0; // the Kiver side's clock; moved forward to age boot files past the reaper's max age
  const clock: Clock = { now: () => new Date(Date.now() + skewMs) };
  const events: (ConfigCenterEvent & { real: number })[] = [];
  let writer!: BootFileWriter;
  let center!: ConfigCenter;
  const profiles = new ProfileRegistry();

  const lab = await MachineLab.start({
    log,
    setupHttp: async (app, l) => {
      writer = new BootFileWriter({ tftpRoot: l.tftpRoot });
      profiles.add({
        name: 'kiver-test', kind: 'busybox-test',
        kernelUrl: `${l.serverUrl}/lab/vmlinuz`, initrdUrl: `${l.serverUrl}/lab/initrd.img`,
        append: ['console=ttyS0', 'quiet'], params: { imageUrl: `${l.serverUrl}/lab/os.img.gz` },
      });
      center = new ConfigCenter({ store, bootFiles: writer, profiles, clock, onEvent: (e) => events.push({ ...e, real: Date.now() }) });
      await app.register(configCenterRoutes, { center });
    },
  });
  try {
    const ipmi = { commandPrefix: lab.nsExec, timeoutMs: 10_000 };
    const deps: InstallerDeps = {
      store, secrets, bootFiles: writer, profiles, serverUrl: lab.serverUrl, clock,
      bmcFor: bmcDriverFactory({ ipmi }),
    };
    await importInventory(store, secrets, `machines:
  - name: node01
    bmc: { driver: ipmi, address: ${lab.bmc.address}, port: ${lab.bmc.port}, user: ${lab.bmc.user}, password: "${lab.bmc.password}" }
    osProfile: kiver-test
    identity: { ip: 10.77.0.50/24, hostname: node01, gateway: 10.77.0.1, dns: [10.77.0.1] }
  - name: badpw
    bmc: { driver: ipmi, address: ${lab.bmc.address}, port: ${lab.bmc.port}, user: ${lab.bmc.user}, password: not-the-password }
    osProfile: kiver-test
    identity: { ip: 10.77.0.51/24, hostname: badpw }
  - name: gone
    bmc: { driver: ipmi, address: 127.0.0.1, port: 6231, user: admin, password: x }
    osProfile: kiver-test
    identity: { ip: 10.77.0.52/24, hostname: gone }
`, 'yaml');
    const pxeFile = new RegExp(`sent \\S+/pxelinux\\.cfg/01-${lab.mac.replace(/:/g, '-')} `);

    // Faults at the BMC: wrong password → clear error, state unchanged, no boot file;
    // unreachable BMC → timeout error, state unchanged.
    {
      const before = JSON.stringify(await store.get('badpw'));
      await assert.rejects(startInstall(deps, 'badpw'), (e: unknown) => e instanceof BmcAuthError && /refused the user name or password/.test((e as Error).message));
      assert.equal(JSON.stringify(await store.get('badpw')), before);
      const t = Date.now();
      await assert.rejects(startInstall(deps, 'gone'), (e: unknown) => e instanceof BmcUnreachableError && (e as BmcUnreachableError).status === 503);
      log(`unreachable BMC reported after ${((Date.now() - t) / 1000).toFixed(1)} s`);
      assert.equal((await store.get('gone'))!.value.status.phase, 'registered');
      assert.deepEqual(await writer.list(), []);
    }

    // ---------------------------------------------------------------- 1. install
    const started = await startInstall(deps, 'node01');
    const t0 = started.resetAt.getTime();
    assert.deepEqual(started.macs, [lab.mac]);
    await assert.rejects(startInstall(deps, 'node01'), (e: unknown) => e instanceof ConflictError && e.status === 409);
    // The config center over the lab network, as any host there would try it.
    // (async: the server runs in this process)
    const probe = (path: string, header?: string) => new Promise<string>((resolve) => {
      execFile('ip', ['netns', 'exec', lab.ns, '/bin/busybox', 'wget', '-q', '-O', '-', ...(header ? ['--header', header] : []), `${lab.serverUrl}${path}`], { timeout: 10_000 }, (_err, stdout, stderr) => resolve(`${stdout}${stderr}`));
    });
    assert.match(await probe('/v1/config-center/52:54:00:99:99:99?token=x'), /404 Not Found/);
    assert.match(await probe(`/v1/config-center/${lab.mac}`, 'X-Kiver-Install-Token: guessed'), /403 Forbidden/);
    assert.match(await probe(`/v1/config-center/${lab.mac}?token=`), /403 Forbidden/);
    const fetched = await lab.waitFor(lab.dnsmasqLog, pxeFile, t0, 60_000, 'the per-MAC boot file over TFTP');
    const disk1 = await lab.waitFor(lab.serial, /kiver-os: booted from disk/, t0, 150_000, 'boot from disk after install');
    const lookup1 = events.find((e) => e.type === 'lookup' && e.real >= t0);
    const installed1 = events.find((e) => e.type === 'installed' && e.real >= t0);
    timeline('install (BMC reset → booted from its own disk)', t0, [
      ['BMC reset (one-time PXE)', t0],
      ['per-MAC boot file fetched (TFTP)', fetched.at],
      ['config center request', lookup1?.real],
      ['reported installed', installed1?.real],
      ['booted from its own disk', disk1.at],
    ]);
    assert.ok(lookup1 && installed1, 'config center saw the lookup and the report');
    assert.ok(lookup1.real - t0 <= 30_000, `reset → config center ${lookup1.real - t0} ms (target ≤ 30 s)`);
    assert.deepEqual(await writer.list(), [], 'boot files are gone once the install reported');
    const m1 = (await store.get('node01'))!.value;
    assert.equal(m1.status.phase, 'installed');
    assert.match(disk1.line, /hostname=node01 ip=10\.77\.0\.50\/24/);
    assert.ok(lab.serial.some((e) => e.at >= t0 && /kiver-installer: identity node01 10\.77\.0\.50\/24 gw 10\.77\.0\.1/.test(e.line)));
    assert.ok(await lab.ping('10.77.0.50'), 'the installed machine answers on its assigned address');

    // A stale boot file, as an install that never reported would leave it (old behaviour).
    const leaveStaleBootFile = async () => {
      const token = randomBytes(32).toString('base64url');
      const createdAt = clock.now();
      const profile = profiles.get('kiver-test');
      const files = await writer.write({
        machine: 'node01', mac: lab.mac, kernelUrl: profile.kernelUrl, initrdUrl: profile.initrdUrl,
        args: kernelArgs(profile, { machine: 'node01', mac: lab.mac, token, serverUrl: lab.serverUrl, identity: m1.identity }), createdAt,
      });
      await mutateMachine(store, 'node01', (m) => {
        const n = withPhase(m, 'installing', createdAt, 'install never reported (test: stale boot file)');
        n.status.install = { tokenSha256: hashToken(token), startedAt: createdAt.toISOString(), expiresAt: new Date(createdAt.getTime() + 2 * 3600_000).toISOString(), osProfile: 'kiver-test', serverUrl: lab.serverUrl, macs: [lab.mac], bootFiles: files };
        return n;
      });
    };
    const bmc = deps.bmcFor(secrets.openBmc('node01', m1.bmc));

    // ------------------------------------------- 2. incident: stale file + broken disk
    await leaveStaleBootFile();
    lab.zeroBootSector();
    await bmc.powerReset(); // a plain reboot: no PXE override, the firmware falls back to the network
    const t1 = Date.now();
    const fetched2 = await lab.waitFor(lab.dnsmasqLog, pxeFile, t1, 60_000, 'the stale boot file over TFTP');
    const disk2 = await lab.waitFor(lab.serial, /kiver-os: booted from disk/, t1, 150_000, 'boot from disk after the unwanted reinstall');
    const lookup2 = events.find((e) => e.type === 'lookup' && e.real >= t1);
    const installed2 = events.find((e) => e.type === 'installed' && e.real >= t1);
    timeline('incident without the reaper (reset → reinstalled itself)', t1, [
      ['reset with zeroed boot sector', t1],
      ['stale boot file fetched (TFTP)', fetched2.at],
      ['config center request', lookup2?.real],
      ['reported installed (disk wiped)', installed2?.real],
      ['booted from its own disk', disk2.at],
    ]);
    assert.ok(lookup2 && installed2, 'the machine reinstalled itself from the stale boot file');
    assert.ok(!lab.bootSectorIsZero(), 'the reinstall rewrote the disk');

    // ----------------------------------------------- 3. same failure after the reaper
    await leaveStaleBootFile();
    skewMs += 2 * 3600_000 + 60_000; // the boot file is now older than 2 h
    const reaped = await reapBootFiles({ bootFiles: writer, store, clock });
    assert.equal(reaped.deleted.length, 3, 'pxelinux, grub and ipxe files reaped');
    assert.deepEqual(reaped.expiredInstalls, ['node01']);
    assert.deepEqual(await writer.list(), []);
    lab.zeroBootSector();
    const before = events.length;
    await bmc.powerReset();
    const t2 = Date.now();
    const idle = await lab.waitFor(lab.serial, /Kiver: no install is scheduled for this machine/, t2, 60_000, 'the pxelinux default (no per-MAC file)');
    await sleep(8000);
    timeline('incident after the reaper (reset → idle)', t2, [
      ['reset with zeroed boot sector', t2],
      ['PXE: no per-MAC file, default says idle', idle.at],
      ['config center request', events.slice(before).find((e) => e.type === 'lookup')?.real],
    ]);
    assert.deepEqual(events.slice(before), [], 'no config-center traffic: nothing was reinstalled');
    assert.ok(lab.bootSectorIsZero(), 'the disk was not touched');
    assert.equal((await store.get('node01'))!.value.status.phase, 'failed');
  } finally {
    if (process.env.KIVER_LAB_TRACE) {
      const all = [...lab.serial.map((e) => ({ ...e, src: 'serial' })), ...lab.dnsmasqLog.map((e) => ({ ...e, src: 'dnsmasq' })), ...lab.chassis.map((e) => ({ ...e, src: 'bmc' }))].sort((a, b) => a.at - b.at);
      const z = all[0]?.at ?? 0;
      for (const e of all) log(`${((e.at - z) / 1000).toFixed(1).padStart(7)} ${e.src.padEnd(7)} ${e.line.slice(0, 150)}`);
    }
    await lab.stop();
  }
});
