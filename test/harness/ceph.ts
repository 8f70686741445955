/**
 * A real single-node Ceph 16.2 (Debian's packages) on loopback for backup tests: one mon,
 * one memstore OSD, radosgw (beast) serving S3, and an `rbd` pool. No mgr (it is not
 * needed for RADOS, RGW or RBD and costs ~300 MiB). cephx is off: the cluster listens
 * on 127.0.0.1 only and lives in its own folder (conf, logs, sockets, pids).
 *
 * One shared cluster serves every test file: `ensureSharedCeph()` reuses the one whose
 * state file (/tmp/kiver-test-ceph/state.json) still answers, else starts it (~10 s).
 * `.ci/run` starts it up front (`node dist/test/harness/ceph.js start`); `stop` ends it.
 * A test that kills its target starts an extra radosgw (`startRgw`) and kills only that.
 *
 * Daemons detach (they write their pid files): stop them by those files, never by name.
 */
import { execFile, spawn } from 'node:child_process';
import { randomUUID, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { pathToFileURL } from 'node:url';

const run = promisify(execFile);

export const CEPH_DIR = process.env.KIVER_TEST_CEPH_DIR ?? '/tmp/kiver-test-ceph';
export const CEPH_BINARIES = ['/usr/bin/ceph-mon', '/usr/bin/ceph-osd', '/usr/bin/radosgw', '/usr/bin/rbd', '/usr/bin/radosgw-admin'];

export interface CephState {
  dir: string;
  conf: string;
  monPort: number;
  /** The S3 endpoint of the shared radosgw. */
  s3Url: string;
  accessKey: string;
  secretKey: string;
  /** Pool for RBD targets. */
  rbdPool: string;
}

async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => (typeof a === 'object' && a ? res(a.port) : rej(new Error('no port'))));
    });
  });
}

