/**
 * Debian packages (docker.io by default, or another package from a configured
 * source): installed with apt, lists refreshed first when missing or older than a
 * day, and no service started by a package's postinst (the units step starts dockerd
 * with Kiver's configuration).
 */
import { chmodSync, existsSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { run } from '../image/exec.js';
import { APT_LISTS_MAX_AGE_MS, updateAptLists } from '../image/apt.js';
import type { NodeHost } from './node-host.js';
import type { Step } from './step.js';

/** Runs a command on the node: here, or through chroot in a test root. */
export function runOnNode(host: NodeHost, cmd: string, args: string[], capture = false): Promise<string> {
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  return host.isRealRoot ? run(cmd, args, { capture, env }) : run('chroot', [host.root, cmd, ...args], { capture, env });
}

export async function isInstalled(host: NodeHost, pkg: string): Promise<boolean> {
  try {
    const st = await runOnNode(host, 'dpkg-query', ['-W', '-f', '${Status}', pkg], true);
    return st.includes('install ok installed');
  } catch {
    return false;
  }
}

/** Why the node's apt lists need a refresh (missing, or written longer ago than a day), or undefined. */
function listsStale(host: NodeHost): string | undefined {
  const dir = host.path('/var/lib/apt/lists');
  let newest = 0;
  let any = false;
  try {
    for (const n of readdirSync(dir)) {
      if (!n.includes('_Packages')) continue;
      any = true;
      newest = Math.max(newest, statSync(`${dir}/${n}`).ctimeMs);
    }
  } catch {
    /* no lists directory */
  }
  if (!any) return 'no package lists';
  const age = Date.now() - newest;
  return age > APT_LISTS_MAX_AGE_MS ? `package lists are ${Math.floor(age / 3600_000)} h old` : undefined;
}

/** Keeps package postinsts from starting daemons, unless the node has its own policy. Returns the undo. */
function blockServiceStarts(host: NodeHost): () => void {
  const policy = host.path('/usr/sbin/policy-rc.d');
  if (existsSync(policy)) return () => undefined;
  writeFileSync(policy, '#!/bin/sh\n# kiver node init: packages must not start services; Kiver starts them with its configuration.\nexit 101\n');
  chmodSync(policy, 0o755);
  return () => rmSync(policy, { force: true });
}

/** /proc inside a test root while apt runs there (postinsts read it). Returns the undo. */
async function mountProc(host: NodeHost): Promise<() => Promise<void>> {
  if (host.isRealRoot) return async () => undefined;
  const proc = host.path('/proc');
  mkdirSync(proc, { recursive: true });
  if (existsSync(`${proc}/self`)) return async () => undefined;
  await run('mount', ['-t', 'proc', 'proc', proc]);
  return async () => {
    await run('umount', [proc]).catch(() => run('umount', ['-l', proc]).catch(() => undefined));
  };
}

export function packagesStep(host: NodeHost, packages: string[]): Step {
  let missing: string[] = [];
  let stale: string | undefined;
  return {
    name: 'packages',
    async check() {
      missing = [];
      for (const p of packages) if (!(await isInstalled(host, p))) missing.push(p);
      if (missing.length === 0) return [];
      stale = listsStale(host);
      return [...(stale ? [`apt-get update (${stale})`] : []), `apt-get install ${missing.join(' ')}`];
    },
    async apply() {
      const did: string[] = [];
      const unmount = await mountProc(host);
      const unblock = blockServiceStarts(host);
      try {
        if (stale) {
          await updateAptLists({ root: host.root, why: stale });
          did.push('refreshed apt lists');
        }
        await runOnNode(host, 'apt-get', ['install', '-y', '-q', '--no-install-recommends', ...missing]);
        did.push(`installed ${missing.join(' ')}`);
      } finally {
        unblock();
        await unmount();
      }
      return did;
    },
  };
}
