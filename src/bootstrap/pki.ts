/**
 * The control plane's TLS material: a small CA kept in the control data dir, and per
 * member a certificate for etcd (peers and clients, its address in the SANs) and a
 * client certificate for `kiver server` and the snapshots. Made with Debian's openssl
 * (Node's crypto reads certificates but cannot issue them); EC P-256 keys, mode 0600.
 * A joining member brings the CA (copied from a control node): every member's
 * certificate must chain to the same CA.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { X509Certificate, randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { run } from '../image/exec.js';
import type { NodeHost } from './node-host.js';
import type { Step } from './step.js';

export const PKI_DIR = '/var/lib/kiver/pki';
const DAYS_CA = 3650;
const DAYS_LEAF = 825;
/** A leaf certificate closer to its end than this is issued again. */
const RENEW_BEFORE_MS = 30 * 86_400_000;

export interface PkiFiles { ca: string; cert: string; key: string }

/** Node paths of the CA and of a leaf ("etcd-member", "etcd-client"). */
export const caFiles = { cert: `${PKI_DIR}/ca.crt`, key: `${PKI_DIR}/ca.key` };
export const leafFiles = (name: string): PkiFiles => ({ ca: caFiles.cert, cert: `${PKI_DIR}/${name}.crt`, key: `${PKI_DIR}/${name}.key` });

export interface LeafSpec {
  name: string;
  cn: string;
  /** IP addresses and DNS names; empty for a client-only certificate. */
  sans: string[];
  usage: 'server+client' | 'client';
}

const ssl = (args: string[]) => run('openssl', args, { capture: true });
const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

/** Why `file` (a leaf) must be issued (again), or undefined when it is good. */
function leafProblem(host: NodeHost, spec: LeafSpec): string | undefined {
  const f = leafFiles(spec.name);
  if (!existsSync(host.path(f.cert)) || !existsSync(host.path(f.key))) return 'missing';
  let cert: X509Certificate;
  let ca: X509Certificate;
  try {
    cert = new X509Certificate(readFileSync(host.path(f.cert)));
    ca = new X509Certificate(readFileSync(host.path(caFiles.cert)));
  } catch (err) {
    return `unreadable (${(err as Error).message})`;
  }
  if (!cert.checkIssued(ca) || !cert.verify(ca.publicKey)) return 'not issued by this CA';
  if (Date.parse(cert.validTo) - Date.now() < RENEW_BEFORE_MS) return `ends ${cert.validTo}`;
  const have = new Set((cert.subjectAltName ?? '').split(/,\s*/).map((s) => s.replace(/^IP Address:/, 'IP:').replace(/^DNS:/, 'DNS:')));
  const lacking = spec.sans.map(sanEntry).filter((s) => !have.has(s));
  if (lacking.length) return `lacks ${lacking.join(', ')}`;
  return undefined;
}

const sanEntry = (s: string) => (isIP(s) ? `IP:${s}` : `DNS:${s}`);

/** Writes PEM output of openssl to `dest` atomically with `mode`. */
function place(tmp: string, dest: string, mode: number): void {
  chmodSync(tmp, mode);
  renameSync(tmp, dest);
}

async function makeCa(host: NodeHost): Promise<void> {
  const dir = host.path(PKI_DIR);
  const key = join(dir, `ca.key.kiver-tmp`);
  const crt = join(dir, `ca.crt.kiver-tmp`);
  try {
    await ssl(['req', '-x509', ...EC, '-keyout', key, '-out', crt, '-subj', '/CN=kiver-control-ca', '-days', String(DAYS_CA),
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
    place(key, host.path(caFiles.key), 0o600);
    place(crt, host.path(caFiles.cert), 0o644);
  } finally {
    rmSync(key, { force: true });
    rmSync(crt, { force: true });
  }
}

async function issue(host: NodeHost, spec: LeafSpec): Promise<void> {
  const dir = host.path(PKI_DIR);
  const f = leafFiles(spec.name);
  const tmp = (n: string) => join(dir, `${spec.name}.${n}.kiver-tmp`);
  try {
    await ssl(['req', ...EC, '-keyout', tmp('key'), '-out', tmp('csr'), '-subj', `/CN=${spec.cn}`]);
    const ext = [
      'basicConstraints=critical,CA:FALSE',
      'keyUsage=critical,digitalSignature,keyEncipherment',
      `extendedKeyUsage=${spec.usage === 'client' ? 'clientAuth' : 'serverAuth,clientAuth'}`,
      ...(spec.sans.length ? [`subjectAltName=${spec.sans.map(sanEntry).join(',')}`] : []),
    ];
    writeFileSync(tmp('ext'), `${ext.join('\n')}\n`);
    await ssl(['x509', '-req', '-in', tmp('csr'), '-CA', host.path(caFiles.cert), '-CAkey', host.path(caFiles.key),
      '-set_serial', `0x${randomBytes(16).toString('hex')}`, '-days', String(DAYS_LEAF), '-extfile', tmp('ext'), '-out', tmp('crt')]);
    place(tmp('key'), host.path(f.key), 0o600);
    place(tmp('crt'), host.path(f.cert), 0o644);
  } finally {
    for (const n of ['key', 'csr', 'ext', 'crt']) rmSync(tmp(n), { force: true });
  }
}

/**
 * The CA (made here for a new cluster; a joining member must have it already, see the
 * bundle step) and the leaf certificates, issued when missing, not from this CA,
 * lacking an address, or near their end.
 */
export function pkiStep(host: NodeHost, leaves: LeafSpec[], makeCaIfMissing: boolean): Step {
  let todo: { ca: boolean; leaves: { spec: LeafSpec; why: string }[] } = { ca: false, leaves: [] };
  return {
    name: 'certificates',
    async check() {
      const noCa = !existsSync(host.path(caFiles.cert)) || !existsSync(host.path(caFiles.key));
      // Joining, the bundle step before this one copies the CA in (its check refused a run without one).
      todo = {
        ca: noCa && makeCaIfMissing,
        // With a CA new here every leaf is issued again.
        leaves: leaves.map((spec) => ({ spec, why: noCa ? (makeCaIfMissing ? 'new CA' : "the cluster's CA") : leafProblem(host, spec) })).filter((l): l is { spec: LeafSpec; why: string } => !!l.why),
      };
      return [
        ...(todo.ca ? [`create a CA (EC P-256, ${DAYS_CA} days) in ${PKI_DIR} (key 0600)`] : []),
        ...todo.leaves.map(({ spec, why }) => `issue ${spec.name}.crt (CN ${spec.cn}${spec.sans.length ? `, ${spec.sans.join(' ')}` : ''}; ${why})`),
      ];
    },
    async apply() {
      mkdirSync(host.path(PKI_DIR), { recursive: true, mode: 0o700 });
      chmodSync(host.path(PKI_DIR), 0o700);
      const did: string[] = [];
      if (todo.ca) {
        await makeCa(host);
        did.push(`created the CA ${caFiles.cert}`);
      }
      for (const { spec } of todo.leaves) {
        await issue(host, spec);
        did.push(`issued ${leafFiles(spec.name).cert}`);
      }
      return did;
    },
  };
}
