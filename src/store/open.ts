/**
 * `--store` URL → a Store. The one place that knows the backends; everything above
 * talks to the Store interface only (DESIGN.md principle 2).
 *
 *   sqlite:PATH | PATH                 embedded SQLite (the default); sqlite::memory: for tests
 *   etcd://h1:2379,h2:2379[?ca=…&cert=…&key=…]   etcd cluster; ca/cert/key are PEM file
 *                                      paths and switch the connection to TLS
 *
 * Backends are imported on demand, so an etcd server never loads the SQLite addon.
 */
import { InputError } from '../errors.js';
import type { Store } from './store.js';

const FIELD = 'store';

export async function openStore(url: string): Promise<Store> {
  if (typeof url !== 'string' || url.trim() === '') {
    throw new InputError('store URL is empty; use sqlite:PATH or etcd://host:port,…', FIELD);
  }
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(url)?.[1]?.toLowerCase();
  if (scheme === 'etcd' || scheme === 'etcds') {
    const opts = parseEtcdUrl(url);
    const { EtcdStore } = await import('./etcd.js');
    return EtcdStore.open(opts);
  }
  let path: string;
  if (scheme === 'sqlite') path = url.slice('sqlite:'.length);
  else if (scheme === undefined || scheme.length === 1) path = url; // bare path (or C:\…)
  else throw new InputError(`unknown store URL scheme "${scheme}:"; use sqlite:PATH or etcd://host:port,…`, FIELD);
  if (path.startsWith('//')) path = path.slice(2); // tolerate sqlite://relative/or/abs path
  if (path === '') throw new InputError('sqlite store URL has no path; use sqlite:PATH', FIELD);
  const { SqliteStore } = await import('./sqlite.js');
  try {
    return SqliteStore.open(path);
  } catch (err) {
    // A missing directory or unreadable file is a mistake in the URL, not a crash.
    if (/^SQLITE_(CANTOPEN|NOTADB|READONLY|PERM)/.test(String((err as { code?: unknown }).code))) {
      throw new InputError(`cannot open sqlite store ${path}: ${(err as Error).message}`, FIELD);
    }
    if (err instanceof TypeError && /directory does not exist/.test(err.message)) {
      throw new InputError(`cannot open sqlite store ${path}: ${err.message}`, FIELD);
    }
    throw err;
  }
}

export interface EtcdUrl {
  endpoints: string[];
  tls?: { ca?: string; cert?: string; key?: string };
}

/** etcd://h1:2379,h2:2379?ca=/etc/kiver/ca.pem&cert=…&key=… (etcds:// = TLS with system CAs). */
export function parseEtcdUrl(url: string): EtcdUrl {
  const m = /^(etcds?):\/\/([^/?#]*)\/?(?:\?([^#]*))?$/i.exec(url);
  if (!m) throw new InputError(`bad etcd store URL "${url}"; expected etcd://host:port[,host:port…]`, FIELD);
  const secureScheme = m[1].toLowerCase() === 'etcds';
  const hosts = m[2].split(',').filter((h) => h !== '');
  if (hosts.length === 0) throw new InputError(`etcd store URL "${url}" names no host`, FIELD);
  for (const h of hosts) {
    const hm = /^(\[[0-9a-f:.]+\]|[a-z0-9.-]+):(\d{1,5})$/i.exec(h);
    const port = hm ? Number(hm[2]) : 0;
    if (!hm || port < 1 || port > 65535) {
      throw new InputError(`bad etcd endpoint "${h}" in store URL; expected host:port`, FIELD);
    }
  }
  const params = new URLSearchParams(m[3] ?? '');
  const tls: NonNullable<EtcdUrl['tls']> = {};
  for (const [k, v] of params) {
    if (k !== 'ca' && k !== 'cert' && k !== 'key') {
      throw new InputError(`unknown etcd store URL option "${k}"; known: ca, cert, key`, FIELD);
    }
    if (v === '') throw new InputError(`etcd store URL option "${k}" needs a file path`, FIELD);
    tls[k] = v;
  }
  if ((tls.cert === undefined) !== (tls.key === undefined)) {
    throw new InputError('etcd store URL needs both cert and key for client TLS', FIELD);
  }
  const secure = secureScheme || Object.keys(tls).length > 0;
  return {
    endpoints: hosts.map((h) => `${secure ? 'https' : 'http'}://${h}`),
    ...(secure ? { tls } : {}),
  };
}
