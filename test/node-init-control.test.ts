/**
 * `kiver node init --role control` on three real Debian roots (debootstrap'd bookworm,
 * cached; apt installs etcd-server and openssl into each from the cached .debs). Each
 * root is one control node at its own loopback address (127.x.y.1-3) on etcd's and
 * Kiver's default ports; etcd, `kiver server` and the snapshot schedule run under
 * Kiver's supervisor (this machine has no systemd). Checked: --plan changes nothing;
 * bad input changes nothing; the first node starts a TLS cluster and a server on it;
 * a second run has nothing to do; two more join (--etcd-join, --join-from) into a
 * 3-member TLS cluster that refuses plain and certificate-less clients; the servers
 * share one state over TLS; snapshots are taken and pruned; node leave removes a
 * member cleanly.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { cpSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { KIVER_BIN, until } from './harness/kiver.js';
import { diff, fingerprint } from './harness/root-fingerprint.js';
import { httpsGet } from './harness/https-get.js';
import { CONTROL_PACKAGES, ensureDebs, makeNodeRoot } from './harness/node-root.js';
import { ApiClient } from '../src/client/api-client.js';
import { NodeHost } from '../src/bootstrap/node-host.js';
import { programPid, stopSupervisor, supervisorPid } from '../src/bootstrap/supervisor.js';
import type { ServiceView } from '../src/model/service.js';

interface CmdOut { code: number; out: string }

function kiver(args: string[]): Promise<CmdOut> {
  return new Promise((res) => {
    const p = spawn(process.execPath, [KIVER_BIN, ...args], { env: { ...process.env, KIVER_LOG_LEVEL: 'warn' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (out += d));
    p.on('close', (code) => res({ code: code ?? -1, out }));
  });
}



describe('kiver node init --role control: a 3-member etcd over TLS and kiver servers on it', () => {
  let dir: string;
  const roots: string[] = [];
  const net = `127.${randomInt(100, 250)}.${randomInt(1, 250)}`;
  const addr = (i: number) => `${net}.${i + 1}`;
  const node = (i: number) => `c${i + 1}`;
  const initArgs = (i: number, extra: string[] = []) => ['node', 'init', '--role', 'control', '--root', roots[i], '--node', node(i), '--address', addr(i),
    '--snapshot-every', '2s', '--snapshot-keep', '2', ...extra];
  const pki = (i: number, f: string) => readFileSync(join(roots[i], 'var/lib/kiver/pki', f));
  const client = (i: number) => new Etcd3({
    hosts: [`https://${addr(i)}:2379`],
    credentials: { rootCertificate: pki(i, 'ca.crt'), privateKey: pki(i, 'etcd-client.key'), certChain: pki(i, 'etcd-client.crt') },
    grpcOptions: { 'grpc.ssl_target_name_override': 'localhost' },
  });
  const api = (i: number) => new ApiClient({ servers: [`http://${addr(i)}:7700`], token: readFileSync(join(roots[i], 'var/lib/kiver/admin.token'), 'utf8').trim() });
  const stopAll = () => {
    for (const r of roots) {
      const pid = supervisorPid(new NodeHost(r));
      if (pid) process.kill(pid, 'SIGTERM');
    }
  };

  before(async () => {
    await ensureDebs(CONTROL_PACKAGES);
    dir = await mkdtemp(join(tmpdir(), 'kiver-node-control-'));
    process.once('exit', stopAll); // a killed run leaves no members behind
    for (let i = 0; i < 3; i++) roots.push(join(dir, `r${i + 1}`));
    await Promise.all(roots.map((r) => makeNodeRoot(r)));
  });

  after(async () => {
    await Promise.all(roots.map((r) => stopSupervisor(new NodeHost(r)).catch(() => undefined)));
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('--plan lists every change and changes nothing', async () => {
    const before = fingerprint(roots[0], ['/etc/', '/var/lib/kiver']);
    const r = await kiver([...initArgs(0), '--plan']);
    assert.equal(r.code, 0, r.out);
    for (const want of [
      /ok\s+ports: 2379, 2380, 7700 free/, /packages: apt-get install etcd-server openssl/, /dirs: create \/var\/lib\/kiver\/etcd \(0700\)/,
      /certificates: create a CA \(EC P-256/, new RegExp(`certificates: issue etcd-member\\.crt \\(CN c1, ${addr(0).replace(/\./g, '\\.')} 127\\.0\\.0\\.1 localhost c1`),
      /etcd membership: a new etcd cluster: c1=https:\/\//, /create \/etc\/kiver\/supervise\/etcd\.json/, /create \/etc\/kiver\/supervise\/server\.json/,
      /create \/etc\/kiver\/supervise\/snapshots\.json/, /start the supervisor .* it runs etcd, server, snapshots/, /nothing was changed \(--plan\)/,
    ]) assert.match(r.out, want);
    assert.deepEqual(diff(before, fingerprint(roots[0], ['/etc/', '/var/lib/kiver'])), []);
  });

  it('bad input: clear errors and no change', async () => {
    const before = fingerprint(roots[1], ['/etc/', '/var/lib/kiver']);
    const cases: [string[], RegExp, number][] = [
      [initArgs(1, ['--etcd-join', `http://${addr(0)}:2379`]), /--etcd-join: .* must be https:\/\/HOST:PORT/, 2],
      [initArgs(1, ['--join-from', dir]), /--join-from: only with --etcd-join/, 2],
      [initArgs(1, ['--etcd-join', `https://${addr(0)}:2379`]), /--etcd-join: https:\/\/.*:2379 is not reachable \(ECONNREFUSED\) — nothing was changed/, 6],
      [[...initArgs(1), '--address', 'not an address'], /--address: "not an address" is not an IP address or host name/, 2],
      [initArgs(1, ['--snapshot-every', '0s']), /--snapshot-every must be at least 1s/, 2],
      [initArgs(1, ['--etcd-peer-port', '70000']), /--etcd-peer-port/, 2],
    ];
    for (const [args, want, code] of cases) {
      const r = await kiver([...args, '--yes']);
      assert.equal(r.code, code, r.out);
      assert.match(r.out, want);
    }
    assert.deepEqual(diff(before, fingerprint(roots[1], ['/etc/', '/var/lib/kiver'])), []);
  });

  it('the first node: a new TLS cluster and a kiver server on it; a second run has nothing to do', async () => {
    const r = await kiver([...initArgs(0), '--yes']);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /done packages: installed etcd-server openssl/);
    assert.match(r.out, new RegExp(`done supervisor: etcd member c1 healthy over TLS at https://${addr(0)}:2379`));
    assert.match(r.out, new RegExp(`done supervisor: kiver server ready at http://${addr(0)}:7700`));
    assert.match(r.out, /to add a control node: copy .*ca\.key .*\n\s+kiver node init --role control --etcd-join https:\/\//);
    for (const [f, mode] of [['var/lib/kiver/pki/ca.key', 0o600], ['var/lib/kiver/pki/etcd-member.key', 0o600], ['var/lib/kiver/pki/etcd-client.key', 0o600], ['var/lib/kiver', 0o700], ['var/lib/kiver/etcd', 0o700]] as const) {
      assert.equal(lstatSync(join(roots[0], f)).mode & 0o777, mode, f);
    }
    const server = JSON.parse(readFileSync(join(roots[0], 'etc/kiver/supervise/server.json'), 'utf8')) as { argv: string[] };
    assert.match(server.argv[server.argv.indexOf('--store') + 1], new RegExp(`^etcd://${addr(0)}:2379\\?ca=\\S+ca\\.crt&cert=\\S+etcd-client\\.crt&key=\\S+etcd-client\\.key$`));
    const again = await kiver([...initArgs(0), '--yes']);
    assert.equal(again.code, 0, again.out);
    assert.match(again.out, /ok\s+ports: held by this control node's own processes/);
    assert.match(again.out, /nothing to do: this host already is a control node as asked/);
    assert.doesNotMatch(again.out, /^\s+\+ /m);
  });

  it('joining without the cluster\'s CA and tokens is refused and changes nothing', async () => {
    const before = fingerprint(roots[1], ['/etc/', '/var/lib/kiver']);
    const r = await kiver([...initArgs(1, ['--etcd-join', `https://${addr(0)}:2379`]), '--yes']);
    assert.equal(r.code, 1, r.out);
    assert.match(r.out, /--join-from: ca\.crt, ca\.key, admin\.token, join\.token, service-secrets\.key missing.* \(nothing was changed\)/);
    assert.deepEqual(diff(before, fingerprint(roots[1], ['/etc/', '/var/lib/kiver'])), []);
  });

  it('two more nodes join: three started members over TLS; plain and certificate-less clients are refused', async () => {
    const bundle = join(dir, 'bundle');
    mkdirSync(bundle);
    for (const f of ['pki/ca.crt', 'pki/ca.key', 'admin.token', 'join.token', 'service-secrets.key']) cpSync(join(roots[0], 'var/lib/kiver', f), join(bundle, f.replace('pki/', '')));
    for (const [i, via] of [[1, 0], [2, 1]]) {
      const r = await kiver([...initArgs(i, ['--etcd-join', `https://${addr(via)}:2379`, '--join-from', bundle]), '--yes']);
      assert.equal(r.code, 0, r.out);
      assert.match(r.out, new RegExp(`done etcd membership: added member c${i + 1} \\(id [0-9a-f]+\\) in the cluster at https://${addr(via)}:2379; ${i + 1} member\\(s\\)`));
      assert.match(r.out, new RegExp(`done supervisor: kiver server ready at http://${addr(i)}:7700`));
    }
    const c = client(2);
    try {
      const { members } = await c.cluster.memberList({});
      assert.deepEqual(members.map((m) => m.name).sort(), ['c1', 'c2', 'c3']);
      for (const m of members) {
        assert.ok(m.peerURLs.every((u) => u.startsWith('https://')) && m.clientURLs.every((u) => u.startsWith('https://')), JSON.stringify(m));
      }
    } finally {
      c.close();
    }
    for (let i = 0; i < 3; i++) {
      const body = await httpsGet(`https://${addr(i)}:2379/health`, { ca: pki(0, 'ca.crt'), cert: pki(0, 'etcd-client.crt'), key: pki(0, 'etcd-client.key') });
      assert.equal(JSON.parse(body).health, 'true', `member ${i + 1}`);
    }
    await assert.rejects(httpsGet(`https://${addr(0)}:2379/health`, { ca: pki(0, 'ca.crt') }), 'no client certificate: refused');
    await assert.rejects(fetch(`http://${addr(0)}:2379/health`, { signal: AbortSignal.timeout(5000) }), 'plain HTTP: refused');
    for (const i of [0, 1]) {
      const r = await kiver([...initArgs(i), '--yes']);
      assert.match(r.out, /nothing to do: this host already is a control node as asked/, r.out);
    }
  });

  it('the kiver servers share one state over TLS: a service made through one is seen through the others', async () => {
    await api(2).post('/v1/services', { name: 'web', image: 'kiver/busybox', replicas: 1, cpu: 0.1, memory: 2 ** 25, command: ['sleep', '3600'] });
    for (const i of [0, 1]) {
      const v = await api(i).get<ServiceView>('/v1/services/web');
      assert.equal(v.spec.replicas, 1);
    }
  });

  it('snapshots are taken on schedule and the newest two kept', async () => {
    const snaps = join(roots[0], 'var/lib/kiver/snapshots');
    const list = () => readdirSync(snaps).filter((n) => n.endsWith('.snap')).sort();
    let first = '';
    await until('a snapshot holding the service', async () => {
      const l = list();
      if (!l.length || !readFileSync(join(snaps, l.at(-1)!), 'utf8').includes('"key":"/kiver/services/web"')) return false;
      first = l.at(-1)!;
      return true;
    }, 60_000, 200);
    await until('two newer snapshots', async () => list().filter((n) => n > first).length >= 2, 60_000, 200);
    assert.ok(list().length <= 2, list().join(' '));
    assert.equal(lstatSync(join(snaps, list()[0])).mode & 0o777, 0o600);
  });

  it('node leave removes the member from etcd first; the two left serve on', async () => {
    const r = await kiver(['node', 'leave', '--root', roots[2]]);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /done etcd member: removed etcd member c3 \(id [0-9a-f]+\); 2 member\(s\) left/);
    assert.match(r.out, /done control plane: stopped etcd, server, snapshots/);
    const h3 = new NodeHost(roots[2]);
    for (const p of ['etcd', 'server', 'snapshots']) assert.equal(programPid(h3, p), undefined, p);
    assert.equal(existsSync(join(roots[2], 'var/lib/kiver/etcd')), false, "a removed member's data is gone");
    assert.ok(existsSync(join(roots[2], 'var/lib/kiver/pki/ca.crt')), 'the CA stays without --purge');
    const c = client(0);
    try {
      assert.deepEqual((await c.cluster.memberList({})).members.map((m) => m.name).sort(), ['c1', 'c2']);
    } finally {
      c.close();
    }
    await api(1).delete('/v1/services/web');
    await until('web gone, seen through c1', async () => (await api(0).get<ServiceView[]>('/v1/services')).length === 0, 30_000);
  });
});
