/**
 * Per-MAC boot files in a TFTP root: pxelinux `pxelinux.cfg/01-aa-bb-cc-dd-ee-ff`,
 * GRUB (UEFI) `grub/grub.cfg-01-aa-bb-cc-dd-ee-ff`, iPXE `ipxe/aa-bb-cc-dd-ee-ff.ipxe`.
 *
 * - Written atomically: a hidden temp file in the same directory, fsync, rename, so a
 *   booting machine never reads half a file.
 * - Every file carries a marker line `kiver:bootfile v1 machine=… mac=… created=…`.
 *   Only files with the marker are listed, deleted or reaped: files written by people
 *   or other tools in the same TFTP root are never touched (and never overwritten).
 * - The one-time install token and the config-center URL go on the kernel command line.
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, open, readdir, rename, rm, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { ConflictError, InputError } from '../errors.js';
import { normalizeMac } from './inventory-validate.js';

export type BootFileFormat = 'pxelinux' | 'grub' | 'ipxe';
export const BOOT_FILE_FORMATS: readonly BootFileFormat[] = ['pxelinux', 'grub', 'ipxe'];

export const BOOTFILE_MARKER = 'kiver:bootfile';
/** Files Kiver writes once per TFTP root (defaults, chain scripts); never reaped. */
export const STATIC_MARKER = 'kiver:static';

export interface BootEntry {
  /** Machine name (for the marker and the boot menu label). */
  machine: string;
  mac: string;
  kernelUrl: string;
  initrdUrl: string;
  /** Kernel command line (includes kiver.url / kiver.mac / kiver.token). */
  args: string[];
  createdAt: Date;
}

export interface BootFileInfo {
  path: string;
  format: BootFileFormat;
  machine: string;
  mac: string;
  createdAt: Date;
  ageMs: number;
}

export interface BootFileWriterOptions {
  tftpRoot: string;
  /** Which files to write per MAC (default all three). */
  formats?: BootFileFormat[];
  /** Subdirectories (relative to tftpRoot). */
  pxelinuxDir?: string;
  grubDir?: string;
  ipxeDir?: string;
}

function hyphenMac(mac: string): string {
  const n = normalizeMac(mac);
  if (!n) throw new InputError(`"${mac}" is not a MAC address`, 'mac');
  return n.replace(/:/g, '-');
}

