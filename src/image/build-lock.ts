/** One build of a given image at a time per cache dir, across processes (a pid file). */
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { BuildError } from './exec.js';

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** One build of a given image at a time per cache dir (across processes). */
export async function withLock<T>(file: string, onWait: (pid: number) => void, fn: () => Promise<T>): Promise<T> {
  mkdirSync(join(file, '..'), { recursive: true });
  let waited = false;
  const deadline = Date.now() + 60 * 60_000;
  for (;;) {
    try {
      const fd = openSync(file, 'wx');
      writeSync(fd, String(process.pid));
      closeSync(fd);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      let pid = NaN;
      try {
        pid = Number(readFileSync(file, 'utf8'));
      } catch {
        continue; // released meanwhile
      }
      if (!Number.isInteger(pid) || pid <= 0 || !pidAlive(pid)) {
        rmSync(file, { force: true });
        continue;
      }
      if (!waited) onWait(pid);
      waited = true;
      if (Date.now() > deadline) throw new BuildError(`gave up waiting for the build lock ${file} held by pid ${pid}`);
      await sleep(300);
    }
  }
  try {
    return await fn();
  } finally {
    try {
      unlinkSync(file);
    } catch {
      /* gone */
    }
  }
}
