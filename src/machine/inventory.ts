/**
 * Parsing of YAML or CSV inventory files ("centralized parameter
 * configuration"). Validation reports every bad value with its line; a file with any
 * bad row imports nothing.
 */
import { LineCounter, parseDocument, isMap, isSeq, type Node as YamlNode } from 'yaml';
import { InventoryError, type InventoryProblem } from './errors.js';
import type { MachineSpec } from '../model/machine.js';
import { crossCheck, validateMachine, type Locate } from './inventory-validate.js';

// ---------------------------------------------------------------------------------
// YAML

function deepMerge(base: unknown, over: unknown): unknown {
  if (over === undefined) return base;
  if (base && over && typeof base === 'object' && typeof over === 'object' && !Array.isArray(base) && !Array.isArray(over)) {
    const out: Record<string, unknown> = { ...(base as Record<string, unknown>) };
    for (const [k, v] of Object.entries(over as Record<string, unknown>)) out[k] = deepMerge(out[k], v);
    return out;
  }
  return over;
}

/**
 * YAML inventory: either a list of machines, or `{defaults?: {...}, machines: [...]}`
 * where `defaults` (any machine field, e.g. bmc.user, identity.gateway, dns, ntp) is
 * merged under every machine.
 */
export function parseYamlInventory(text: string): InventoryRow[] {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true });
  const lineOf = (node: unknown, fallback = 1): number => {
    const range = (node as YamlNode | undefined)?.range;
    return range ? lc.linePos(range[0]).line : fallback;
  };
  if (doc.errors.length > 0) {
    throw new InventoryError(
      doc.errors.map((e) => ({ line: lc.linePos(e.pos[0]).line, field: '', message: `YAML: ${e.message.split('\n')[0]}` })),
    );
  }
  let itemsNode: unknown = doc.contents;
  let defaults: unknown;
  let defaultsNode: unknown;
  const top = doc.contents;
  if (isMap(top)) {
    const keys = top.items.map((p) => String((p.key as { value?: unknown })?.value ?? p.key));
    const extra = keys.filter((k) => k !== 'machines' && k !== 'defaults');
    if (extra.length > 0) {
      throw new InventoryError(extra.map((k) => ({ line: lineOf(top.items.find((p) => String((p.key as { value?: unknown })?.value) === k)?.key), field: k, message: `unknown top-level key "${k}" (expected machines, defaults)` })));
    }
    itemsNode = top.get('machines', true);
    defaultsNode = top.get('defaults', true);
    defaults = (doc.toJS() as Record<string, unknown>).defaults;
    if (defaults !== undefined && (typeof defaults !== 'object' || Array.isArray(defaults) || defaults === null)) {
      throw new InventoryError([{ line: lineOf(defaultsNode), field: 'defaults', message: 'expected a mapping' }]);
    }
  }
  if (!isSeq(itemsNode)) {
    throw new InventoryError([{ line: lineOf(itemsNode), field: 'machines', message: 'expected a list of machines' }]);
  }
  const all = doc.toJS() as unknown;
  const items = (Array.isArray(all) ? all : (all as Record<string, unknown>).machines) as unknown[];
  const problems: InventoryProblem[] = [];
  const rows: { spec: MachineSpec; locate: Locate }[] = [];
  items.forEach((item, i) => {
    const itemNode = itemsNode.items[i];
    const itemLine = lineOf(itemNode);
    const locate: Locate = (field) => {
      if (!field || !isMap(itemNode)) return itemLine;
      const node = itemNode.getIn(field.split('.'), true);
      if (node) return lineOf(node, itemLine);
      const parent = field.includes('.') ? itemNode.getIn(field.split('.').slice(0, -1), true) : undefined;
      return lineOf(parent, itemLine);
    };
    const merged = defaults ? deepMerge(defaults, item) : item;
    const { spec, problems: p } = validateMachine(merged, locate);
    problems.push(...p);
    if (spec) rows.push({ spec, locate });
  });
  problems.push(...crossCheck(rows));
  if (problems.length > 0) throw new InventoryError(problems.sort((a, b) => a.line - b.line));
  return rows.map((r) => ({ spec: r.spec, line: r.locate('') }));
}

// ---------------------------------------------------------------------------------
// CSV

/** CSV columns (header row required, any order). Lists are separated by ";" or spaces. */
export const CSV_COLUMNS = [
  'name', 'bmc_driver', 'bmc_address', 'bmc_port', 'bmc_user', 'bmc_password',
  'macs', 'os', 'ip', 'hostname', 'gateway', 'dns', 'ntp',
] as const;
const CSV_FIELD: Record<string, string> = {
  name: 'name', bmc_driver: 'bmc.driver', bmc_address: 'bmc.address', bmc_port: 'bmc.port',
  bmc_user: 'bmc.user', bmc_password: 'bmc.password', macs: 'macs', mac: 'macs', os: 'osProfile',
  os_profile: 'osProfile', ip: 'identity.ip', hostname: 'identity.hostname', gateway: 'identity.gateway',
  dns: 'identity.dns', ntp: 'identity.ntp',
};

