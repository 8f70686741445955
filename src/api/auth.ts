/**
 * Bearer tokens. The store keeps only SHA-256 hashes (so a store snapshot leaks
 * no usable token); the plaintext goes once into a 0600 file in the data dir,
 * the way k3s writes its kubeconfig and node token.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { mkdir, readFile, writeFile, chmod } from 'node:fs/promises';
import { join } from 'node:path';
import type { Store } from '../store/store.js';
import { K } from '../model/keys.js';

export type Role = 'admin' | 'agent';

interface TokenRecord {
  role: Role;
  hash: string;
  createdAt: string;
}

const hash = (t: string) => createHash('sha256').update(t).digest('hex');

export function newToken(role: Role): string {
  return `kiver_${role}_${randomBytes(24).toString('base64url')}`;
}

export class TokenAuth {
  /** hash → role, refreshed from the store (tokens are few). */
  private cache = new Map<string, Role>();
  private loadedAt = 0;

  constructor(private readonly store: Store) {}

  async add(id: string, role: Role, token: string): Promise<void> {
    const rec: TokenRecord = { role, hash: hash(token), createdAt: new Date().toISOString() };
    await this.store.put(K.token(id), JSON.stringify(rec));
    this.loadedAt = 0;
  }

  private async load(): Promise<void> {
    const res = await this.store.list(K.tokens);
    const m = new Map<string, Role>();
    for (const kv of res.kvs) {
      const rec = JSON.parse(kv.value) as TokenRecord;
      m.set(rec.hash, rec.role);
    }
    this.cache = m;
    this.loadedAt = Date.now();
  }

  /** The role of a bearer token, or undefined. */
  async verify(token: string): Promise<Role | undefined> {
    if (Date.now() - this.loadedAt > 5000) await this.load();
    const h = Buffer.from(hash(token), 'hex');
    for (const [known, role] of this.cache) {
      if (timingSafeEqual(Buffer.from(known, 'hex'), h)) return role;
    }
    return undefined;
  }
}

export interface BootstrapTokens {
  adminTokenFile: string;
  joinTokenFile: string;
  /** Tokens as read from (or just written to) the files. */
  admin: string;
  join: string;
}

async function readOrCreate(auth: TokenAuth, file: string, id: string, role: Role): Promise<string> {
  try {
    const t = (await readFile(file, 'utf8')).trim();
    if ((await auth.verify(t)) === role) return t;
  } catch {
    /* first start */
  }
  const t = newToken(role);
  await auth.add(id, role, t);
  await writeFile(file, `${t}\n`, { mode: 0o600 });
  await chmod(file, 0o600);
  return t;
}

/** On first start: creates the admin and node-join tokens (files mode 0600 in dataDir). */
export async function bootstrapTokens(auth: TokenAuth, dataDir: string): Promise<BootstrapTokens> {
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const adminTokenFile = join(dataDir, 'admin.token');
  const joinTokenFile = join(dataDir, 'join.token');
  const admin = await readOrCreate(auth, adminTokenFile, 'admin', 'admin');
  const join_ = await readOrCreate(auth, joinTokenFile, 'join', 'agent');
  return { adminTokenFile, joinTokenFile, admin, join: join_ };
}
