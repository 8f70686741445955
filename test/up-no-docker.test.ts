/**
 * `kiver up` on a host where Docker is not running: run in a private mount namespace
 * whose /run is an empty tmpfs (so /var/run/docker.sock is not there), as a user and as
 * root without a terminal. Nothing on this machine is changed: the root case stops
 * after printing the plan because neither --yes nor a terminal is given.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KIVER_BIN } from './harness/kiver.js';

function upWithoutDocker(asUser: boolean): Promise<{ code: number; out: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'kiver-up-nodocker-'));
  const inner = [...(asUser ? ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'] : []),
    process.execPath, KIVER_BIN, 'up', '--data-dir', join(dir, 'data'), '--data-root', join(dir, 'd'), '--log-root', join(dir, 'l'), '--listen', '127.0.0.1:0'];
  const env = { ...process.env };
  delete env.DOCKER_HOST;
  return new Promise((res) => {
    // $0 is the mount point, the rest is the command: no shell quoting of paths.
    const p = spawn('unshare', ['-m', '--propagation', 'private', 'sh', '-c', 'mount -t tmpfs kiver-test-run /run && exec "$@"', 'sh', ...inner], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (out += d));
    p.on('close', (code) => {
      rmSync(dir, { recursive: true, force: true });
      res({ code: code ?? -1, out });
    });
  });
}

describe('kiver up without a running Docker', () => {
  it('as a user: prints the one command to run', async () => {
    const r = await upWithoutDocker(true);
    assert.equal(r.code, 6, r.out); // unavailable
    assert.match(r.out, /Docker is not running here .*Run this once; it installs Debian's docker\.io, configures and starts dockerd, then starts Kiver:\n\s+sudo npx kiver up --yes/s);
  });

  it('as root without a terminal or --yes: shows the Docker steps it would take and asks for --yes', async () => {
    const r = await upWithoutDocker(false);
    assert.equal(r.code, 2, r.out); // input: --yes is missing
    assert.match(r.out, /Docker is not running .* this host needs/);
    assert.match(r.out, /[+=] docker daemon config: /);
    assert.match(r.out, /[+=] packages: /);
    assert.match(r.out, /\+ supervised programs: create \/etc\/kiver\/supervise\/dockerd\.json/);
    assert.match(r.out, /\+ supervisor: start the supervisor .* it runs dockerd, restarting with backoff/);
    assert.match(r.out, /kiver: Docker is not running: pass --yes to install and start it/);
  });
});
