/**
 * How the CLI finds its server: KIVER_ADDR / KIVER_TOKEN, else the client file
 * that `kiver up` writes (~/.kiver/client.json, like k3s's kubeconfig).
 */
import { readFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { ApiClient } from '../client/api-client.js';
import { UnauthenticatedError } from '../errors.js';

export interface ClientFile {
  servers: string[];
  tokenFile: string;
}

export function kiverHome(): string {
  return process.env.KIVER_HOME ?? join(homedir(), '.kiver');
}

export function defaultDataDir(): string {
  return process.env.KIVER_DATA_DIR ?? kiverHome();
}

export function writeClientFile(c: ClientFile): string {
  const dir = kiverHome();
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = join(dir, 'client.json');
  writeFileSync(file, `${JSON.stringify(c, null, 2)}\n`, { mode: 0o600 });
  return file;
}

export function clientFromEnv(): ApiClient {
  return new ApiClient(clientSettings());
}

/** The server URLs and token the CLI would use (KIVER_ADDR/KIVER_TOKEN or the client file). */
export function clientSettings(): { servers: string[]; token: string } {
  const addr = process.env.KIVER_ADDR;
  let token = process.env.KIVER_TOKEN;
  let servers = addr ? addr.split(',').map((s) => s.trim()).filter(Boolean) : undefined;
  if (!servers || !token) {
    let file: ClientFile | undefined;
    const path = join(kiverHome(), 'client.json');
    try {
      file = JSON.parse(readFileSync(path, 'utf8')) as ClientFile;
    } catch {
      /* none */
    }
    servers ??= file?.servers;
    if (!token && file) {
      try {
        token = readFileSync(file.tokenFile, 'utf8').trim();
      } catch (err) {
        throw new UnauthenticatedError(`cannot read the admin token at ${file.tokenFile} (${(err as NodeJS.ErrnoException).code}); set KIVER_TOKEN`);
      }
    }
  }
  if (!servers) {
    throw new UnauthenticatedError('no Kiver server configured: run `kiver up` on this machine, or set KIVER_ADDR and KIVER_TOKEN');
  }
  if (!token) throw new UnauthenticatedError('no admin token: set KIVER_TOKEN (the token is in <data-dir>/admin.token)');
  return { servers, token };
}
