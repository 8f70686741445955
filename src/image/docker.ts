import Docker from 'dockerode';
import { UnavailableError } from '../errors.js';

/** Where dockerode will connect: DOCKER_HOST if set, else the default unix socket. */
export function dockerAddress(): string {
  return process.env.DOCKER_HOST || 'unix:///var/run/docker.sock';
}

/** How to get a Docker daemon on this kind of machine, for error messages. */
export function howToStartDocker(): string {
  return (
    'start dockerd: as root run `bash .ci/run docker` in the Kiver checkout ' +
    '(installs docker.io and starts dockerd), or `apt-get install -y docker.io` then ' +
    '`setsid nohup dockerd >/var/log/dockerd.log 2>&1 &` (`systemctl start docker` where systemd runs); ' +
    'set DOCKER_HOST to use another daemon'
  );
}

export function dockerClient(): Docker {
  return new Docker();
}

/** Pings the daemon; throws UnavailableError saying why and how to start one. */
export async function pingDocker(docker: Docker, timeoutMs = 5000): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      docker.ping(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(Object.assign(new Error(`no answer within ${timeoutMs} ms`), { code: 'ETIMEDOUT' })), timeoutMs);
      }),
    ]);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'EACCES') {
      throw new UnavailableError(`permission denied on the Docker socket ${dockerAddress()}: run as root or join the docker group`);
    }
    throw new UnavailableError(`Docker is not reachable at ${dockerAddress()} (${e.code ?? e.message}); ${howToStartDocker()}`);
  } finally {
    clearTimeout(timer);
  }
}
