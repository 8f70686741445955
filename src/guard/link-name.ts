/**
 * Link names: the one name each log file gets in the flat directory.
 *
 * Paths are handled as *byte strings*: a JS string whose every char is one byte
 * (Buffer#toString('latin1')), so file names that are not valid UTF-8 survive
 * unchanged and can be used as Map keys. Convert with `toBuf`/`fromBuf`.
 *
 * The scheme (see docs/guard.md, "Link names"):
 *   - Kiver layout `<service>/<ordinal>/<rest…>` → `<service>.<ordinal>.<rest joined by '~'>`
 *     e.g. `mysql/0/slow.log` → `mysql.0.slow.log`, `nginx/2/a/b/access.log` → `nginx.2.a~b~access.log`
 *   - any other path → its components joined by '~' (`agent.log`, `misc~x.log`).
 *   - inside a component, '%' and '~' and every byte that is not printable (control
 *     characters, newline, invalid UTF-8, Unicode format/separator characters) are written
 *     as %XX; a leading '-', '.' or space and a trailing space are escaped too, so a name
 *     never looks like an option, is never hidden, and never ends invisibly.
 *   - a general-form name that would *look* like the Kiver form (`a.1.b` at the top)
 *     gets its first '.' escaped, so the two forms never meet.
 *   - a name longer than maxNameBytes (255, NAME_MAX) keeps its head and tail and puts
 *     `%%<128-bit sha256 of the path>%%` in the middle; '%%' never occurs in an unhashed name.
 * The mapping is injective (decodeLinkName inverts every unhashed name), deterministic
 * (a restart computes the same names, so a shipper's position file stays valid) and
 * needs no state.
 */
import { createHash } from 'node:crypto';

/** Separator that replaces '/' inside the rest of the path. */
export const SEPARATOR = '~';
/** NAME_MAX on Linux file systems. */
export const DEFAULT_MAX_NAME_BYTES = 255;
const HASH_HEX = 32; // 128 bits
const TAIL_BYTES = 48;
const MIN_MAX_NAME_BYTES = 2 + HASH_HEX + 2 + 16;

const SERVICE_RE = /^[A-Za-z0-9][A-Za-z0-9_-]*$/;
const ORDINAL_RE = /^[0-9]+$/;
/** Every Kiver-form name matches this; no general-form name may. */
const KIVER_PREFIX_RE = /^[A-Za-z0-9_-]+\.[0-9]+\./;
const PRINTABLE_RE = /^[\p{L}\p{N}\p{M}\p{P}\p{S}]$/u;

/** Byte string → Buffer. */
export function toBuf(s: string): Buffer {
  return Buffer.from(s, 'latin1');
}
/** Buffer → byte string. */
export function fromBuf(b: Buffer): string {
  return b.toString('latin1');
}
/** A JS (UTF-16) string → byte string of its UTF-8 encoding. */
export function utf8Bytes(s: string): string {
  return Buffer.from(s, 'utf8').toString('latin1');
}
/** Byte string → display string (UTF-8 decoded; invalid bytes become U+FFFD). For logs only. */
export function display(s: string): string {
  return Buffer.from(s, 'latin1').toString('utf8');
}

function hex2(b: number): string {
  return '%' + b.toString(16).toUpperCase().padStart(2, '0');
}

