/**
 * The server's data dir holds the store, tokens and keys: on every start it is made
 * private (0700, its files 0600), not only when Kiver creates it — a pre-made 0755
 * dir would otherwise leave kiver.db world-readable. A dir this user does not own
 * is refused: tightening someone else's dir would hide the problem, not fix it.
 */
import { chmod, lstat, mkdir, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { InputError } from '../errors.js';
import type { Logger } from '../log.js';

export async function makeDataDirPrivate(dir: string, log?: Logger): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const st = await stat(dir);
  if (!st.isDirectory()) throw new InputError(`--data-dir ${dir} is not a directory`, 'data-dir');
  const uid = process.getuid?.();
  if (uid !== undefined && st.uid !== uid) {
    throw new InputError(`--data-dir ${dir} belongs to uid ${st.uid}, not to this user (uid ${uid}); refusing to keep the store and tokens there: chown it or pick another dir`, 'data-dir');
  }
  if ((st.mode & 0o077) !== 0) {
    await chmod(dir, 0o700);
    log?.warn({ dir, was: (st.mode & 0o777).toString(8) }, 'data dir was readable by others; tightened to 0700');
  }
  for (const name of await readdir(dir)) {
    const f = join(dir, name);
    const fst = await lstat(f).catch(() => undefined); // lstat: a symlink's target is not ours to chmod
    if (!fst?.isFile() || (fst.mode & 0o077) === 0) continue;
    if (fst.uid !== st.uid) continue;
    await chmod(f, fst.mode & 0o700);
    log?.warn({ file: f, was: (fst.mode & 0o777).toString(8) }, 'data dir file was readable by others; tightened');
  }
}
