/** The fixed-IP fields of a service spec, checked (the schema cannot parse addresses). */
import type { ServiceSpec } from '../model/service.js';
import { canonical } from './address.js';

/** [field, message] for a bad pinned address, or undefined; pins are stored in canonical form. */
export function checkPins(spec: Pick<ServiceSpec, 'ips'>): [string, string] | undefined {
  const seen = new Map<string, string>();
  for (const [ordinal, ip] of Object.entries(spec.ips ?? {})) {
    const c = canonical(ip);
    if (!c) return [`ips/${ordinal}`, `${JSON.stringify(ip)} is not an IPv4 or IPv6 address`];
    if (seen.has(c)) return [`ips/${ordinal}`, `${c} is pinned to ordinal ${seen.get(c)} already`];
    seen.set(c, ordinal);
    spec.ips![ordinal] = c;
  }
  return undefined;
}