/** Length of a valid UTF-8 sequence starting at i, or 0 if the bytes there are not one. */
function utf8SeqLen(s: string, i: number): number {
  const b0 = s.charCodeAt(i);
  let n: number;
  let min: number;
  if (b0 >= 0xc2 && b0 <= 0xdf) { n = 2; min = 0x80; }
  else if (b0 >= 0xe0 && b0 <= 0xef) { n = 3; min = 0x800; }
  else if (b0 >= 0xf0 && b0 <= 0xf4) { n = 4; min = 0x10000; }
  else return 0;
  if (i + n > s.length) return 0;
  let cp = b0 & (0xff >> (n + 1));
  for (let k = 1; k < n; k++) {
    const b = s.charCodeAt(i + k);
    if ((b & 0xc0) !== 0x80) return 0;
    cp = (cp << 6) | (b & 0x3f);
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
  return n;
}

function decodeCodePoint(s: string, i: number, n: number): number {
  let cp = s.charCodeAt(i) & (0xff >> (n + 1));
  for (let k = 1; k < n; k++) cp = (cp << 6) | (s.charCodeAt(i + k) & 0x3f);
  return cp;
}

/**
 * Escape one path component (byte string) into "units": each unit is either one
 * kept ASCII byte, one kept UTF-8 sequence, or one %XX escape. Units matter when a
 * long name is cut: it is cut between units only.
 */
function encodeComponentUnits(c: string, out: string[]): void {
  for (let i = 0; i < c.length; ) {
    const b = c.charCodeAt(i);
    if (b < 0x80) {
      if (b < 0x20 || b === 0x7f || b === 0x25 /* % */ || b === 0x7e /* ~ */) out.push(hex2(b));
      else out.push(c[i]!);
      i++;
      continue;
    }
    const n = utf8SeqLen(c, i);
    if (n > 0 && PRINTABLE_RE.test(String.fromCodePoint(decodeCodePoint(c, i, n)))) {
      out.push(c.slice(i, i + n));
      i += n;
      continue;
    }
    // invalid UTF-8, or a valid but invisible/format/control code point: escape its bytes
    const m = n > 0 ? n : 1;
    for (let k = 0; k < m; k++) out.push(hex2(c.charCodeAt(i + k)));
    i += m;
  }
}

/** True when a relative path (byte string) has the Kiver `<service>/<ordinal>/<rest>` shape. */
export function isKiverLayout(components: string[]): boolean {
  return components.length >= 3 && SERVICE_RE.test(components[0]!) && ORDINAL_RE.test(components[1]!);
}

/** Splits and validates a relative path: no empty, '.' or '..' components, no leading '/'. */
export function splitRel(rel: string): string[] | null {
  if (rel.length === 0) return null;
  const parts = rel.split('/');
  for (const p of parts) if (p === '' || p === '.' || p === '..') return null;
  return parts;
}

export interface LinkNameOptions {
  /** Longest name allowed in the flat directory, in bytes (default 255). */
  maxNameBytes?: number;
}

/**
 * The flat-directory name for a file at `rel` (byte string, relative to the log root,
 * '/'-separated). Returns a byte string. Throws on a malformed relative path.
 */
export function linkNameFor(rel: string, opts: LinkNameOptions = {}): string {
  const max = opts.maxNameBytes ?? DEFAULT_MAX_NAME_BYTES;
  if (max < MIN_MAX_NAME_BYTES) throw new RangeError(`maxNameBytes must be at least ${MIN_MAX_NAME_BYTES}`);
  const fast = plainName(rel, max);
  if (fast !== null) return fast;
  const comps = splitRel(rel);
  if (!comps) throw new RangeError(`not a relative path: ${JSON.stringify(display(rel))}`);
  const units: string[] = [];
  let rest: string[];
  if (isKiverLayout(comps)) {
    units.push(comps[0]!, '.', comps[1]!, '.');
    rest = comps.slice(2);
  } else {
    rest = comps;
  }
  const restStart = units.length;
  rest.forEach((c, i) => {
    if (i > 0) units.push(SEPARATOR);
    encodeComponentUnits(c, units);
  });
  if (restStart === 0) {
    // general form: never start with '-', '.' or ' ', never look like the Kiver form
    const first = units[0]!;
    if (first === '-' || first === '.' || first === ' ') units[0] = hex2(first.charCodeAt(0));
    if (KIVER_PREFIX_RE.test(units.join(''))) {
      const dot = units.indexOf('.');
      units[dot] = '%2E';
    }
  }
  if (units[units.length - 1] === ' ') units[units.length - 1] = '%20';
  const name = units.join('');
  if (name.length <= max) return name;
  return hashedName(rel, units, max);
}

/** Printable ASCII but '%' and '~': nothing to escape inside a component. */
const PLAIN_RE = /^[\x20-\x24\x26-\x7d]+$/;
const KIVER_PLAIN_RE = /^([A-Za-z0-9][A-Za-z0-9_-]*)\/([0-9]+)\/(.+)$/;

/**
 * The common case without building escape units: a plain-ASCII Kiver path that needs no
 * escaping and fits. Returns null when the general path must decide. Same result as it.
 */
function plainName(rel: string, max: number): string | null {
  if (rel.length > max || !PLAIN_RE.test(rel)) return null;
  const m = KIVER_PLAIN_RE.exec(rel);
  if (m === null) return null;
  const rest = m[3]!;
  if (rest.startsWith('/') || rest.endsWith(' ') || rest.endsWith('/') || rest.includes('//') || /(^|\/)\.\.?(\/|$)/.test(rest)) return null;
  return `${m[1]}.${m[2]}.${rest.replaceAll('/', SEPARATOR)}`;
}

/**
 * For a directory of the Kiver layout whose path needs no escaping (`svc/0/a/b`), the
 * prefix every child's link name starts with (`svc.0.a~b~`); null otherwise. With it a
 * file's name costs one concatenation (see plainChildName), not a path split and escape.
 */
export function plainDirPrefix(dirRel: string): string | null {
  if (!PLAIN_RE.test(dirRel)) return null;
  const comps = dirRel.split('/');
  if (comps.length < 2 || !SERVICE_RE.test(comps[0]!) || !ORDINAL_RE.test(comps[1]!)) return null;
  for (const c of comps) if (c === '' || c === '.' || c === '..') return null;
  const rest = comps.slice(2);
  return `${comps[0]}.${comps[1]}.${rest.length > 0 ? rest.join(SEPARATOR) + SEPARATOR : ''}`;
}

/** prefix + name when that is exactly linkNameFor(`${dirRel}/${name}`); null when the general path must decide. */
export function plainChildName(prefix: string, name: string, maxNameBytes = DEFAULT_MAX_NAME_BYTES): string | null {
  if (prefix.length + name.length > maxNameBytes || name === '.' || name === '..' || name.endsWith(' ') || !PLAIN_RE.test(name)) return null;
  return prefix + name;
}

function hashedName(rel: string, units: string[], max: number): string {
  const hash = createHash('sha256').update(toBuf(rel)).digest('hex').slice(0, HASH_HEX);
  const marker = 2 + HASH_HEX + 2;
  const tailBudget = Math.min(TAIL_BYTES, Math.floor((max - marker) / 2));
  let tail = '';
  let ti = units.length;
  while (ti > 0 && tail.length + units[ti - 1]!.length <= tailBudget) tail = units[--ti]! + tail;
  const headBudget = max - marker - tail.length;
  let head = '';
  for (let hi = 0; hi < ti && head.length + units[hi]!.length <= headBudget; hi++) head += units[hi]!;
  return `${head}%%${hash}%%${tail}`;
}

/** True when the name was shortened with a hash (and so cannot be decoded). */
export function isHashedName(name: string): boolean {
  return name.includes('%%');
}

function unescapeComponent(s: string): string | null {
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const ch = s[i]!;
    if (ch === '%') {
      const h = s.slice(i + 1, i + 3);
      if (!/^[0-9A-F]{2}$/.test(h)) return null;
      out += String.fromCharCode(parseInt(h, 16));
      i += 2;
    } else out += ch;
  }
  return out;
}

/**
 * Inverse of linkNameFor for names that were not hashed: the relative path (byte
 * string) the name stands for, or null when the name is hashed or not a guard name.
 * It proves the scheme is injective and lets an operator map a link back by hand.
 */
export function decodeLinkName(name: string): string | null {
  if (name.length === 0 || isHashedName(name)) return null;
  let prefix: string[] = [];
  let rest = name;
  const m = /^([A-Za-z0-9_-]+)\.([0-9]+)\./.exec(name);
  if (m) {
    prefix = [m[1]!, m[2]!];
    rest = name.slice(m[0].length);
  }
  const comps: string[] = [...prefix];
  for (const part of rest.split(SEPARATOR)) {
    const c = unescapeComponent(part);
    if (c === null) return null;
    comps.push(c);
  }
  const rel = comps.join('/');
  try {
    return linkNameFor(rel, { maxNameBytes: Number.MAX_SAFE_INTEGER }) === name ? rel : null;
  } catch {
    return null;
  }
}
