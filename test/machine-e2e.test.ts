// End-to-end provisioning (issue 5) with real tools in a network namespace, driven the
// way an operator does it: the Kiver server (KiverServer, in this process, reached from
// the lab network through a forwarder) with its API, config center and boot-file
// writer; `kiver machine add|import|install|reap` as child processes; dnsmasq configured
// and supervised by `kiver pxe serve`; ipmi_sim as the BMC (through Kiver's ipmitool
// driver) of a QEMU (TCG) machine with an empty disk. Then the talk's incident: a stale
// boot file + a broken boot sector reinstall the machine; after the reaper the same
// failure leaves it idle. Prints the timeline of each phase.
// Run alone: npm run e2e:machine (root).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KiverServer } from '../src/server/server.js';
import { ApiClient } from '../src/client/api-client.js';
import { createLogger } from '../src/log.js';
import { IpmiDriver } from '../src/machine/bmc/ipmi.js';
import { BootFileWriter } from '../src/machine/bootfiles.js';
import { hashToken } from '../src/machine/config-center.js';
import { KvMachineStore, mutateMachine, withPhase } from '../src/machine/machine-store.js';
import { kernelArgs, type OsProfile } from '../src/machine/profiles/index.js';
import type { MachineView } from '../src/model/machine.js';
import { KIVER_BIN } from './harness/kiver.js';
import { MachineLab, sleep } from './harness/machine-lab.js';

const log = (s: string) => process.stdout.write(`# ${s}\n`);
const why = MachineLab.unavailable(log);

function timeline(title: string, t0: number, marks: [string, number | undefined][]): void {
  log(`timeline: ${title}`);
  for (const [label, at] of marks) log(`  ${label.padEnd(40)} ${at === undefined ? '—' : `+${((at - t0) / 1000).toFixed(1)} s`}`);
}

interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

