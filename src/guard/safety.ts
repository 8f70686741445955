/**
 * Safety rules of the guard. Containers control their log directories, so every
 * entry under the root is hostile until checked. Paths are byte strings (see link-name.ts).
 *
 *  - only regular files are linked: never symlinks, directories, devices, FIFOs or sockets
 *    (a FIFO opened by a shipper blocks it; a device or symlink could expose host data);
 *  - the guard never follows a symlink inside the tree: it descends only into entries
 *    that lstat calls directories, and checks with realpath that a directory's real path
 *    is exactly its logical path (no component was swapped for a symlink);
 *  - the guard never opens a log file;
 *  - in the flat directory it removes only entries it made: symlinks whose target lies
 *    inside the root and whose name is the name the guard computes for that target.
 */
import { InputError } from '../errors.js';
import { display, linkNameFor, splitRel, type LinkNameOptions } from './link-name.js';

export type EntryKind = 'file' | 'directory' | 'symlink' | 'fifo' | 'socket' | 'device' | 'unknown';

/** What lstat Stats and readdir Dirents (of either name encoding) have in common. */
export interface TypedEntry {
  isFile(): boolean;
  isDirectory(): boolean;
  isSymbolicLink(): boolean;
  isFIFO(): boolean;
  isSocket(): boolean;
  isCharacterDevice(): boolean;
  isBlockDevice(): boolean;
}

/** Kind of an entry from lstat Stats or a readdir Dirent (neither follows links). */
export function entryKind(s: TypedEntry): EntryKind {
  if (s.isFile()) return 'file';
  if (s.isDirectory()) return 'directory';
  if (s.isSymbolicLink()) return 'symlink';
  if (s.isFIFO()) return 'fifo';
  if (s.isSocket()) return 'socket';
  if (s.isCharacterDevice() || s.isBlockDevice()) return 'device';
  return 'unknown';
}

/** Only regular files may get a link. */
export function isLinkable(kind: EntryKind): boolean {
  return kind === 'file';
}

/**
 * The path of `target` relative to `root` (both absolute byte strings, root without a
 * trailing '/'), or null when target is not strictly inside root or is not in normal
 * form ('//', '.', '..' components): such a target is never one the guard made.
 */
export function relInsideRoot(target: string, root: string): string | null {
  const prefix = root === '/' ? '/' : root + '/';
  if (!target.startsWith(prefix)) return null;
  const rel = target.slice(prefix.length);
  return splitRel(rel) ? rel : null;
}

/**
 * The file a flat-directory symlink's target names, relative to the root, or null when
 * it names nothing inside the root. Targets are absolute (`<root>/<rel>`), or, when the
 * flat directory is a direct child of the root, relative (`../<rel>`).
 */
export function targetRel(target: string, root: string, outUnderRoot: boolean): string | null {
  if (target.startsWith('/')) return relInsideRoot(target, root);
  if (outUnderRoot && target.startsWith('../')) {
    const rel = target.slice(3);
    return splitRel(rel) ? rel : null;
  }
  return null;
}

/**
 * True when the flat-directory entry `name`, a symlink to `target`, is one the guard
 * made (and so may remove): its target lies inside the root and its name is exactly
 * the name the guard computes for that target.
 */
export function isGuardLink(
  name: string,
  target: string,
  root: string,
  opts: LinkNameOptions & { outUnderRoot?: boolean } = {},
): boolean {
  const rel = targetRel(target, root, opts.outUnderRoot ?? false);
  if (rel === null) return false;
  try {
    return linkNameFor(rel, opts) === name;
  } catch {
    return false;
  }
}

/**
 * Checks the flat directory against the root (both real, absolute paths as byte strings).
 * The flat directory may lie outside the root, or be a direct child of it (it is then
 * skipped by the walk); deeper inside the root it would sit in a container's directory,
 * which the container controls, so it is refused.
 * Returns the name of the child of the root to skip, if any.
 */
export function checkOutDir(root: string, out: string): string | null {
  const [r, o] = [display(root), display(out)];
  if (out === root) throw new InputError('--out must not be the log root itself', 'out');
  const prefix = root === '/' ? '/' : root + '/';
  if (root.startsWith(out === '/' ? '/' : out + '/')) {
    throw new InputError(`--out ${o} must not contain the log root ${r}`, 'out');
  }
  if (!out.startsWith(prefix)) return null;
  const rel = out.slice(prefix.length);
  if (rel.includes('/')) {
    throw new InputError(
      `--out ${o} lies inside a directory under the log root; put it outside the root or directly under it (e.g. ${display(prefix)}.shipper)`,
      'out',
    );
  }
  return rel;
}
