/**
 * Every command-line value parser in one place: listen addresses, durations, sizes and
 * numbers. Each throws an InputError naming the flag, so the CLI prints one line.
 */
import { InputError } from '../errors.js';

export { parseListen } from '../model/listen.js';

/** commander accumulator for repeatable options. */
export const collect = (v: string, acc: string[]): string[] => [...acc, v];

/** "90s", "5m", "2h" or plain seconds → whole seconds. */
export function parseDuration(s: string, field: string): number {
  const m = /^(\d+)(s|m|h)?$/.exec(s.trim());
  if (!m) throw new InputError(`--${field}: expected a duration like 90s, 5m or 2h, got "${s}"`, field);
  return Number(m[1]) * ({ s: 1, m: 60, h: 3600 }[m[2] ?? 's'] as number);
}

/** `--on-node-lost`: replace | wait. */
export function parseOnNodeLost(v: string): 'replace' | 'wait' {
  if (v !== 'replace' && v !== 'wait') throw new InputError(`--on-node-lost must be replace or wait, got "${v}"`, 'on-node-lost');
  return v;
}

/** A (fractional) number of seconds >= min → milliseconds. */
export function parseSecondsMs(v: string, field: string, min: number): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n < min) throw new InputError(`--${field} must be a number of seconds >= ${min}, got ${JSON.stringify(v)}`, field);
  return Math.round(n * 1000);
}

/** Any finite number. */
export function parseNumber(v: string, field: string): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n)) throw new InputError(`--${field}: expected a number, got "${v}"`, field);
  return n;
}

/** A whole number, optionally within [min, max]. */
export function parseInteger(v: string, field: string, min = -Infinity, max = Infinity): number {
  const n = Number(v);
  if (!/^-?\d+$/.test(v.trim()) || n < min || n > max) {
    const range = max === Infinity ? (min === -Infinity ? '' : ` >= ${min}`) : ` ${min}-${max}`;
    throw new InputError(`--${field}: expected a whole number${range}, got "${v}"`, field);
  }
  return n;
}

const UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, ki: 1024, m: 1024 ** 2, mi: 1024 ** 2, g: 1024 ** 3, gi: 1024 ** 3, t: 1024 ** 4, ti: 1024 ** 4 };

/** "512m", "1g", "256Mi", "1048576" → bytes. */
export function parseBytes(s: string, field = 'memory'): number {
  const m = /^(\d+(?:\.\d+)?)\s*([a-zA-Z]{0,2})$/.exec(s.trim());
  const unit = m ? UNITS[m[2].toLowerCase().replace(/b$/, '') || ''] ?? UNITS[m[2].toLowerCase()] : undefined;
  if (!m || unit === undefined) throw new InputError(`--${field}: expected a size like 512m or 2g, got "${s}"`, field);
  return Math.round(Number(m[1]) * unit);
}