test('machine e2e: kiver machine add + install over PXE through the Kiver server, then the stale-boot-file incident', { timeout: 600_000 }, async () => {
  if (why) throw new Error(`the machine lab cannot run here: ${why}`);
  const t00 = Date.now();
  const lab = await MachineLab.start({ log });
  const dir = await mkdtemp(join(tmpdir(), 'kiver-machine-e2e-'));
  let server: KiverServer | undefined;
  try {
    const profile: OsProfile = {
      name: 'kiver-test', kind: 'busybox-test',
      kernelUrl: `${lab.serverUrl}/lab/vmlinuz`, initrdUrl: `${lab.serverUrl}/lab/initrd.img`,
      append: ['console=ttyS0', 'quiet'], params: { imageUrl: `${lab.serverUrl}/lab/os.img.gz` },
    };
    server = await KiverServer.start({
      dataDir: join(dir, 'state'), listen: '127.0.0.1:0', log: createLogger('kiver-e2e', process.env.KIVER_LAB_TRACE ? 'info' : 'error'),
      machines: {
        tftpRoot: lab.tftpRoot, serverUrl: lab.kiverUrl, profiles: [profile],
        // What `kiver server --bmc-netns <lab>` does: ipmitool runs in the lab's namespace.
        bmc: { ipmi: { commandPrefix: lab.nsExec }, timeoutMs: 10_000 },
        reapIntervalMs: 3600_000, // the reaper runs once at start; the test runs it by hand
      },
    });
    await lab.connectKiver(Number(new URL(server.url).port));
    const admin = new ApiClient({ servers: [server.url], token: server.tokens.admin });
    const machines = new KvMachineStore(server.store);
    const get = (name: string) => admin.get<MachineView>(`/v1/machines/${name}`);
    const eventAt = (m: MachineView, type: string, since: number) => {
      const e = m.status.events.find((x) => x.type === type && Date.parse(x.at) >= since);
      return e ? Date.parse(e.at) : undefined;
    };
    const kiver = (...args: string[]) => new Promise<CliRun>((resolve) => {
      const t = Date.now();
      const p = spawn(process.execPath, [KIVER_BIN, ...args], {
        env: { ...process.env, KIVER_ADDR: server!.url, KIVER_TOKEN: server!.tokens.admin, KIVER_HOME: join(dir, 'home') },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      p.stdout.on('data', (d) => (stdout += d));
      p.stderr.on('data', (d) => (stderr += d));
      p.on('close', (code) => resolve({ code: code ?? 1, stdout, stderr, ms: Date.now() - t }));
    });
    log(`lab and Kiver server up after ${((Date.now() - t00) / 1000).toFixed(1)} s; the machine reaches Kiver at ${lab.kiverUrl}`);

    // ------------------------------------------------------------ inventory by CLI
    const pwFile = join(dir, 'bmc.pw');
    await writeFile(pwFile, `${lab.bmc.password}\n`, { mode: 0o600 });
    const add = await kiver('machine', 'add', 'node01', '--bmc', `ipmi://${lab.bmc.user}@${lab.bmc.address}:${lab.bmc.port}`, '--bmc-password-file', pwFile,
      '--os', 'kiver-test', '--ip', '10.77.0.50/24', '--hostname', 'node01', '--gateway', '10.77.0.1', '--dns', '10.77.0.1');
    assert.equal(add.code, 0, add.stderr);
    const inventory = join(dir, 'faults.yaml');
    await writeFile(inventory, `defaults:
  osProfile: kiver-test
  bmc: { driver: ipmi, user: ${lab.bmc.user} }
machines:
  - name: badpw
    bmc: { address: ${lab.bmc.address}, port: ${lab.bmc.port}, password: not-the-password }
    identity: { ip: 10.77.0.51/24, hostname: badpw }
  - name: gone
    bmc: { address: 127.0.0.1, port: 6231, password: x }
    identity: { ip: 10.77.0.52/24, hostname: gone }
`);
    const imp = await kiver('machine', 'import', inventory);
    assert.equal(imp.code, 0, imp.stderr);
    assert.match(imp.stdout, /imported 2 machines: badpw, gone/);
    const pxeFile = new RegExp(`sent \\S+/pxelinux\\.cfg/01-${lab.mac.replace(/:/g, '-')} `);

    // Faults at the BMC: wrong password → clear error, state unchanged, no boot file;
    // unreachable BMC → timeout error, state unchanged.
    {
      const before = JSON.stringify(await get('badpw'));
      const bad = await kiver('machine', 'install', 'badpw');
      assert.equal(bad.code, 1);
      assert.match(bad.stderr, /kiver: badpw: BMC 127\.0\.0\.1:623 refused the user name or password/);
      assert.equal(JSON.stringify(await get('badpw')), before, 'state unchanged');
      const gone = await kiver('machine', 'install', 'gone', '--detach');
      assert.equal(gone.code, 1);
      assert.match(gone.stderr, /kiver: gone: BMC 127\.0\.0\.1:6231 (is unreachable|did not answer in time)/);
      log(`wrong BMC password reported after ${(bad.ms / 1000).toFixed(1)} s; unreachable BMC after ${(gone.ms / 1000).toFixed(1)} s (CLI round trip)`);
      assert.equal((await get('gone')).status.phase, 'registered');
      assert.deepEqual(await new BootFileWriter({ tftpRoot: lab.tftpRoot }).list(), []);
    }

    // ---------------------------------------------------------------- 1. install
    const tStart = Date.now();
    const install = kiver('machine', 'install', 'node01', '--timeout', '4m');
    let m = await (async () => {
      for (;;) {
        const x = await get('node01');
        if (x.status.phase === 'installing' && eventAt(x, 'reset', tStart)) return x;
        await sleep(100);
      }
    })();
    const t0 = eventAt(m, 'reset', tStart)!;
    assert.deepEqual(m.status.install?.macs, [lab.mac], 'MAC read from the BMC');
    const twice = await kiver('machine', 'install', 'node01', '--detach');
    assert.equal(twice.code, 1);
    assert.match(twice.stderr, /kiver: node01: machine "node01" is already installing/);
    // The config center over the lab network, as any host there would try it.
    const probe = (path: string, header?: string) => new Promise<string>((resolve) => {
      execFile('ip', ['netns', 'exec', lab.ns, '/bin/busybox', 'wget', '-q', '-O', '-', ...(header ? ['--header', header] : []), `${lab.kiverUrl}${path}`], { timeout: 10_000 }, (_err, stdout, stderr) => resolve(`${stdout}${stderr}`));
    });
    // One answer for an unknown MAC, a machine not installing and a bad token: nothing tells which MACs install.
    assert.match(await probe('/v1/config-center/52:54:00:99:99:99?token=x'), /403 Forbidden/);
    assert.match(await probe(`/v1/config-center/${lab.mac}`, 'X-Kiver-Install-Token: guessed'), /403 Forbidden/);
    assert.match(await probe(`/v1/config-center/${lab.mac}?token=`), /403 Forbidden/);
    assert.match(await probe('/v1/machines'), /401 Unauthorized/);
    const fetched = await lab.waitFor(lab.dnsmasqLog, pxeFile, t0, 60_000, 'the per-MAC boot file over TFTP');
    const inst = await install;
    assert.equal(inst.code, 0, `${inst.stdout}\n${inst.stderr}`);
    for (const l of inst.stderr.trim().split('\n')) log(`  kiver machine install| ${l}`);
    assert.match(inst.stderr, /node01 +\d:\d\d +PXE boot, waiting for the installer\n/);
    assert.match(inst.stderr, /node01 +\d:\d\d +installer running \(identity served\)\n/);
    assert.match(inst.stdout, /node01 +installed +\d+\.\ds +installed/);
    const disk1 = await lab.waitFor(lab.serial, /kiver-os: booted from disk/, t0, 150_000, 'boot from disk after install');
    m = await get('node01');
    const lookup1 = eventAt(m, 'identity', t0);
    const installed1 = Date.parse(m.status.timestamps.installed!);
    timeline('install (BMC reset → booted from its own disk)', t0, [
      ['BMC reset (one-time PXE)', t0],
      ['per-MAC boot file fetched (TFTP)', fetched.at],
      ['config center request', lookup1],
      ['reported installed', installed1],
      ['booted from its own disk', disk1.at],
    ]);
    assert.ok(lookup1, 'the config center served the identity');
    // The ≤ 30 s target is a speed goal: the timeline above prints it (README figures);
    // the test asserts the order of events, not the machine's speed under load.
    assert.ok(fetched.at <= lookup1 && lookup1 <= installed1, 'boot file, then identity, then installed');
    assert.equal(m.status.phase, 'installed');
    assert.deepEqual(await new BootFileWriter({ tftpRoot: lab.tftpRoot }).list(), [], 'boot files are gone once the install reported');
    assert.match(disk1.line, /hostname=node01 ip=10\.77\.0\.50\/24/);
    assert.ok(lab.serial.some((e) => e.at >= t0 && /kiver-installer: identity node01 10\.77\.0\.50\/24 gw 10\.77\.0\.1/.test(e.line)));
    assert.ok(await lab.ping('10.77.0.50'), 'the installed machine answers on its assigned address');

    // A stale boot file, as an install that never reported would leave it (old behaviour);
    // `ageMs` backdates it, as if it had been left that long ago.
    const writer = new BootFileWriter({ tftpRoot: lab.tftpRoot });
    const leaveStaleBootFile = async (ageMs: number) => {
      const token = randomBytes(32).toString('base64url');
      const createdAt = new Date(Date.now() - ageMs);
      const files = await writer.write({
        machine: 'node01', mac: lab.mac, kernelUrl: profile.kernelUrl, initrdUrl: profile.initrdUrl,
        args: kernelArgs(profile, { machine: 'node01', mac: lab.mac, token, serverUrl: lab.kiverUrl, identity: m.identity }), createdAt,
      });
      await mutateMachine(machines, 'node01', (x) => {
        const n = withPhase(x, 'installing', createdAt, 'install never reported (test: stale boot file)');
        n.status.install = { tokenSha256: hashToken(token), startedAt: createdAt.toISOString(), expiresAt: new Date(createdAt.getTime() + 2 * 3600_000).toISOString(), osProfile: 'kiver-test', serverUrl: lab.kiverUrl, macs: [lab.mac], bootFiles: files };
        return n;
      });
    };
    // The disk broke and the machine rebooted by itself: a plain reset, no PXE override.
    const bmc = new IpmiDriver({ ...lab.bmc, commandPrefix: lab.nsExec });

    // ------------------------------------------- 2. incident: stale file + broken disk
    await leaveStaleBootFile(0);
    lab.zeroBootSector();
    await bmc.powerReset();
    const t1 = Date.now();
    const fetched2 = await lab.waitFor(lab.dnsmasqLog, pxeFile, t1, 60_000, 'the stale boot file over TFTP');
    const disk2 = await lab.waitFor(lab.serial, /kiver-os: booted from disk/, t1, 150_000, 'boot from disk after the unwanted reinstall');
    m = await get('node01');
    const lookup2 = eventAt(m, 'identity', t1);
    const installed2 = m.status.phase === 'installed' ? Date.parse(m.status.timestamps.installed!) : undefined;
    timeline('incident without the reaper (reset → reinstalled itself)', t1, [
      ['reset with zeroed boot sector', t1],
      ['stale boot file fetched (TFTP)', fetched2.at],
      ['config center request', lookup2],
      ['reported installed (disk wiped)', installed2],
      ['booted from its own disk', disk2.at],
    ]);
    assert.ok(lookup2 && installed2 && installed2 >= t1, 'the machine reinstalled itself from the stale boot file');
    assert.ok(!lab.bootSectorIsZero(), 'the reinstall rewrote the disk');

    // ----------------------------------------------- 3. same failure after the reaper
    await leaveStaleBootFile(2 * 3600_000 + 60_000); // left 2 h 1 min ago
    const reap = await kiver('machine', 'reap');
    assert.equal(reap.code, 0, reap.stderr);
    assert.match(reap.stdout, /deleted 3 boot file\(s\) older than 7200s/);
    assert.match(reap.stdout, /installs expired \(machines now failed\): node01/);
    assert.deepEqual(await writer.list(), []);
    lab.zeroBootSector();
    await bmc.powerReset();
    const t2 = Date.now();
    const idle = await lab.waitFor(lab.serial, /Kiver: no install is scheduled for this machine/, t2, 60_000, 'the pxelinux default (no per-MAC file)');
    await sleep(8000);
    m = await get('node01');
    timeline('incident after the reaper (reset → idle)', t2, [
      ['reset with zeroed boot sector', t2],
      ['PXE: no per-MAC file, default says idle', idle.at],
      ['config center request', eventAt(m, 'identity', t2)],
    ]);
    assert.equal(eventAt(m, 'identity', t2), undefined, 'no config-center traffic: nothing was reinstalled');
    assert.ok(lab.bootSectorIsZero(), 'the disk was not touched');
    assert.equal(m.status.phase, 'failed');
    assert.match(m.status.reason ?? '', /did not report/);
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    assert.match(metrics, /^kiver_machine_installs_finished_total [1-9]/m);
    assert.match(metrics, /^kiver_machine_boot_files_reaped_total [1-9]/m);
    log(`whole scenario ${((Date.now() - t00) / 1000).toFixed(1)} s`);
  } finally {
    if (process.env.KIVER_LAB_TRACE) {
      const all = [...lab.serial.map((e) => ({ ...e, src: 'serial' })), ...lab.dnsmasqLog.map((e) => ({ ...e, src: 'dnsmasq' })), ...lab.chassis.map((e) => ({ ...e, src: 'bmc' }))].sort((a, b) => a.at - b.at);
      const z = all[0]?.at ?? 0;
      for (const e of all) log(`${((e.at - z) / 1000).toFixed(1).padStart(7)} ${e.src.padEnd(7)} ${e.line.slice(0, 150)}`);
    }
    await server?.close();
    await lab.stop();
    await rm(dir, { recursive: true, force: true });
  }
});
