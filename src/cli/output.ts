/** Output for people (aligned tables) and for scripts (-o json). */
import type { Command } from 'commander';
import { InputError } from '../errors.js';

export type Format = 'table' | 'json';

/** commander accumulator for repeatable options. */
export const collect = (v: string, acc: string[]): string[] => [...acc, v];

/** 1234 ms → "1.2s". */
export const secs = (ms: number): string => `${(ms / 1000).toFixed(1)}s`;

export function format(cmd: Command): Format {
  const o = (cmd.optsWithGlobals() as { output?: string }).output ?? 'table';
  if (o !== 'table' && o !== 'json') throw new InputError(`--output: expected table or json, got "${o}"`, 'output');
  return o;
}

export function table(rows: (string | number)[][], header: string[]): string {
  const all = [header, ...rows.map((r) => r.map(String))];
  const widths = header.map((_, i) => Math.max(...all.map((r) => String(r[i] ?? '').length)));
  return all.map((r) => r.map((c, i) => String(c ?? '').padEnd(widths[i])).join('  ').trimEnd()).join('\n');
}

export function print(cmd: Command, data: unknown, toTable: () => string): void {
  process.stdout.write(`${format(cmd) === 'json' ? JSON.stringify(data, null, 2) : toTable()}\n`);
}

const UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, ki: 1024, m: 1024 ** 2, mi: 1024 ** 2, g: 1024 ** 3, gi: 1024 ** 3, t: 1024 ** 4, ti: 1024 ** 4 };

/** "512m", "1g", "256Mi", "1048576" → bytes. */
export function parseBytes(s: string, field = 'memory'): number {
  const m = /^(\d+(?:\.\d+)?)\s*([a-zA-Z]{0,2})$/.exec(s.trim());
  const unit = m ? UNITS[m[2].toLowerCase().replace(/b$/, '') || ''] ?? UNITS[m[2].toLowerCase()] : undefined;
  if (!m || unit === undefined) throw new InputError(`--${field}: expected a size like 512m or 2g, got "${s}"`, field);
  return Math.round(Number(m[1]) * unit);
}

export function formatBytes(n: number): string {
  for (const [u, f] of [['Gi', 1024 ** 3], ['Mi', 1024 ** 2], ['Ki', 1024]] as const) if (n >= f) return `${+(n / f).toFixed(1)}${u}`;
  return `${n}B`;
}

export function age(iso: string | undefined): string {
  if (!iso) return '-';
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  if (s < 172800) return `${Math.round(s / 3600)}h`;
  return `${Math.round(s / 86400)}d`;
}