/** Splits one CSV line (RFC 4180 quoting, no line breaks inside fields). */
export function splitCsvLine(line: string): string[] | string {
  const out: string[] = [];
  let cur = '';
  let i = 0;
  let quoted = false;
  let fieldStart = true;
  while (i < line.length) {
    const c = line[i];
    if (quoted) {
      if (c === '"') {
        if (line[i + 1] === '"') { cur += '"'; i += 2; continue; }
        quoted = false; i++; continue;
      }
      cur += c; i++; continue;
    }
    if (c === '"' && fieldStart) { quoted = true; fieldStart = false; i++; continue; }
    if (c === ',') { out.push(cur); cur = ''; fieldStart = true; i++; continue; }
    cur += c; fieldStart = false; i++;
  }
  if (quoted) return 'unterminated quoted field';
  out.push(cur);
  return out;
}

export function parseCsvInventory(text: string): InventoryRow[] {
  const lines = text.split(/\r?\n/);
  const problems: InventoryProblem[] = [];
  let header: string[] | undefined;
  let headerLine = 0;
  const rows: { spec: MachineSpec; locate: Locate }[] = [];
  for (let idx = 0; idx < lines.length; idx++) {
    const lineNo = idx + 1;
    const line = lines[idx];
    if (line.trim() === '' || line.trimStart().startsWith('#')) continue;
    const cells = splitCsvLine(line);
    if (typeof cells === 'string') { problems.push({ line: lineNo, field: '', message: cells }); continue; }
    if (!header) {
      header = cells.map((c) => c.trim().toLowerCase().replace(/[.\s-]/g, '_'));
      headerLine = lineNo;
      header.forEach((h) => { if (!CSV_FIELD[h]) problems.push({ line: lineNo, field: h, message: `unknown column "${h}" (expected ${CSV_COLUMNS.join(', ')})` }); });
      for (const need of ['name', 'bmc_address', 'bmc_user', 'bmc_password', 'ip', 'hostname']) {
        if (!header.includes(need)) problems.push({ line: lineNo, field: need, message: `missing column "${need}"` });
      }
      if (!header.includes('os') && !header.includes('os_profile')) problems.push({ line: lineNo, field: 'os', message: 'missing column "os"' });
      continue;
    }
    if (cells.length !== header.length) {
      problems.push({ line: lineNo, field: '', message: `has ${cells.length} fields, the header (line ${headerLine}) has ${header.length}` });
      continue;
    }
    const raw: Record<string, unknown> = {};
    header.forEach((h, i) => {
      const path = CSV_FIELD[h];
      const v = cells[i].trim();
      if (!path || v === '') return;
      const parts = path.split('.');
      let o = raw;
      for (const p of parts.slice(0, -1)) o = (o[p] ??= {}) as Record<string, unknown>;
      o[parts[parts.length - 1]] = v;
    });
    // Empty optional groups still have to exist for "required" messages to name fields.
    raw.bmc ??= {};
    raw.identity ??= {};
    const locate: Locate = () => lineNo;
    const { spec, problems: p } = validateMachine(raw, locate);
    problems.push(...p);
    if (spec) rows.push({ spec, locate });
  }
  if (!header && problems.length === 0) problems.push({ line: 1, field: '', message: 'empty inventory: a header row and at least one machine are required' });
  problems.push(...crossCheck(rows));
  if (problems.length > 0) throw new InventoryError(problems.sort((a, b) => a.line - b.line));
  return rows.map((r) => ({ spec: r.spec, line: r.locate('') }));
}

export type InventoryFormat = 'yaml' | 'csv';

/** One parsed inventory entry and the line it starts on. */
export interface InventoryRow {
  spec: MachineSpec;
  line: number;
}

/** Guesses the format from a file name (`.csv` → csv, else yaml). */
export function inventoryFormatOf(fileName: string): InventoryFormat {
  return /\.csv$/i.test(fileName) ? 'csv' : 'yaml';
}

/** Parses and validates a whole inventory; throws InventoryError listing every problem. */
export function parseInventory(text: string, format: InventoryFormat): InventoryRow[] {
  const rows = format === 'csv' ? parseCsvInventory(text) : parseYamlInventory(text);
  if (rows.length === 0) throw new InventoryError([{ line: 1, field: '', message: 'no machines in the inventory' }]);
  return rows;
}
