/**
 * What a create request of a managed type adds to an ordinary service: the
 * expanded spec (template, parameters, endpoint ports) and the sealed credentials,
 * stored in the same transaction as the service.
 */
import type { Store, Op } from '../store/store.js';
import { K } from '../model/keys.js';
import { listJson } from '../store/json.js';
import { UnavailableError } from '../errors.js';
import type { Service, ServiceCreate } from '../model/service.js';
import type { SecretBox } from '../secrets.js';
import { ENDPOINT_PORTS, expandCreate } from './catalog.js';
import { sealCredentials } from './credentials.js';

export interface Prepared {
  create: ServiceCreate;
  /** Set on the spec after defaults: parameters and endpoint ports. */
  extra: Pick<Service['spec'], 'params' | 'endpoints'>;
  /** Further keys written with the service (sealed credentials). */
  puts: Op[];
}

/** The lowest free pair of endpoint ports (write, read) not used by another managed service. */
async function endpointPorts(store: Store): Promise<{ write: number; read: number }> {
  const used = new Set<number>();
  for (const s of await listJson<Service>(store, K.services)) {
    if (s.spec.endpoints) used.add(s.spec.endpoints.write).add(s.spec.endpoints.read);
  }
  for (let p = ENDPOINT_PORTS.min; p + 1 <= ENDPOINT_PORTS.max; p += 2) {
    if (!used.has(p) && !used.has(p + 1)) return { write: p, read: p + 1 };
  }
  throw new UnavailableError(`no free endpoint ports left in ${ENDPOINT_PORTS.min}-${ENDPOINT_PORTS.max}`);
}

export async function prepareCreate(store: Store, box: SecretBox, body: ServiceCreate): Promise<Prepared> {
  const x = expandCreate(body);
  if (!x.credentials) return { create: x.create, extra: {}, puts: [] };
  return {
    create: x.create,
    extra: { params: x.params, endpoints: await endpointPorts(store) },
    puts: [{ type: 'put', key: K.serviceCredentials(body.name), value: JSON.stringify({ sealed: sealCredentials(box, body.name, x.credentials) }) }],
  };
}
