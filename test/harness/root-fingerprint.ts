/**
 * "Changed nothing", checked on a node root: every entry's mode, size and mtime (and a
 * sha256 of the files under the given prefixes), /proc and /dev skipped.
 */
import { createHash } from 'node:crypto';
import { lstatSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export function fingerprint(root: string, hashUnder: string[]): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (rel: string) => {
    for (const n of readdirSync(join(root, rel))) {
      const r = `${rel}/${n}`;
      if (r === '/proc' || r === '/dev') continue;
      const st = lstatSync(join(root, r));
      const sum = st.isFile() && hashUnder.some((p) => r.startsWith(p)) ? createHash('sha256').update(readFileSync(join(root, r))).digest('hex') : '';
      out.set(r, `${st.mode.toString(8)} ${st.size} ${st.mtimeMs} ${sum}`);
      if (st.isDirectory()) walk(r);
    }
  };
  walk('');
  return out;
}

/** What differs between two fingerprints, one line per entry (empty: nothing changed). */
export function diff(a: Map<string, string>, b: Map<string, string>): string[] {
  const d: string[] = [];
  for (const [k, v] of a) if (b.get(k) !== v) d.push(`${k}: ${v} → ${b.get(k) ?? 'gone'}`);
  for (const k of b.keys()) if (!a.has(k)) d.push(`${k}: new`);
  return d;
}
