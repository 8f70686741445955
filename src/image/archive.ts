/**
 * A `docker load` archive written by hand: manifest.json, the image config, and the
 * root filesystem tar as the single layer. Unlike `docker import`, the config (and so
 * the image ID) is ours: `created` is the package snapshot date, not the build time,
 * so the same inputs give the same image ID on any machine.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';

export interface ImageConfig {
  architecture: string;
  os: 'linux';
  created: string;
  config: {
    Env: string[];
    Cmd: string[];
    Entrypoint?: string[];
    WorkingDir: string;
    Labels: Record<string, string>;
    ExposedPorts?: Record<string, Record<string, never>>;
  };
  rootfs: { type: 'layers'; diff_ids: string[] };
  history: { created: string; created_by: string; comment?: string }[];
}

/** The config bytes Docker stores, and the image ID they hash to. */
export function encodeConfig(cfg: ImageConfig): { bytes: Buffer; id: string } {
  const bytes = Buffer.from(JSON.stringify(cfg));
  return { bytes, id: `sha256:${createHash('sha256').update(bytes).digest('hex')}` };
}

/** Go's GOARCH for a Debian architecture (what Docker calls the image architecture). */
export function dockerArch(debArch: string): string {
  return ({ amd64: 'amd64', arm64: 'arm64', armhf: 'arm', armel: 'arm', i386: '386', ppc64el: 'ppc64le', s390x: 's390x' } as Record<string, string>)[debArch] ?? debArch;
}

function octal(n: number, width: number): string {
  const s = n.toString(8);
  if (s.length > width - 1) throw new Error(`tar field overflow: ${n}`);
  return s.padStart(width - 1, '0') + '\0';
}

/** One ustar header for a regular file, root-owned, mode 0644, at `mtime`. */
function header(name: string, size: number, mtime: number): Buffer {
  if (Buffer.byteLength(name) > 100) throw new Error(`tar name too long: ${name}`);
  const h = Buffer.alloc(512, 0);
  h.write(name, 0, 'utf8');
  h.write(octal(0o644, 8), 100, 'ascii');
  h.write(octal(0, 8), 108, 'ascii');
  h.write(octal(0, 8), 116, 'ascii');
  h.write(octal(size, 12), 124, 'ascii');
  h.write(octal(mtime, 12), 136, 'ascii');
  h.write('        ', 148, 'ascii');
  h.write('0', 156, 'ascii');
  h.write('ustar\0', 257, 'ascii');
  h.write('00', 263, 'ascii');
  h.write('root', 265, 'ascii');
  h.write('root', 297, 'ascii');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'ascii');
  return h;
}

const pad = (size: number) => Buffer.alloc((512 - (size % 512)) % 512, 0);

export interface LoadArchiveInput {
  config: Buffer;
  configId: string;
  repoTags: string[];
  layerPath: string;
  layerSize: number;
  layerDigest: string;
  mtime: number;
}

/** Streams the archive `docker load` (POST /images/load) accepts. */
export function loadArchive(a: LoadArchiveInput): Readable {
  const hex = a.configId.replace(/^sha256:/, '');
  const configName = `${hex}.json`;
  const layerName = `${a.layerDigest}/layer.tar`;
  const manifest = Buffer.from(JSON.stringify([{ Config: configName, RepoTags: a.repoTags, Layers: [layerName] }]));
  async function* gen(): AsyncGenerator<Buffer> {
    yield header('manifest.json', manifest.length, a.mtime);
    yield manifest;
    yield pad(manifest.length);
    yield header(configName, a.config.length, a.mtime);
    yield a.config;
    yield pad(a.config.length);
    yield header(layerName, a.layerSize, a.mtime);
    let n = 0;
    for await (const chunk of createReadStream(a.layerPath)) {
      n += (chunk as Buffer).length;
      yield chunk as Buffer;
    }
    if (n !== a.layerSize) throw new Error(`${a.layerPath} changed while loading (${n} != ${a.layerSize} bytes)`);
    yield pad(a.layerSize);
    yield Buffer.alloc(1024, 0);
  }
  return Readable.from(gen(), { objectMode: false });
}
