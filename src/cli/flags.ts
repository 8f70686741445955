/**
 * Every command-line value parser in one place: listen addresses, durations, sizes and
 * numbers. Each throws an InputError naming the flag, so the CLI prints one line.
 */
import { readFileSync } from 'node:fs';
import { InputError } from '../errors.js';
import { LABEL_KEY, LABEL_VALUE } from '../model/names.js';
import { LOG_FORMATS, LOG_LEVELS, type LogFormat } from '../log.js';

import { parseListen } from '../model/listen.js';
export { parseListen };

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

const labelKey = new RegExp(LABEL_KEY);
const labelValue = new RegExp(LABEL_VALUE);

/** Repeated `key=value` node labels (`--label`, `--constraint`) → a record; a key given twice is an error. */
export function parseLabels(pairs: string[], field: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const p of pairs) {
    const i = p.indexOf('=');
    const [k, v] = i < 0 ? [p, undefined] : [p.slice(0, i), p.slice(i + 1)];
    if (v === undefined || !labelKey.test(k) || !labelValue.test(v)) {
      throw new InputError(`--${field}: expected key=value (key: a-z 0-9 . / -, value: A-Z a-z 0-9 . _ -, each at most 63), got ${JSON.stringify(p)}`, field);
    }
    if (k in out && out[k] !== v) throw new InputError(`--${field}: ${k} given twice (${out[k]}, ${v})`, field);
    out[k] = v;
  }
  return out;
}

/** --log-level: one of pino's levels. */
export function parseLogLevel(v: string, field = 'log-level'): string {
  if (!(LOG_LEVELS as readonly string[]).includes(v)) throw new InputError(`--${field} must be one of ${LOG_LEVELS.join(', ')}, got "${v}"`, field);
  return v;
}

/** --log-format: auto (pretty on a terminal), pretty or json. */
export function parseLogFormat(v: string, field = 'log-format'): LogFormat {
  if (!(LOG_FORMATS as readonly string[]).includes(v)) throw new InputError(`--${field} must be one of ${LOG_FORMATS.join(', ')}, got "${v}"`, field);
  return v as LogFormat;
}

const UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, ki: 1024, m: 1024 ** 2, mi: 1024 ** 2, g: 1024 ** 3, gi: 1024 ** 3, t: 1024 ** 4, ti: 1024 ** 4 };

/** "512m", "1g", "256Mi", "1048576" → bytes. */
export function parseBytes(s: string, field = 'memory'): number {
  const m = /^(\d+(?:\.\d+)?)\s*([a-zA-Z]{0,2})$/.exec(s.trim());
  const unit = m ? UNITS[m[2].toLowerCase().replace(/b$/, '') || ''] ?? UNITS[m[2].toLowerCase()] : undefined;
  if (!m || unit === undefined) throw new InputError(`--${field}: expected a size like 512m or 2g, got "${s}"`, field);
  return Math.round(Number(m[1]) * unit);
}

/** A size in Docker's log-opts form ("50m", "512k", "1g"), from anything parseBytes takes. */
export function parseDockerSize(s: string, field: string): string {
  const b = parseBytes(s, field);
  if (b < 1024) throw new InputError(`--${field}: at least 1k, got "${s}"`, field);
  for (const [unit, n] of [['g', 1024 ** 3], ['m', 1024 ** 2]] as const) if (b % n === 0) return `${b / n}${unit}`;
  return `${Math.ceil(b / 1024)}k`;
}

export type HealthFormat = 'text' | 'json' | 'influx' | 'prometheus';
/** `kiver health -o`: table/text for people, json, influx (telegraf exec), prometheus. */
export function parseHealthFormat(v: string | undefined): HealthFormat {
  if (v === undefined || v === 'table' || v === 'text') return 'text';
  if (v === 'json' || v === 'influx' || v === 'prometheus') return v;
  throw new InputError(`--output: expected text, json, influx or prometheus, got "${v}"`, 'output');
}

/** "h:p,h:p" → that many host:port pairs (`kiver monitoring up` addresses). */
export function parseListenList(v: string, field: string, count: number): { host: string; port: number }[] {
  const parts = v.split(',').map((x) => x.trim()).filter(Boolean);
  if (parts.length !== count) throw new InputError(`--${field}: expected ${count} comma-separated HOST:PORT, got "${v}"`, field);
  return parts.map((x) => parseListen(x, field));
}

/** Backup policy flags (`service create --backup-*`, `backup policy set`) → the API's policy body; undefined when none given. */
export function parseBackupPolicy(o: { schedule?: string; tz?: string; target?: string; keep?: string; keepDays?: string }, prefix = ''):
  { schedule: string; target: string; tz?: string; keep?: number; keepDays?: number } | undefined {
  if ([o.schedule, o.tz, o.target, o.keep, o.keepDays].every((v) => v === undefined)) return undefined;
  if (!o.schedule) throw new InputError(`--${prefix}schedule: required with the other --${prefix}* flags (a cron expression, e.g. "0 2 * * *")`, `${prefix}schedule`);
  if (!o.target) throw new InputError(`--${prefix}target: required with --${prefix}schedule (kiver backup target ls)`, `${prefix}target`);
  return {
    schedule: o.schedule, target: o.target,
    ...(o.tz !== undefined ? { tz: o.tz } : {}),
    ...(o.keep !== undefined ? { keep: parseInteger(o.keep, `${prefix}keep`) } : {}),
    ...(o.keepDays !== undefined ? { keepDays: parseInteger(o.keepDays, `${prefix}keep-days`) } : {}),
  };
}

/** A secret given on the command line as VALUE or @FILE (keeps it out of the process list and shell history). */
export function parseSecretArg(v: string, field: string): string {
  if (!v.startsWith('@')) return v;
  try {
    return readFileSync(v.slice(1), 'utf8').replace(/\n$/, '');
  } catch (err) {
    throw new InputError(`--${field}: cannot read ${v.slice(1)} (${(err as NodeJS.ErrnoException).code})`, field);
  }
}

/** Repeated `--param name=value` → a record of text values (the server checks names and ranges per type). */
export function parseParams(pairs: string[], field = 'param'): Record<string, string> {
  const out: Record<string, string> = {};
  for (const p of pairs) {
    const i = p.indexOf('=');
    if (i <= 0) throw new InputError(`--${field}: expected name=value, got ${JSON.stringify(p)}`, field);
    out[p.slice(0, i)] = p.slice(i + 1);
  }
  return out;
}

/** Repeated `--ip ORDINAL=ADDRESS` → {ordinal: address}; the server checks the address. */
export function parsePins(pairs: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const p of pairs) {
    const m = /^(0|[1-9]\d{0,3})=(\S+)$/.exec(p);
    if (!m) throw new InputError(`--ip: expected ORDINAL=ADDRESS (e.g. 0=10.1.0.5), got ${JSON.stringify(p)}`, 'ip');
    if (m[1] in out) throw new InputError(`--ip: ordinal ${m[1]} given twice`, 'ip');
    out[m[1]] = m[2];
  }
  return out;
}

/** `kiver pool create`: exactly one of --service S, --app A, --global. */
export function parsePoolScope(o: { service?: string; app?: string; global?: boolean }): { service: string } | { app: string } | { global: true } {
  const given = [o.service !== undefined, o.app !== undefined, Boolean(o.global)].filter(Boolean).length;
  if (given !== 1) throw new InputError('give exactly one of --service S, --app A or --global', 'scope');
  return o.service !== undefined ? { service: o.service } : o.app !== undefined ? { app: o.app } : { global: true };
}
