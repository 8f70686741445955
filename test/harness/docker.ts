/**
 * Test helpers for the real Docker daemon (the one `bash .ci/run docker` starts).
 * Every helper takes a deadline: a test fails with what it last saw, never hangs.
 */
import Docker from 'dockerode';
import { setTimeout as sleep } from 'node:timers/promises';
import { dockerAddress, howToStartDocker } from '../../src/image/docker.js';

/**
 * A client for DOCKER_HOST or /var/run/docker.sock, after a ping. Throws an Error that
 * says how to start dockerd when it does not answer within `timeoutMs`.
 */
export async function ensureDocker(timeoutMs = 5000): Promise<Docker> {
  const docker = new Docker();
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      docker.ping(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new Error(`these tests need a Docker daemon, but ${dockerAddress()} does not answer (${e.code ?? e.message}); ${howToStartDocker()}`);
  } finally {
    clearTimeout(timer);
  }
  return docker;
}

/** Force-removes every container (running or not) with `label` ("key" or "key=value"). */
export async function removeContainersByLabel(docker: Docker, label: string): Promise<number> {
  const list = await docker.listContainers({ all: true, filters: JSON.stringify({ label: [label] }) } as unknown as Docker.ContainerListOptions);
  await Promise.all(
    list.map(async (c) => {
      try {
        await docker.getContainer(c.Id).remove({ force: true, v: true });
      } catch (err) {
        const code = (err as { statusCode?: number }).statusCode;
        if (code !== 404 && code !== 409) throw err; // gone, or removal already in progress
      }
    }),
  );
  return list.length;
}

export type ContainerState = Docker.ContainerInspectInfo['State'];

/**
 * Polls a container until `want` holds: a status ('running', 'exited', ...), a
 * predicate over its State, or 'removed' (inspect gives 404). Returns the last
 * inspect (undefined for 'removed'); throws at the deadline with the last state seen.
 */
export async function waitForContainerState(
  docker: Docker,
  id: string,
  want: ContainerState['Status'] | 'removed' | ((s: ContainerState) => boolean),
  { timeoutMs = 15_000, intervalMs = 100 }: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<Docker.ContainerInspectInfo | undefined> {
  const deadline = Date.now() + timeoutMs;
  let last = 'never inspected';
  for (;;) {
    try {
      const info = await docker.getContainer(id).inspect();
      const ok = typeof want === 'function' ? want(info.State) : want === info.State.Status;
      if (ok) return info;
      last = `status ${info.State.Status}, exit code ${info.State.ExitCode}, restarts ${info.RestartCount}${info.State.Error ? `, error ${info.State.Error}` : ''}`;
    } catch (err) {
      if ((err as { statusCode?: number }).statusCode !== 404) throw err;
      if (want === 'removed') return undefined;
      last = 'container does not exist';
    }
    if (Date.now() >= deadline) {
      const what = typeof want === 'function' ? 'the expected state' : `"${want}"`;
      throw new Error(`container ${id.slice(0, 12)} did not reach ${what} within ${timeoutMs} ms; last: ${last}`);
    }
    await sleep(intervalMs);
  }
}

export interface RunResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  id: string;
}

/**
 * `docker run --rm`-like: creates a container from `image` running `cmd`, starts it,
 * waits for it to exit (deadline), collects its output, removes it. Labels should
 * mark the test so `removeContainersByLabel` can clean up after a failure.
 */
export async function runContainer(
  docker: Docker,
  image: string,
  cmd: string[],
  { labels = {}, timeoutMs = 30_000, network = 'none' }: { labels?: Record<string, string>; timeoutMs?: number; network?: string } = {},
): Promise<RunResult> {
  const c = await docker.createContainer({ Image: image, Cmd: cmd, Labels: labels, HostConfig: { NetworkMode: network } });
  try {
    await c.start();
    const info = await waitForContainerState(docker, c.id, 'exited', { timeoutMs });
    const raw = (await c.logs({ stdout: true, stderr: true, follow: false })) as unknown as Buffer;
    const { stdout, stderr } = demux(raw);
    return { exitCode: info!.State.ExitCode, stdout, stderr, id: c.id };
  } finally {
    await c.remove({ force: true }).catch(() => undefined);
  }
}

/** Splits Docker's multiplexed log format (8-byte frame headers: stream, size). */
export function demux(buf: Buffer): { stdout: string; stderr: string } {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  let i = 0;
  while (i + 8 <= buf.length) {
    const len = buf.readUInt32BE(i + 4);
    (buf[i] === 2 ? err : out).push(buf.subarray(i + 8, i + 8 + len));
    i += 8 + len;
  }
  return { stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() };
}