async function cmd(argv: string[], timeoutMs = 60_000): Promise<string> {
  try {
    const { stdout } = await run(argv[0], argv.slice(1), { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 });
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${argv.join(' ')} failed: ${e.stderr?.trim() || e.message}`);
  }
}

function conf(dir: string, monPort: number, rgwPort: number): string {
  return `[global]
fsid = ${randomUUID()}
mon host = v1:127.0.0.1:${monPort}
auth cluster required = none
auth service required = none
auth client required = none
ms bind msgr2 = false
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind ipv4 = true
ms bind ipv6 = false
mon data avail warn = 1
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon max pg per osd = 1000
osd objectstore = memstore
memstore device bytes = 3221225472
osd max object name len = 256
osd max object namespace len = 64
run dir = ${dir}/run
admin socket = ${dir}/run/$name.asok
pid file = ${dir}/run/$name.pid
log file = ${dir}/log/$name.log
mon cluster log file = ${dir}/log/cluster.log
mon data = ${dir}/mon/$cluster-$id
osd data = ${dir}/osd/$cluster-$id
rgw data = ${dir}/rgw/$cluster-$id
keyring = ${dir}/keyring
[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:${rgwPort}
`;
}

const RGW_POOLS = ['.rgw.root', 'default.rgw.log', 'default.rgw.control', 'default.rgw.meta',
  'default.rgw.buckets.index', 'default.rgw.buckets.data', 'default.rgw.buckets.non-ec'];

async function s3Answers(url: string): Promise<boolean> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
    await res.arrayBuffer();
    return res.status < 500;
  } catch {
    return false;
  }
}

async function until(what: string, fn: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`ceph: timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function readState(dir = CEPH_DIR): Promise<CephState | undefined> {
  try {
    return JSON.parse(await readFile(join(dir, 'state.json'), 'utf8')) as CephState;
  } catch {
    return undefined;
  }
}

/** Starts a single-node cluster in `dir` (which must not hold a running one). */
export async function startCeph(dir = CEPH_DIR): Promise<CephState> {
  for (const b of CEPH_BINARIES) if (!existsSync(b)) throw new Error(`ceph: ${b} is missing; run bash .ci/run (installs ceph-mon ceph-osd radosgw ceph-common)`);
  await stopCeph(dir);
  for (const d of ['run', 'log', 'mon/ceph-a', 'osd/ceph-0', 'rgw/ceph-rgw.a']) await mkdir(join(dir, d), { recursive: true });
  const [monPort, rgwPort] = [await freePort(), await freePort()];
  const c = join(dir, 'ceph.conf');
  await writeFile(c, conf(dir, monPort, rgwPort));
  await cmd(['ceph-authtool', '--create-keyring', join(dir, 'keyring'), '--gen-key', '-n', 'mon.', '--cap', 'mon', 'allow *']);
  await cmd(['monmaptool', '--create', '--addv', 'a', `[v1:127.0.0.1:${monPort}]`, '--fsid', (/fsid = (\S+)/.exec(await readFile(c, 'utf8')))![1], join(dir, 'monmap')]);
  await cmd(['ceph-mon', '-c', c, '--mkfs', '-i', 'a', '--monmap', join(dir, 'monmap')]);
  await cmd(['ceph-mon', '-c', c, '-i', 'a']);
  const ceph = (...args: string[]) => cmd(['ceph', '-c', c, '--connect-timeout', '20', ...args]);
  const id = (await ceph('osd', 'create')).trim();
  await cmd(['ceph-osd', '-c', c, '-i', id, '--mkfs']);
  await cmd(['ceph-osd', '-c', c, '-i', id]);
  // radosgw makes its pools on first use, one at a time (~7 s); made here in parallel.
  await Promise.all([...RGW_POOLS, 'rbd'].map((p) => ceph('osd', 'pool', 'create', p, '8', '8')));
  await Promise.all([
    ...RGW_POOLS.map((p) => ceph('osd', 'pool', 'application', 'enable', p, 'rgw')),
    ceph('osd', 'pool', 'application', 'enable', 'rbd', 'rbd'),
  ]);
  const state: CephState = {
    dir, conf: c, monPort, s3Url: `http://127.0.0.1:${rgwPort}`,
    accessKey: `KIVERTEST${randomBytes(6).toString('hex').toUpperCase()}`, secretKey: randomBytes(20).toString('hex'), rbdPool: 'rbd',
  };
  await cmd(['radosgw', '-c', c, '-n', 'client.rgw.a']);
  await cmd(['radosgw-admin', '-c', c, 'user', 'create', '--uid', 'kiver-test', '--display-name', 'kiver test',
    '--access-key', state.accessKey, '--secret-key', state.secretKey]);
  await until(`radosgw on ${state.s3Url}`, () => s3Answers(state.s3Url), 60_000);
  await writeFile(join(dir, 'state.json'), JSON.stringify(state, null, 2));
  return state;
}

/** Another radosgw on the same cluster and its own port (a test may kill it); returns its URL and a stop. */
export async function startRgw(state: CephState, name: string, port?: number): Promise<{ url: string; pid: number; kill: () => Promise<void> }> {
  if (!/^[a-z0-9]{1,16}$/.test(name)) throw new Error(`bad rgw name ${name}`);
  port ??= await freePort();
  await mkdir(join(state.dir, 'rgw', `ceph-rgw.${name}`), { recursive: true });
  const p = spawn('radosgw', ['-c', state.conf, '-n', `client.rgw.${name}`, '-f', '--rgw-frontends', `beast endpoint=127.0.0.1:${port}`],
    { stdio: 'ignore', detached: true });
  const url = `http://127.0.0.1:${port}`;
  await until(`radosgw ${name} on ${url}`, () => s3Answers(url), 30_000);
  const exited = new Promise<void>((r) => (p.exitCode !== null ? r() : p.once('exit', () => r())));
  return {
    url, pid: p.pid!,
    kill: async () => {
      if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
      await exited;
    },
  };
}

async function pidsOf(dir: string): Promise<number[]> {
  const out: number[] = [];
  for (const name of ['client.rgw.a', 'osd.0', 'mon.a']) {
    const pid = Number((await readFile(join(dir, 'run', `${name}.pid`), 'utf8').catch(() => '')).trim());
    if (pid > 0) out.push(pid);
  }
  return out;
}

/** Stops the daemons listed in the cluster's pid files and removes its folder. */
export async function stopCeph(dir = CEPH_DIR): Promise<void> {
  for (const pid of await pidsOf(dir)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone already */
    }
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      try {
        process.kill(pid, 0);
      } catch {
        break;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  await rm(dir, { recursive: true, force: true });
}

/** The shared cluster: the running one if it answers, else a fresh one. */
export async function ensureSharedCeph(): Promise<CephState> {
  const s = await readState();
  if (s && (await s3Answers(s.s3Url))) return s;
  return startCeph();
}

// `node dist/test/harness/ceph.js start|stop|status` (.ci/run starts it before npm test).
if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const verb = process.argv[2] ?? 'status';
  const t0 = performance.now();
  const done = (msg: string) => console.log(`${msg} (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
  if (verb === 'start') {
    const had = await readState();
    const s = await ensureSharedCeph();
    done(had?.s3Url === s.s3Url ? `ceph already running: S3 at ${s.s3Url}` : `ceph started: S3 at ${s.s3Url}, conf ${s.conf}`);
  } else if (verb === 'stop') {
    await stopCeph();
    done('ceph stopped');
  } else {
    const s = await readState();
    console.log(s && (await s3Answers(s.s3Url)) ? `running: S3 at ${s.s3Url}` : 'not running');
  }
}
