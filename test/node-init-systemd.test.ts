/**
 * The systemd path of `kiver node init`, for real: a Debian root with systemd as its
 * init (cached), booted with systemd-nspawn (Debian's systemd-container; it shares this
 * machine's network, so the node listens on a loopback address of its own). Node and
 * this checkout are bind-mounted read-only; `kiver node init --role control` runs
 * inside the container, where systemd is PID 1. Checked: the units are written,
 * enabled and active, Debian's own etcd.service is masked, a second run has nothing
 * to do, systemd restarts a killed etcd, and node leave stops and removes the units.
 * (The compute role's systemd path would need Docker inside the container; not here.)
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { KIVER_BIN, until } from './harness/kiver.js';
import { httpsGet } from './harness/https-get.js';
import { CONTROL_PACKAGES, ensureDebs, makeNodeRoot } from './harness/node-root.js';

interface CmdOut { code: number; out: string }

const REPO = resolve(dirname(KIVER_BIN), '..');

/** Runs argv inside the container (every namespace of its PID 1). */
function inside(leader: number, argv: string[]): Promise<CmdOut> {
  return new Promise((res) => {
    const p = spawn('nsenter', ['-t', String(leader), '-a', 'env', '-i', 'PATH=/usr/sbin:/usr/bin:/sbin:/bin', 'HOME=/root', 'KIVER_LOG_LEVEL=warn', ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (out += d));
    p.on('close', (code) => res({ code: code ?? -1, out }));
  });
}

function memberHealth(root: string, url: string): Promise<string> {
  const pki = (f: string) => readFileSync(join(root, 'var/lib/kiver/pki', f));
  return httpsGet(`${url}/health`, { ca: pki('ca.crt'), cert: pki('etcd-client.crt'), key: pki('etcd-client.key') });
}

describe('kiver node init under systemd (systemd-nspawn)', () => {
  let dir: string;
  let root: string;
  let nspawn: ChildProcess;
  let leader = 0;
  const address = `127.${randomInt(100, 250)}.${randomInt(1, 250)}.1`;
  const kiver = (args: string[]) => inside(leader, ['/usr/bin/node', KIVER_BIN, ...args]);
  const init = ['node', 'init', '--role', 'control', '--node', 's1', '--address', address, '--snapshot-every', '5s'];
  const systemctl = async (...args: string[]) => (await inside(leader, ['systemctl', ...args])).out.trim();
  const kill = () => {
    try {
      if (nspawn?.pid && nspawn.exitCode === null) process.kill(nspawn.pid, 'SIGKILL');
    } catch { /* gone already */ }
  };

  before(async () => {
    await ensureDebs(CONTROL_PACKAGES);
    dir = await mkdtemp(join(tmpdir(), 'kiver-node-systemd-'));
    root = join(dir, 'r');
    await makeNodeRoot(root, 'systemd');
    process.once('exit', kill);
    nspawn = spawn('systemd-nspawn', ['-D', root, '-b', '--register=no', '--keep-unit', '-M', `kiver-${dir.slice(-6).toLowerCase()}`,
      `--bind-ro=${process.execPath}:/usr/bin/node`, `--bind-ro=${REPO}`], { detached: true, stdio: ['ignore', 'ignore', 'ignore'] });
    await until('the container\'s systemd', async () => {
      const kids = readFileSync(`/proc/${nspawn.pid}/task/${nspawn.pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
      const pid1 = kids.find((k) => { try { return readFileSync(`/proc/${k}/comm`, 'utf8').trim() === 'systemd'; } catch { return false; } });
      if (!pid1) return false;
      leader = pid1;
      return /^(running|degraded)$/.test(await systemctl('is-system-running'));
    }, 120_000, 250);
  });

  after(async () => {
    if (nspawn?.pid && nspawn.exitCode === null) {
      const gone = new Promise((r) => nspawn.once('exit', r));
      process.kill(nspawn.pid, 'SIGTERM'); // nspawn shuts the container down cleanly
      await Promise.race([gone, new Promise((r) => setTimeout(r, 30_000))]);
      kill();
    }
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('a control node as systemd units: enabled, active, Debian\'s etcd.service masked', async () => {
    const r = await kiver([...init, '--yes']);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /processes: systemd units/);
    for (const u of ['kiver-etcd', 'kiver-server', 'kiver-snapshots']) assert.match(r.out, new RegExp(`done systemd: started ${u}\\.service`));
    assert.match(r.out, /done systemd: masked etcd\.service/);
    assert.match(r.out, new RegExp(`done systemd: etcd member s1 healthy over TLS at https://${address.replace(/\./g, '\\.')}:2379`));
    assert.equal(await systemctl('is-active', 'kiver-etcd', 'kiver-server', 'kiver-snapshots'), 'active\nactive\nactive');
    assert.equal(await systemctl('is-enabled', 'kiver-etcd', 'kiver-server', 'kiver-snapshots'), 'enabled\nenabled\nenabled');
    assert.equal(await systemctl('is-enabled', 'etcd.service'), 'masked');
    const again = await kiver([...init, '--yes']);
    assert.equal(again.code, 0, again.out);
    assert.match(again.out, /nothing to do: this host already is a control node as asked/);
  });

  it('systemd restarts a killed etcd; the member is healthy again', async () => {
    const pid = Number((await systemctl('show', '-p', 'MainPID', '--value', 'kiver-etcd')));
    assert.ok(pid > 0);
    await systemctl('kill', '--signal=SIGKILL', '--kill-whom=main', 'kiver-etcd'); // as a crash: not a stop request
    await until('a new etcd main process', async () => {
      const now = Number(await systemctl('show', '-p', 'MainPID', '--value', 'kiver-etcd'));
      return now > 0 && now !== pid;
    }, 60_000, 250);
    await until('the member healthy again', async () => JSON.parse(await memberHealth(root, `https://${address}:2379`)).health === 'true', 60_000, 250);
  });

  it('node leave stops, disables and removes the units', async () => {
    const r = await kiver(['node', 'leave']);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /done etcd member: the last etcd member/);
    assert.match(r.out, /done control plane: stopped and removed kiver-etcd\.service, kiver-server\.service, kiver-snapshots\.service/);
    for (const u of ['kiver-etcd', 'kiver-server', 'kiver-snapshots']) assert.equal(existsSync(join(root, `etc/systemd/system/${u}.service`)), false, u);
    assert.equal(await systemctl('is-active', 'kiver-etcd', 'kiver-server'), 'inactive\ninactive');
  });
});
