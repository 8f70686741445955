/**
 * The machine inventory (MISSION M7, issue 5): what Kiver knows about a bare-metal
 * server — its BMC, NIC MACs, OS profile and the identity it gets after install —
 * and the parsing/validation of YAML or CSV inventory files ("centralized parameter
 * configuration"). Validation reports every bad value with its line; a file with any
 * bad row imports nothing.
 */
import { isIP } from 'node:net';
import { LineCounter, parseDocument, isMap, isSeq, type Node as YamlNode } from 'yaml';
import { InventoryError, type InventoryProblem } from './errors.js';

export type BmcDriverName = 'ipmi' | 'redfish';
export const BMC_DRIVERS: readonly BmcDriverName[] = ['ipmi', 'redfish'];

/** BMC access as the operator gives it. The password exists in clear only in memory. */
export interface BmcSpec {
  driver: BmcDriverName;
  /** Host name or IP address of the BMC (no scheme). */
  address: string;
  port?: number;
  user: string;
  password: string;
}

/** BMC access as stored: the password encrypted (see secrets.ts). */
export interface StoredBmc {
  driver: BmcDriverName;
  address: string;
  port?: number;
  user: string;
  /** `v1:` AES-256-GCM envelope produced by SecretBox.encrypt. */
  passwordEnc: string;
}

/** What the machine is told by the config center after its OS is installed. */
export interface MachineIdentity {
  ip: string;
  prefix: number;
  hostname: string;
  gateway?: string;
  dns: string[];
  ntp: string[];
}

/** A machine as the operator describes it (`kiver machine add`, one inventory row). */
export interface MachineSpec {
  name: string;
  bmc: BmcSpec;
  /** Known NIC MACs, normalized `aa:bb:cc:dd:ee:ff`; may be empty (read from the BMC). */
  macs: string[];
  osProfile: string;
  identity: MachineIdentity;
}

export type MachinePhase = 'registered' | 'inspected' | 'installing' | 'installed' | 'failed';
export const MACHINE_PHASES: readonly MachinePhase[] = ['registered', 'inspected', 'installing', 'installed', 'failed'];

export interface MachineEvent {
  at: string;
  type: string;
  message: string;
}

/** The install in flight. The token itself is never stored, only its SHA-256. */
export interface InstallRecord {
  tokenSha256: string;
  startedAt: string;
  /** The token (and the boot files) expire at this time. */
  expiresAt: string;
  osProfile: string;
  /** Base URL of the Kiver server as the machine reaches it (config center, seeds). */
  serverUrl: string;
  /** MACs boot files were written for (as read from the BMC). */
  macs: string[];
  bootFiles: string[];
  /** When the installer first fetched its identity from the config center. */
  identityServedAt?: string;
}

export interface MachineStatus {
  phase: MachinePhase;
  /** Why the machine is `failed` (or any note on the last transition). */
  reason?: string;
  /** When the current phase was entered. */
  since: string;
  /** When each phase was last entered. */
  timestamps: Partial<Record<MachinePhase, string>>;
  /** MACs the BMC reported at the last inspection/install. */
  bmcMacs?: string[];
  install?: InstallRecord;
  /** Most recent events, oldest first (bounded, see MAX_EVENTS). */
  events: MachineEvent[];
}

/** A machine as stored (`/kiver/machines/<name>`): secrets encrypted. */
export interface MachineRecord {
  name: string;
  bmc: StoredBmc;
  macs: string[];
  osProfile: string;
  identity: MachineIdentity;
  createdAt: string;
  status: MachineStatus;
}

export const MAX_EVENTS = 50;

// ---------------------------------------------------------------------------------
// Field validators (each returns an error message or undefined)

/** Machine names (and the API's path parameter): DNS-label-like. */
export const MACHINE_NAME_PATTERN = '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$';
export const OS_PROFILE_PATTERN = '^[a-z0-9][a-z0-9._-]{0,62}$';
const NAME_RE = new RegExp(MACHINE_NAME_PATTERN);
const LABEL_RE = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i;
const PROFILE_RE = new RegExp(OS_PROFILE_PATTERN);