/** Kernel-command-line-safe: no whitespace, quotes or control characters in any argument. */
function checkArgs(args: string[]): void {
  for (const a of args) {
    if (!a || /[\s"'\\\x00-\x1f\x7f]/.test(a)) throw new InputError(`kernel argument ${JSON.stringify(a)} contains whitespace, quotes or control characters`, 'args');
  }
}

function marker(e: BootEntry): string {
  return `${BOOTFILE_MARKER} v1 machine=${e.machine} mac=${normalizeMac(e.mac)} created=${e.createdAt.toISOString()}`;
}

export function renderPxelinux(e: BootEntry): string {
  return [
    `# ${marker(e)}`,
    `# Written by Kiver for a one-time install; deleted when the install reports done or by the reaper.`,
    'DEFAULT kiver-install',
    'PROMPT 0',
    'TIMEOUT 0',
    `LABEL kiver-install`,
    `  MENU LABEL Kiver install ${e.machine}`,
    `  KERNEL ${e.kernelUrl}`,
    `  APPEND initrd=${e.initrdUrl} ${e.args.join(' ')}`,
    '  IPAPPEND 2',
    '',
  ].join('\n');
}

export function renderGrub(e: BootEntry): string {
  return [
    `# ${marker(e)}`,
    `# Written by Kiver for a one-time install; deleted when the install reports done or by the reaper.`,
    'set default=0',
    'set timeout=0',
    `menuentry "Kiver install ${e.machine}" {`,
    `  linux ${e.kernelUrl} ${e.args.join(' ')}`,
    `  initrd ${e.initrdUrl}`,
    '}',
    '',
  ].join('\n');
}

export function renderIpxe(e: BootEntry): string {
  return [
    '#!ipxe',
    `# ${marker(e)}`,
    `# Written by Kiver for a one-time install; deleted when the install reports done or by the reaper.`,
    `kernel ${e.kernelUrl} initrd=${e.initrdUrl.split('/').pop()} ${e.args.join(' ')} BOOTIF=01-\${mac:hexhyp}`,
    `initrd ${e.initrdUrl}`,
    'boot',
    '',
  ].join('\n');
}

const MARKER_RE = new RegExp(`${BOOTFILE_MARKER} v1 machine=(\\S+) mac=(\\S+) created=(\\S+)`);

/** Reads a file's head and returns its Kiver marker, or undefined for foreign files. */
export function parseMarker(head: string): { machine: string; mac: string; createdAt: Date } | undefined {
  const lines = head.split('\n').slice(0, 3);
  for (const l of lines) {
    const m = MARKER_RE.exec(l);
    if (m && l.trimStart().startsWith('#')) {
      const createdAt = new Date(m[3]);
      if (Number.isNaN(createdAt.getTime())) return undefined;
      return { machine: m[1], mac: m[2], createdAt };
    }
  }
  return undefined;
}

/** Atomic write: hidden temp in the same directory, fsync, rename. */
export async function writeFileAtomic(path: string, content: string, mode = 0o644): Promise<void> {
  const dir = path.slice(0, path.lastIndexOf('/')) || '.';
  const tmp = join(dir, `.kiver-tmp-${randomBytes(6).toString('hex')}`);
  const fh = await open(tmp, 'wx', mode);
  try {
    await fh.chmod(mode); // not narrowed by the umask: TFTP servers often run as nobody
    await fh.writeFile(content);
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

export class BootFileWriter {
  readonly tftpRoot: string;
  readonly formats: BootFileFormat[];
  private readonly dirs: Record<BootFileFormat, string>;

  constructor(opts: BootFileWriterOptions) {
    this.tftpRoot = opts.tftpRoot;
    this.formats = opts.formats ?? [...BOOT_FILE_FORMATS];
    this.dirs = {
      pxelinux: opts.pxelinuxDir ?? 'pxelinux.cfg',
      grub: opts.grubDir ?? 'grub',
      ipxe: opts.ipxeDir ?? 'ipxe',
    };
  }

  /** Path of a MAC's boot file in a format. */
  pathFor(format: BootFileFormat, mac: string): string {
    const h = hyphenMac(mac);
    switch (format) {
      case 'pxelinux': return join(this.tftpRoot, this.dirs.pxelinux, `01-${h}`);
      case 'grub': return join(this.tftpRoot, this.dirs.grub, `grub.cfg-01-${h}`);
      case 'ipxe': return join(this.tftpRoot, this.dirs.ipxe, `${h}.ipxe`);
    }
  }

  private async isForeign(path: string): Promise<boolean> {
    try {
      return parseMarker(await readHead(path)) === undefined;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw err;
    }
  }

  /**
   * Writes the boot files of one MAC (all configured formats). Refuses (ConflictError)
   * when a file Kiver did not write is at one of the paths. Returns the paths written.
   */
  async write(entry: BootEntry): Promise<string[]> {
    checkArgs([entry.kernelUrl, entry.initrdUrl, ...entry.args]);
    const paths: string[] = [];
    for (const f of this.formats) {
      const p = this.pathFor(f, entry.mac);
      if (await this.isForeign(p)) throw new ConflictError(`${p} exists and was not written by Kiver; remove it or use another TFTP root`);
      paths.push(p);
    }
    for (const f of this.formats) {
      const p = this.pathFor(f, entry.mac);
      await mkdirReadable(p.slice(0, p.lastIndexOf('/')));
      const content = f === 'pxelinux' ? renderPxelinux(entry) : f === 'grub' ? renderGrub(entry) : renderIpxe(entry);
      await writeFileAtomic(p, content);
    }
    return paths;
  }

  /** Deletes the Kiver-written boot files of a MAC; returns the paths removed. */
  async remove(mac: string): Promise<string[]> {
    const removed: string[] = [];
    for (const f of BOOT_FILE_FORMATS) {
      const p = this.pathFor(f, mac);
      if (await this.removeIfKiver(p)) removed.push(p);
    }
    return removed;
  }

  /** Deletes one file if (and only if) it carries the Kiver marker. */
  async removeIfKiver(path: string): Promise<boolean> {
    let head: string;
    try {
      head = await readHead(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw err;
    }
    if (!parseMarker(head)) return false;
    try {
      await unlink(path);
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw err;
    }
  }

  /** Every Kiver-written per-MAC boot file with its age (by the marker's creation time). */
  async list(now: Date = new Date()): Promise<BootFileInfo[]> {
    const out: BootFileInfo[] = [];
    const scan: [BootFileFormat, string, RegExp][] = [
      ['pxelinux', this.dirs.pxelinux, /^01-([0-9a-f]{2}-){5}[0-9a-f]{2}$/],
      ['grub', this.dirs.grub, /^grub\.cfg-01-([0-9a-f]{2}-){5}[0-9a-f]{2}$/],
      ['ipxe', this.dirs.ipxe, /^([0-9a-f]{2}-){5}[0-9a-f]{2}\.ipxe$/],
    ];
    for (const [format, dir, re] of scan) {
      let names: string[];
      try {
        names = await readdir(join(this.tftpRoot, dir));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw err;
      }
      for (const name of names.sort()) {
        if (!re.test(name)) continue;
        const path = join(this.tftpRoot, dir, name);
        let head: string;
        try {
          head = await readHead(path);
        } catch {
          continue;
        }
        const m = parseMarker(head);
        if (!m) continue;
        out.push({ path, format, machine: m.machine, mac: m.mac, createdAt: m.createdAt, ageMs: now.getTime() - m.createdAt.getTime() });
      }
    }
    return out;
  }
}

/** mkdir -p whose new directories are 0755 whatever the umask (TFTP servers run as nobody). */
export async function mkdirReadable(dir: string): Promise<void> {
  const first = await mkdir(dir, { recursive: true });
  if (!first) return;
  let d = dir;
  while (d.length >= first.length) {
    await chmod(d, 0o755);
    d = d.slice(0, d.lastIndexOf('/'));
  }
}

async function readHead(path: string): Promise<string> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(512);
    const { bytesRead } = await fh.read(buf, 0, 512, 0);
    return buf.subarray(0, bytesRead).toString('utf8');
  } finally {
    await fh.close();
  }
}
