import { InputError } from '../errors.js';

/** `host:port` ([v6]:port too); port 0 picks a free one. `field` names the flag in the error. */
export function parseListen(listen: string, field = 'listen'): { host: string; port: number } {
  const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(listen);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port > 65535) throw new InputError(`${field}: expected HOST:PORT, got "${listen}"`, field);
  return { host: m[1].replace(/^\[|\]$/g, ''), port };
}