/** Normalizes a MAC in any common spelling to `aa:bb:cc:dd:ee:ff`; undefined if invalid. */
export function normalizeMac(input: string): string | undefined {
  const s = String(input).trim().toLowerCase();
  let hex: string;
  if (/^([0-9a-f]{2}[:-]){5}[0-9a-f]{2}$/.test(s)) hex = s.replace(/[:-]/g, '');
  else if (/^[0-9a-f]{4}\.[0-9a-f]{4}\.[0-9a-f]{4}$/.test(s)) hex = s.replace(/\./g, '');
  else if (/^[0-9a-f]{12}$/.test(s)) hex = s;
  else return undefined;
  return hex.match(/../g)!.join(':');
}

export function isHostname(s: string): boolean {
  if (s.length === 0 || s.length > 253) return false;
  return s.split('.').every((l) => LABEL_RE.test(l));
}

function ipv4ToInt(ip: string): number {
  return ip.split('.').reduce((acc, o) => (acc << 8) + Number(o), 0) >>> 0;
}

/** True when `a` and `b` are in the same IPv4 /prefix (IPv6: not checked). */
export function sameSubnet(a: string, b: string, prefix: number): boolean {
  if (isIP(a) !== 4 || isIP(b) !== 4) return true;
  if (prefix === 0) return true;
  const mask = prefix === 32 ? 0xffffffff : (~((1 << (32 - prefix)) - 1)) >>> 0;
  return (ipv4ToInt(a) & mask) === (ipv4ToInt(b) & mask);
}

// ---------------------------------------------------------------------------------
// Validation of one machine description (already shaped as nested plain data)

type Locate = (field: string) => number;

function asList(v: unknown): unknown[] {
  if (v === undefined || v === null || v === '') return [];
  if (Array.isArray(v)) return v;
  if (typeof v === 'string') return v.split(/[;,\s]+/).filter(Boolean);
  return [v];
}

function str(v: unknown): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'string') return v.trim();
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return undefined;
}

/**
 * Validates one machine description. Messages name the field and the line, never the
 * value: a shifted CSV row puts a password in any column, and an error must not echo it. `raw` is the nested shape of the YAML/JSON form;
 * problems carry lines via `locate`. Returns the normalized spec when there are none.
 */
