/**
 * The service catalog: `app` (your image) and the managed types under
 * src/services/<type>/. A create request of a managed type is expanded here into
 * an ordinary service (image, command, ports, secret env) plus its parameters and
 * generated credentials, after checks that name the bad field.
 */
import { InputError } from '../errors.js';
import type { ServiceCreate } from '../model/service.js';
import { resolveParams, type ParamDef, type ParamValue } from './params.js';
import type { Credentials, ServiceType } from './types.js';
import { mysqlType } from './mysql/index.js';
import { redisType } from './redis/index.js';
import { APP_TYPE, appType } from './app/index.js';

export const MANAGED_TYPES: readonly ServiceType[] = [mysqlType, redisType];
export const TYPE_NAMES = [APP_TYPE, ...MANAGED_TYPES.map((t) => t.name)] as const;

export function managedType(name: string | undefined): ServiceType | undefined {
  return MANAGED_TYPES.find((t) => t.name === name);
}

/** Client endpoints are served on the servers from this range: a write and a read port per managed service. */
export const ENDPOINT_PORTS = { min: 33000, max: 33999 } as const;

export interface CatalogEntry {
  type: string;
  description: string;
  version: string;
  image: string;
  port?: number;
  replicas?: { min: number; max: number; default: number };
  params: ({ name: string } & ParamDef)[];
}

export function catalog(): CatalogEntry[] {
  return [
    { type: appType.name, description: appType.description, version: appType.version, image: '(--image)', params: [] },
    ...MANAGED_TYPES.map((t) => ({
      type: t.name, description: t.description, version: t.version, image: t.image, port: t.port, replicas: t.replicas,
      params: Object.entries(t.params).map(([name, d]) => ({ name, ...d })),
    })),
  ];
}

/** Environment names that carry a secret: a password there would be stored and shown in clear. */
const SECRET_NAME = /PASS|SECRET|TOKEN|CREDENTIAL|KEY/i;

export interface Expanded {
  create: ServiceCreate;
  params?: Record<string, ParamValue>;
  /** Plaintext; the route seals it before storing. */
  credentials?: Credentials;
}

/** A create request with the type's template applied; InputError (400, field named) when it does not fit the type. */
export function expandCreate(body: ServiceCreate): Expanded {
  const typeName = body.type ?? APP_TYPE;
  const t = managedType(typeName);
  if (!t) {
    if (typeName !== APP_TYPE) throw new InputError(`type: unknown service type "${typeName}"; known: ${TYPE_NAMES.join(', ')}`, 'type');
    if (!body.image) throw new InputError('image: required for type app', 'image');
    if (body.params && Object.keys(body.params).length) throw new InputError('params: type app takes no parameters', 'params');
    return { create: body };
  }
  for (const f of ['image', 'command', 'ports', 'secretEnv'] as const) {
    if (body[f] !== undefined) {
      throw new InputError(`${f}: set by type ${t.name}${f === 'secretEnv' ? ' (its credentials are generated: kiver service credentials)' : ''}`, f);
    }
  }
  for (const k of Object.keys(body.env ?? {})) {
    if (SECRET_NAME.test(k)) throw new InputError(`env/${k}: a secret does not belong in env (stored in clear); type ${t.name} generates its credentials`, `env/${k}`);
  }
  const replicas = body.replicas ?? t.replicas.default;
  if (replicas < t.replicas.min || replicas > t.replicas.max) {
    throw new InputError(`replicas: type ${t.name} needs ${t.replicas.min}..${t.replicas.max} replicas, got ${replicas}`, 'replicas');
  }
  const params = resolveParams(t.name, t.params, body.params);
  const credentials = t.newCredentials();
  const tpl = t.template(params, credentials, replicas);
  return {
    create: {
      ...body,
      type: t.name as ServiceCreate['type'],
      image: tpl.image,
      command: tpl.command,
      env: { ...tpl.env, ...(body.env ?? {}) },
      secretEnv: tpl.secretEnv,
      ports: [{ container: t.port }],
      memory: body.memory ?? t.memory,
      replicas,
      // A replica's data dir is its identity: it never moves by itself, and never runs twice.
      localData: true,
      onNodeLost: 'wait',
    },
    params,
    credentials,
  };
}
