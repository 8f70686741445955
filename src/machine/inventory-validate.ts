/**
 * Validation of machine descriptions (one inventory row, or `kiver machine add`):
 * every bad value is reported with its field and line.
 */
import { isIP } from 'node:net';
import type { InventoryProblem } from './errors.js';
import { BMC_DRIVERS, MACHINE_NAME_PATTERN, OS_PROFILE_PATTERN, type BmcDriverName, type MachineSpec } from '../model/machine.js';

// ---------------------------------------------------------------------------------
// Field validators (each returns an error message or undefined)

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

export type Locate = (field: string) => number;

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
 * Validates one machine description. `raw` is the nested shape of the YAML/JSON form;
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
  else if (!NAME_RE.test(name)) bad('name', `"${name}" is not a valid name (lowercase letters, digits, "-", at most 63)`);

  // BMC
  const bmcRaw = (r.bmc ?? {}) as Record<string, unknown>;
  if (r.bmc === undefined) bad('bmc', 'required');
  else if (typeof r.bmc !== 'object' || Array.isArray(r.bmc)) bad('bmc', 'expected a mapping');
  const bmcKnown = new Set(['driver', 'address', 'port', 'user', 'password']);
  if (typeof r.bmc === 'object' && r.bmc) for (const k of Object.keys(bmcRaw)) if (!bmcKnown.has(k)) bad(`bmc.${k}`, `unknown field "${k}"`);
  const driver = str(bmcRaw.driver) ?? 'ipmi';
  if (!BMC_DRIVERS.includes(driver as BmcDriverName)) bad('bmc.driver', `"${driver}" is not one of ${BMC_DRIVERS.join(', ')}`);
  const address = str(bmcRaw.address);
  if (r.bmc !== undefined) {
    if (!address) bad('bmc.address', 'required');
    else if (!isIP(address.replace(/^\[|\]$/g, '')) && !isHostname(address)) bad('bmc.address', `"${address}" is not an IP address or host name`);
  }
  let port: number | undefined;
  if (bmcRaw.port !== undefined && bmcRaw.port !== null && bmcRaw.port !== '') {
    port = Number(bmcRaw.port);
    if (!Number.isInteger(port) || port < 1 || port > 65535) bad('bmc.port', `"${String(bmcRaw.port)}" is not a port number (1-65535)`);
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
    if (!n) bad(macsField, `"${String(m)}" is not a MAC address`);
    else if (macs.includes(n)) bad(macsField, `${n} is listed twice`);
    else macs.push(n);
  }

  // OS profile
  const osField = r.osProfile !== undefined ? 'osProfile' : 'os';
  const osProfile = str(r.osProfile ?? r.os);
  if (!osProfile) bad(osField, 'required');
  else if (!PROFILE_RE.test(osProfile)) bad(osField, `"${osProfile}" is not a valid profile name`);

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
      if (!fam) bad('identity.ip', `"${a}" is not an IP address`);
      else if (pRaw === undefined || !/^\d+$/.test(pRaw)) bad(p !== undefined || idRaw.prefix === undefined ? 'identity.ip' : 'identity.prefix', 'a prefix length is required (e.g. 10.0.0.5/24)');
      else {
        const n = Number(pRaw);
        if (n < 1 || n > (fam === 4 ? 32 : 128)) bad(p !== undefined ? 'identity.ip' : 'identity.prefix', `prefix /${n} is out of range for IPv${fam}`);
        else { ip = a; prefix = n; }
      }
    }
  }
  const hostname = str(idRaw.hostname);
  if (r.identity !== undefined) {
    if (!hostname) bad('identity.hostname', 'required');
    else if (!isHostname(hostname)) bad('identity.hostname', `"${hostname}" is not a valid host name`);
  }
  const gateway = str(idRaw.gateway) || undefined;
  if (gateway !== undefined) {
    if (!isIP(gateway)) bad('identity.gateway', `"${gateway}" is not an IP address`);
    else if (ip && isIP(gateway) !== isIP(ip)) bad('identity.gateway', 'gateway and address are of different IP families');
    else if (ip && prefix !== undefined && !sameSubnet(ip, gateway, prefix)) bad('identity.gateway', `${gateway} is not in ${ip}/${prefix}`);
    else if (ip && gateway === ip) bad('identity.gateway', 'gateway equals the machine address');
  }
  const dns: string[] = [];
  for (const d of asList(idRaw.dns)) {
    const s = String(d);
    if (!isIP(s)) bad('identity.dns', `"${s}" is not an IP address`);
    else dns.push(s);
  }
  const ntp: string[] = [];
  for (const d of asList(idRaw.ntp)) {
    const s = String(d);
    if (!isIP(s) && !isHostname(s)) bad('identity.ntp', `"${s}" is not an IP address or host name`);
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
export function crossCheck(rows: { spec: MachineSpec; locate: Locate }[]): InventoryProblem[] {
  const problems: InventoryProblem[] = [];
  const seen = new Map<string, number>();
  const check = (kind: string, value: string, field: string, locate: Locate) => {
    const key = `${kind}\0${value}`;
    const first = seen.get(key);
    if (first !== undefined) problems.push({ line: locate(field), field, message: `${value} is already used on line ${first}` });
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