export function validateMachine(raw: unknown, locate: Locate): { spec?: MachineSpec; problems: InventoryProblem[] } {
  const problems: InventoryProblem[] = [];
  const bad = (field: string, message: string) => problems.push({ line: locate(field), field, message });
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    bad('', 'expected a mapping with name, bmc, identity, ...');
    return { problems };
  }
  const r = raw as Record<string, unknown>;
  const known = new Set(['name', 'bmc', 'macs', 'mac', 'osProfile', 'os', 'identity']);
  for (const k of Object.keys(r)) if (!known.has(k)) bad(k, `unknown field "${k}"`);

  const name = str(r.name);
  if (!name) bad('name', 'required');
  else if (!NAME_RE.test(name)) bad('name', 'is not a valid name (lowercase letters, digits, "-", at most 63)');

  // BMC
  const bmcRaw = (r.bmc ?? {}) as Record<string, unknown>;
  if (r.bmc === undefined) bad('bmc', 'required');
  else if (typeof r.bmc !== 'object' || Array.isArray(r.bmc)) bad('bmc', 'expected a mapping');
  const bmcKnown = new Set(['driver', 'address', 'port', 'user', 'password']);
  if (typeof r.bmc === 'object' && r.bmc) for (const k of Object.keys(bmcRaw)) if (!bmcKnown.has(k)) bad(`bmc.${k}`, `unknown field "${k}"`);
  const driver = str(bmcRaw.driver) ?? 'ipmi';
  if (!BMC_DRIVERS.includes(driver as BmcDriverName)) bad('bmc.driver', `is not one of ${BMC_DRIVERS.join(', ')}`);
  const address = str(bmcRaw.address);
  if (r.bmc !== undefined) {
    if (!address) bad('bmc.address', 'required');
    else if (!isIP(address.replace(/^\[|\]$/g, '')) && !isHostname(address)) bad('bmc.address', 'is not an IP address or host name');
  }
  let port: number | undefined;
  if (bmcRaw.port !== undefined && bmcRaw.port !== null && bmcRaw.port !== '') {
    port = Number(bmcRaw.port);
    if (!Number.isInteger(port) || port < 1 || port > 65535) bad('bmc.port', 'is not a port number (1-65535)');
  }
  const user = str(bmcRaw.user);
  if (r.bmc !== undefined) {
    if (!user) bad('bmc.user', 'required');
    else if (driver === 'ipmi' && user.length > 16) bad('bmc.user', 'IPMI user names are at most 16 characters');
  }
  const password = typeof bmcRaw.password === 'number' ? String(bmcRaw.password) : (bmcRaw.password as string | undefined);
  if (r.bmc !== undefined) {
    if (typeof password !== 'string' || password.length === 0) bad('bmc.password', 'required');
    else if (driver === 'ipmi' && password.length > 20) bad('bmc.password', 'IPMI 2.0 passwords are at most 20 characters');
    else if (/[\0\n\r]/.test(password)) bad('bmc.password', 'must not contain NUL or line breaks');
  }

  // MACs
  const macs: string[] = [];
  const macsField = r.macs !== undefined ? 'macs' : 'mac';
  for (const m of asList(r.macs ?? r.mac)) {
    const n = normalizeMac(String(m));
    if (!n) bad(macsField, 'is not a MAC address');
    else if (macs.includes(n)) bad(macsField, 'lists the same MAC address twice');
    else macs.push(n);
  }

  // OS profile
  const osField = r.osProfile !== undefined ? 'osProfile' : 'os';
  const osProfile = str(r.osProfile ?? r.os);
  if (!osProfile) bad(osField, 'required');
  else if (!PROFILE_RE.test(osProfile)) bad(osField, 'is not a valid profile name');

  // Identity
  const idRaw = (r.identity ?? {}) as Record<string, unknown>;
  if (r.identity === undefined) bad('identity', 'required');
  else if (typeof r.identity !== 'object' || Array.isArray(r.identity)) bad('identity', 'expected a mapping');
  const idKnown = new Set(['ip', 'prefix', 'hostname', 'gateway', 'dns', 'ntp']);
  if (typeof r.identity === 'object' && r.identity) for (const k of Object.keys(idRaw)) if (!idKnown.has(k)) bad(`identity.${k}`, `unknown field "${k}"`);
  let ip: string | undefined;
  let prefix: number | undefined;
  const ipRaw = str(idRaw.ip);
  if (r.identity !== undefined) {
    if (!ipRaw) bad('identity.ip', 'required (address/prefix, e.g. 10.0.0.5/24)');
    else {
      const [a, p] = ipRaw.split('/');
      const fam = isIP(a);
      const pRaw = p ?? (idRaw.prefix !== undefined ? String(idRaw.prefix) : undefined);
      if (!fam) bad('identity.ip', 'is not an IP address');
      else if (pRaw === undefined || !/^\d+$/.test(pRaw)) bad(p !== undefined || idRaw.prefix === undefined ? 'identity.ip' : 'identity.prefix', 'a prefix length is required (e.g. 10.0.0.5/24)');
      else {
        const n = Number(pRaw);
        if (n < 1 || n > (fam === 4 ? 32 : 128)) bad(p !== undefined ? 'identity.ip' : 'identity.prefix', `prefix length is out of range for IPv${fam}`);
        else { ip = a; prefix = n; }
      }
    }
  }
  const hostname = str(idRaw.hostname);
  if (r.identity !== undefined) {
    if (!hostname) bad('identity.hostname', 'required');
    else if (!isHostname(hostname)) bad('identity.hostname', 'is not a valid host name');
  }
  const gateway = str(idRaw.gateway) || undefined;
  if (gateway !== undefined) {
    if (!isIP(gateway)) bad('identity.gateway', 'is not an IP address');
    else if (ip && isIP(gateway) !== isIP(ip)) bad('identity.gateway', 'gateway and address are of different IP families');
    else if (ip && prefix !== undefined && !sameSubnet(ip, gateway, prefix)) bad('identity.gateway', 'is not in the subnet of identity.ip');
    else if (ip && gateway === ip) bad('identity.gateway', 'gateway equals the machine address');
  }
  const dns: string[] = [];
  for (const d of asList(idRaw.dns)) {
    const s = String(d);
    if (!isIP(s)) bad('identity.dns', 'is not an IP address');
    else dns.push(s);
  }
  const ntp: string[] = [];
  for (const d of asList(idRaw.ntp)) {
    const s = String(d);
    if (!isIP(s) && !isHostname(s)) bad('identity.ntp', 'is not an IP address or host name');
    else ntp.push(s);
  }

  if (problems.length > 0) return { problems };
  return {
    problems,
    spec: {
      name: name!,
      bmc: { driver: driver as BmcDriverName, address: address!, ...(port !== undefined ? { port } : {}), user: user!, password: password! },
      macs,
      osProfile: osProfile!,
      identity: { ip: ip!, prefix: prefix!, hostname: hostname!, ...(gateway ? { gateway } : {}), dns, ntp },
    },
  };
}

