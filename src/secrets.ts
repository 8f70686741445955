/**
 * Service secrets at rest: AES-256-GCM envelopes (SecretBox, shared with the
 * machine inventory's BMC passwords), bound to `service/<name>/env/<KEY>` so an
 * envelope cannot be moved to another service or variable. Servers of one
 * cluster must share the key file (`--secret-key-file`).
 */
import { SecretBox } from './machine/secrets.js';

export { SecretBox };
export const SERVICE_SECRET_KEY_FILE = 'service-secrets.key';

const ctx = (service: string, key: string) => `service/${service}/env/${key}`;

export function sealEnv(box: SecretBox, service: string, env: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(env).map(([k, v]) => [k, box.encrypt(v, ctx(service, k))]));
}

export function openEnv(box: SecretBox, service: string, sealed: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(sealed).map(([k, v]) => [k, box.decrypt(v, ctx(service, k))]));
}

/** What the API shows instead of a secret: that it is set. */
export function maskEnv(sealed: Record<string, string> | undefined): Record<string, string> {
  return Object.fromEntries(Object.keys(sealed ?? {}).map((k) => [k, '(set)']));
}
