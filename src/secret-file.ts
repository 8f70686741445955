/** Files that hold one secret (tokens, node credentials): owner-only, written atomically. */
import { chmod, readFile, rename, writeFile } from 'node:fs/promises';

/** Writes a secret to a file only its owner can read; a crash leaves the old file or none. */
export async function writeSecretFile(file: string, secret: string): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}`;
  await writeFile(tmp, `${secret}\n`, { mode: 0o600 });
  await chmod(tmp, 0o600);
  await rename(tmp, file);
}

/** The secret in a file, or undefined when the file does not exist (or is empty). */
export async function readSecretFile(file: string): Promise<string | undefined> {
  try {
    return (await readFile(file, 'utf8')).trim() || undefined;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}