/** Checks a set of specs against each other: names, MACs, addresses, host names unique. */
function crossCheck(rows: { spec: MachineSpec; locate: Locate }[]): InventoryProblem[] {
  const problems: InventoryProblem[] = [];
  const seen = new Map<string, number>();
  const check = (kind: string, value: string, field: string, locate: Locate) => {
    const key = `${kind}\0${value}`;
    const first = seen.get(key);
    if (first !== undefined) problems.push({ line: locate(field), field, message: `is the same as on line ${first}` });
    else seen.set(key, locate(field));
  };
  for (const { spec, locate } of rows) {
    check('name', spec.name, 'name', locate);
    for (const m of spec.macs) check('mac', m, 'macs', locate);
    check('ip', spec.identity.ip, 'identity.ip', locate);
    check('hostname', spec.identity.hostname.toLowerCase(), 'identity.hostname', locate);
  }
  return problems;
}

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
/** Aliases may expand to at most this many nodes in all (a "billion laughs" file is a 400, not a 500). */
const MAX_ALIAS_COUNT = 100;

function yamlToJs(doc: ReturnType<typeof parseDocument>): unknown {
  try {
    return doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (err) {
    const msg = /alias/i.test((err as Error).message)
      ? `YAML: aliases expand too far (at most ${MAX_ALIAS_COUNT} alias uses); write the values out`
      : 'YAML: the document cannot be read as plain data';
    throw new InventoryError([{ line: 1, field: '', message: msg }]);
  }
}

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
    defaults = (yamlToJs(doc) as Record<string, unknown>).defaults;
    if (defaults !== undefined && (typeof defaults !== 'object' || Array.isArray(defaults) || defaults === null)) {
      throw new InventoryError([{ line: lineOf(defaultsNode), field: 'defaults', message: 'expected a mapping' }]);
    }
  }
  if (!isSeq(itemsNode)) {
    throw new InventoryError([{ line: lineOf(itemsNode), field: 'machines', message: 'expected a list of machines' }]);
  }
  const all = yamlToJs(doc);
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
      header.forEach((h, i) => { if (!CSV_FIELD[h]) problems.push({ line: lineNo, field: `column ${i + 1}`, message: `is not a known column name (expected ${CSV_COLUMNS.join(', ')}; a header row is required)` }); });
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
