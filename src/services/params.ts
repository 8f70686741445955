/**
 * A service type's parameters: each has a kind and a range, checked on create so a
 * bad or unknown parameter is a 400 naming it and nothing is stored.
 */
import { InputError } from '../errors.js';

export type ParamValue = string | number | boolean;

export type ParamDef =
  | { kind: 'integer'; min: number; max: number; default: number; unit?: string; description: string }
  | { kind: 'enum'; values: readonly string[]; default: string; description: string }
  | { kind: 'boolean'; default: boolean; description: string };

export type ParamDefs = Record<string, ParamDef>;

/** Parameter names look like the servers' own settings: lower case and underscores. */
export const PARAM_NAME = '^[a-z][a-z0-9_]{0,63}$';

/** What the CLI sends is text (`max_connections=500`); the API also takes JSON numbers and booleans. */
function coerce(name: string, def: ParamDef, v: ParamValue): ParamValue {
  const field = `params/${name}`;
  if (def.kind === 'integer') {
    const n = typeof v === 'number' ? v : typeof v === 'string' && /^-?\d+$/.test(v) ? Number(v) : NaN;
    if (!Number.isInteger(n)) throw new InputError(`params.${name}: expected an integer, got ${JSON.stringify(v)}`, field);
    if (n < def.min || n > def.max) {
      throw new InputError(`params.${name}: ${n} is out of range ${def.min}..${def.max}${def.unit ? ` ${def.unit}` : ''}`, field);
    }
    return n;
  }
  if (def.kind === 'boolean') {
    if (typeof v === 'boolean') return v;
    if (v === 'true' || v === 'yes' || v === 'on') return true;
    if (v === 'false' || v === 'no' || v === 'off') return false;
    throw new InputError(`params.${name}: expected true or false, got ${JSON.stringify(v)}`, field);
  }
  if (typeof v !== 'string' || !def.values.includes(v)) {
    throw new InputError(`params.${name}: expected one of ${def.values.join(', ')}, got ${JSON.stringify(v)}`, field);
  }
  return v;
}

/** Checks names and values and fills defaults; throws InputError naming the first bad field. */
export function resolveParams(type: string, defs: ParamDefs, given: Record<string, ParamValue> = {}): Record<string, ParamValue> {
  const out: Record<string, ParamValue> = {};
  for (const [name, v] of Object.entries(given)) {
    const def = defs[name];
    if (!def) {
      const known = Object.keys(defs);
      throw new InputError(`params.${name}: unknown parameter for type ${type}; known: ${known.join(', ') || '(none)'}`, `params/${name}`);
    }
    out[name] = coerce(name, def, v);
  }
  for (const [name, def] of Object.entries(defs)) if (!(name in out)) out[name] = def.default;
  return out;
}
