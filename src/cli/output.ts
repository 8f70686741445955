/**
 * Output for people (aligned tables) and for scripts (-o json). Text for people goes
 * through escapeControls: values from the server, agents and users cannot drive the
 * terminal or forge rows (JSON output escapes them by itself).
 */
import type { Command } from 'commander';
import { InputError } from '../errors.js';
import { escapeControls } from '../escape.js';

export type Format = 'table' | 'json';

/** 1234 ms → "1.2s". */
export const secs = (ms: number): string => `${(ms / 1000).toFixed(1)}s`;

export function format(cmd: Command): Format {
  const o = (cmd.optsWithGlobals() as { output?: string }).output ?? 'table';
  if (o !== 'table' && o !== 'json') throw new InputError(`--output: expected table or json, got "${o}"`, 'output');
  return o;
}

/** Aligned columns; each cell is one line, its control characters escaped. */
export function table(rows: (string | number)[][], header: string[]): string {
  const all = [header, ...rows].map((r) => r.map((c) => escapeControls(String(c))));
  const widths = header.map((_, i) => Math.max(...all.map((r) => String(r[i] ?? '').length)));
  return all.map((r) => r.map((c, i) => String(c ?? '').padEnd(widths[i])).join('  ').trimEnd()).join('\n');
}

/** `data` as JSON with -o json, else the text `toTable` builds (tables, views of several lines). */
export function print(cmd: Command, data: unknown, toTable: () => string): void {
  process.stdout.write(`${format(cmd) === 'json' ? JSON.stringify(data, null, 2) : escapeControls(toTable(), { keepNewlines: true })}\n`);
}

/** A progress, warning or error line for people, on stderr. */
export function printErr(text: string): void {
  process.stderr.write(`${escapeControls(text, { keepNewlines: true })}\n`);
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
