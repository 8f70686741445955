/**
 * Name rules. Names become container names, directory names and store keys, so
 * they are restricted to DNS-label characters: no `/`, `..`, spaces or odd bytes.
 */
export const SERVICE_NAME = '^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$';
export const NODE_NAME = '^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$';
/** Docker image reference: [registry[:port]/]path[:tag][@sha256:digest]. */
export const IMAGE_REF =
  '^(?:(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]{1,5})?/)?' +
  '[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*' +
  '(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$';
export const ENV_NAME = '^[A-Za-z_][A-Za-z0-9_]{0,127}$';
/** Node label keys (as agents register them) and the values a service constraint may ask for. */
export const LABEL_KEY = '^[a-z0-9./-]{1,63}$';
export const LABEL_VALUE = '^[A-Za-z0-9._-]{0,63}$';

const serviceRe = new RegExp(SERVICE_NAME);
export function isServiceName(s: string): boolean {
  return serviceRe.test(s);
}

/** A replica's stable identity: `<service>/<ordinal>`. */
export function replicaId(service: string, ordinal: number): string {
  return `${service}/${ordinal}`;
}

/** Container name derived from the identity, so a recreated container finds its data. */
export function containerName(service: string, ordinal: number): string {
  return `kiver-${service}-${ordinal}`;
}
