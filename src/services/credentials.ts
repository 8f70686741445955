/**
 * Generated service credentials: random, sealed at rest with the cluster's
 * SecretBox (AES-256-GCM, bound to the service's name), opened only for the role
 * controller and for an admin's `kiver service credentials`.
 */
import { randomBytes } from 'node:crypto';
import type { SecretBox } from '../secrets.js';
import type { Credentials } from './types.js';

/** 24 random bytes as base64url: no quote, backslash or space to escape in any config or SQL. */
export function newPassword(): string {
  return randomBytes(24).toString('base64url');
}

const context = (service: string) => `service/${service}/credentials`;

export function sealCredentials(box: SecretBox, service: string, c: Credentials): string {
  return box.encrypt(JSON.stringify(c), context(service));
}

export function openCredentials(box: SecretBox, service: string, sealed: string): Credentials {
  return JSON.parse(box.decrypt(sealed, context(service))) as Credentials;
}
