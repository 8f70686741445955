/**
 * Bearer tokens and node credentials. The store keeps only SHA-256 hashes (so a
 * store snapshot leaks no usable token); the plaintext goes once into a 0600 file
 * (the data dir's admin/join tokens, the agent's node credential) or to the
 * admin who created it, the way k3s writes its kubeconfig and node token.
 *
 * Roles: admin (everything), viewer (every GET but the agent routes and the token
 * list), agent (the join token: may only register a node that does not exist yet),
 * node (one node's credential: the agent routes, for that node only — Nomad's node
 * secret ID, Kubernetes' NodeRestriction).
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { writeSecretFile } from '../secret-file.js';
import { join } from 'node:path';
import type { Store } from '../store/store.js';
import type { CacheChange, StoreCache } from '../controllers/cache.js';
import { K } from '../model/keys.js';
import { ConflictError } from '../errors.js';

export type Role = 'admin' | 'viewer' | 'agent' | 'node';

export interface TokenRecord {
  role: Role;
  /** '' = no usable secret (a node credential revoked by `kiver node rekey`: the node may join again). */
  hash: string;
  createdAt: string;
  /** For role node: the node this credential acts for. */
  node?: string;
}

/** Who a request comes from. */
export interface Principal {
  id: string;
  role: Role;
  node?: string;
}

const hash = (t: string) => createHash('sha256').update(t).digest('hex');

export function newToken(role: Role): string {
  return `kiver_${role}_${randomBytes(24).toString('base64url')}`;
}

/** The token id of a node's credential. */
export const nodeCredentialId = (node: string) => `node.${node}`;

export class TokenAuth {
  /**
   * hash → principal, kept current incrementally: this server's own writes at once
   * (`note`), every other server's through the store cache's watch (a revocation reaches
   * all servers within the watch latency). A full reload from the store runs every
   * minute and, at most once a second, on a miss. A join or a revocation costs O(1).
   */
  private byHash = new Map<string, { principal: Principal; hash: Buffer }>();
  private byId = new Map<string, string>();
  private loadedAt = 0;
  private missReloadAt = 0;

  constructor(private readonly store: Store) {}

  /** Follows token changes other servers make, through the server's store cache. */
  useCache(cache: StoreCache): void {
    cache.on('change', (c: CacheChange) => {
      if (c.key.startsWith(K.tokens)) this.note(c.key.slice(K.tokens.length), c.kv ? (JSON.parse(c.kv.value) as TokenRecord) : undefined);
    });
  }

  /** Records that the token record of `id` is now `rec` (undefined: deleted). */
  note(id: string, rec: TokenRecord | undefined): void {
    const old = this.byId.get(id);
    if (old !== undefined) {
      this.byHash.delete(old);
      this.byId.delete(id);
    }
    if (!rec || rec.hash === '') return;
    const principal: Principal = { id, role: rec.role, ...(rec.node ? { node: rec.node } : {}) };
    this.byHash.set(rec.hash, { principal, hash: Buffer.from(rec.hash, 'hex') });
    this.byId.set(id, rec.hash);
  }

  /** Stores a token's hash under id (replacing any previous token of that id). */
  async add(id: string, role: Role, token: string, node?: string): Promise<void> {
    const rec = record(role, token, node);
    await this.store.put(K.token(id), JSON.stringify(rec));
    this.note(id, rec);
  }

  /** The stored record of a token id (no secret in it). */
  async get(id: string): Promise<{ record: TokenRecord; modRevision: number } | undefined> {
    const kv = await this.store.get(K.token(id));
    return kv ? { record: JSON.parse(kv.value) as TokenRecord, modRevision: kv.modRevision } : undefined;
  }

  async list(): Promise<(Omit<TokenRecord, 'hash'> & { id: string; revoked?: boolean })[]> {
    const res = await this.store.list(K.tokens);
    return res.kvs.map((kv) => {
      const { hash: h, ...rest } = JSON.parse(kv.value) as TokenRecord;
      return { id: kv.key.slice(K.tokens.length), ...rest, ...(h === '' ? { revoked: true } : {}) };
    });
  }

  async remove(id: string): Promise<void> {
    await this.store.delete(K.token(id));
    this.note(id, undefined);
  }

  /**
   * A new secret for an existing token id, same role; the old one stops working.
   * CAS on the record, so two rotations never both "win".
   */
  async rotate(id: string): Promise<{ role: Role; token: string }> {
    const cur = await this.get(id);
    if (!cur) throw new ConflictError(`token ${id} does not exist`);
    const token = newToken(cur.record.role);
    const rec = record(cur.record.role, token, cur.record.node);
    const res = await this.store.txn({
      compare: [{ key: K.token(id), modRevision: cur.modRevision }],
      success: [{ type: 'put', key: K.token(id), value: JSON.stringify(rec) }],
    });
    if (!res.succeeded) throw new ConflictError(`token ${id} changed meanwhile; try again`);
    this.note(id, rec);
    return { role: cur.record.role, token };
  }

  private async load(): Promise<void> {
    const res = await this.store.list(K.tokens);
    this.byHash = new Map();
    this.byId = new Map();
    for (const kv of res.kvs) this.note(kv.key.slice(K.tokens.length), JSON.parse(kv.value) as TokenRecord);
    this.loadedAt = Date.now();
  }

  /** Who holds a bearer token, or undefined. */
  async verify(token: string): Promise<Principal | undefined> {
    if (Date.now() - this.loadedAt > 60_000) await this.load();
    const h = hash(token);
    let p = this.byHash.get(h);
    if (!p && Date.now() - this.missReloadAt > 1000) {
      this.missReloadAt = Date.now();
      await this.load();
      p = this.byHash.get(h);
    }
    // The lookup is by the hash of a 192-bit secret (its timing reveals nothing usable); compare once more in constant time.
    if (!p) return undefined;
    return timingSafeEqual(p.hash, Buffer.from(h, 'hex')) ? p.principal : undefined;
  }
}

export function record(role: Role, token: string, node?: string): TokenRecord {
  return { role, hash: token === '' ? '' : hash(token), createdAt: new Date().toISOString(), ...(node ? { node } : {}) };
}

export interface BootstrapTokens {
  adminTokenFile: string;
  joinTokenFile: string;
  /** Tokens as read from (or just written to) the files. */
  admin: string;
  join: string;
}

async function readOrCreate(auth: TokenAuth, file: string, id: string, role: Role): Promise<string> {
  let t = '';
  try {
    t = (await readFile(file, 'utf8')).trim();
    if ((await auth.verify(t))?.role === role) return t;
  } catch {
    /* first start */
  }
  // Rotated on another server (or by hand): the store's token stands; this file is stale, not a reason to mint another.
  if (t && (await auth.get(id))) return t;
  t = newToken(role);
  await auth.add(id, role, t);
  await writeSecretFile(file, t);
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
