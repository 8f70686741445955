import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { copyFileSync, lstatSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NodeHost } from './node-host.js';
import { caFiles, leafFiles, pkiStep, type LeafSpec } from './pki.js';

const leaves = (addr: string): LeafSpec[] => [
  { name: 'etcd-member', cn: 'c1', sans: [addr, '127.0.0.1', 'localhost'], usage: 'server+client' },
  { name: 'etcd-client', cn: 'kiver-server-c1', sans: [], usage: 'client' },
];

describe('control-plane certificates (openssl)', () => {
  it('makes a CA and leaves once, then nothing; a new address or another CA issues again', async () => {
    const root = mkdtempSync(join(tmpdir(), 'kiver-pki-'));
    try {
      const host = new NodeHost(root);
      const step = pkiStep(host, leaves('10.0.0.5'), true);
      assert.equal((await step.check()).length, 3);
      await step.apply();
      assert.deepEqual(await step.check(), []);
      const ca = new X509Certificate(readFileSync(host.path(caFiles.cert)));
      const member = new X509Certificate(readFileSync(host.path(leafFiles('etcd-member').cert)));
      assert.ok(ca.ca && member.checkIssued(ca) && member.verify(ca.publicKey));
      assert.match(member.subjectAltName ?? '', /IP Address:10\.0\.0\.5/);
      assert.match(member.keyUsage?.join(',') ?? '', /1\.3\.6\.1\.5\.5\.7\.3\.1.*1\.3\.6\.1\.5\.5\.7\.3\.2/, 'serverAuth and clientAuth');
      const client = new X509Certificate(readFileSync(host.path(leafFiles('etcd-client').cert)));
      assert.deepEqual(client.keyUsage, ['1.3.6.1.5.5.7.3.2'], 'clientAuth only: it cannot serve');
      for (const k of [caFiles.key, leafFiles('etcd-member').key, leafFiles('etcd-client').key]) assert.equal(lstatSync(host.path(k)).mode & 0o777, 0o600, k);

      assert.deepEqual(await pkiStep(host, leaves('10.0.0.6'), true).check(), ['issue etcd-member.crt (CN c1, 10.0.0.6 127.0.0.1 localhost; lacks IP:10.0.0.6)']);

      // Another cluster's CA copied in: the leaves no longer chain to it.
      const root2 = mkdtempSync(join(tmpdir(), 'kiver-pki-'));
      try {
        const host2 = new NodeHost(root2);
        const s2 = pkiStep(host2, [], true);
        await s2.check();
        await s2.apply();
        for (const f of [caFiles.cert, caFiles.key]) copyFileSync(host2.path(f), host.path(f));
      } finally {
        rmSync(root2, { recursive: true, force: true });
      }
      const changes = await pkiStep(host, leaves('10.0.0.5'), true).check();
      assert.equal(changes.length, 2);
      for (const c of changes) assert.match(c, /not issued by this CA\)$/);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('joining (no CA made here): leaves are planned from the CA the bundle brings', async () => {
    const root = mkdtempSync(join(tmpdir(), 'kiver-pki-'));
    try {
      const changes = await pkiStep(new NodeHost(root), leaves('10.0.0.7'), false).check();
      assert.deepEqual(changes.map((c) => c.replace(/ \(.*/, '')), ['issue etcd-member.crt', 'issue etcd-client.crt']);
      assert.match(changes[0], /the cluster's CA/);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
