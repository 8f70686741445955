/**
 * Kiver's supervisor (the fallback where systemd is absent), as a real detached
 * `kiver node supervise` process on a temporary root: restarts a program that dies,
 * with growing backoff; SIGHUP applies changed and removed program files; SIGTERM
 * stops everything.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NodeHost } from '../src/bootstrap/node-host.js';
import { isAlive, programFile, programPid, startSupervisor, stopSupervisor, supervisorPid, type ProgramDef } from '../src/bootstrap/supervisor.js';
import { until } from './harness/kiver.js';

describe('kiver node supervise', () => {
  const root = mkdtempSync(join(tmpdir(), 'kiver-supervise-'));
  const host = new NodeHost(root);
  const write = (d: ProgramDef) => {
    mkdirSync(join(root, 'etc/kiver/supervise'), { recursive: true });
    writeFileSync(programFile(host, d.name), JSON.stringify(d));
  };
  after(async () => {
    await stopSupervisor(host).catch(() => undefined);
    rmSync(root, { recursive: true, force: true });
  });

  it('restarts a program that dies, 1 s then 2 s later; SIGHUP restarts a changed one and stops a removed one; SIGTERM stops all', async () => {
    write({ name: 'sleeper', order: 10, argv: ['sleep', '300'] });
    write({ name: 'other', order: 20, argv: ['sleep', '301'] });
    const sup = await startSupervisor(host);
    const first = await until('sleeper started', async () => programPid(host, 'sleeper'), 10_000);
    await until('other started', async () => programPid(host, 'other'), 10_000);

    process.kill(first, 'SIGKILL');
    const second = await until('sleeper restarted', async () => { const p = programPid(host, 'sleeper'); return p !== first && p; }, 10_000, 50);
    process.kill(second, 'SIGKILL');
    await until('sleeper restarted again', async () => { const p = programPid(host, 'sleeper'); return p !== second && p; }, 15_000, 50);
    const log = readFileSync(join(root, 'var/log/kiver/supervisor.log'), 'utf8');
    assert.match(log, /sleeper exited \(SIGKILL\); restarting in 1000 ms[\s\S]*sleeper exited \(SIGKILL\); restarting in 2000 ms/);

    const otherPid = programPid(host, 'other')!;
    write({ name: 'sleeper', order: 10, argv: ['sleep', '302'] });
    rmSync(programFile(host, 'other'));
    process.kill(sup, 'SIGHUP');
    await until('other stopped', async () => !isAlive(otherPid) && programPid(host, 'other') === undefined, 30_000);
    const changed = await until('sleeper runs the new argv', async () => {
      const p = programPid(host, 'sleeper');
      return p && readFileSync(`/proc/${p}/cmdline`, 'utf8').includes('302') && p;
    }, 30_000);

    assert.equal(await stopSupervisor(host), true);
    assert.equal(supervisorPid(host), undefined);
    assert.equal(isAlive(changed), false, 'programs stop with the supervisor');
  });
});
