import { spawn } from 'node:child_process';
import { accessSync, constants, type WriteStream } from 'node:fs';
import { delimiter, join } from 'node:path';
import { KiverError } from '../errors.js';

/** A build step failed: the message names the command and ends with its last output lines. */
export class BuildError extends KiverError {
  override readonly code = 'build_failed';
}

export interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Everything the command prints (stdout and stderr) is appended here. */
  log?: WriteStream;
  /** Return stdout as a string (otherwise it only goes to the log). */
  capture?: boolean;
}

const TAIL_BYTES = 4000;

/**
 * Runs a command without a shell. Resolves with its stdout when `capture` is set;
 * rejects with a BuildError carrying the tail of its output when it exits non-zero.
 */
export function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    let tail = '';
    const keep = (chunk: Buffer) => {
      tail = (tail + chunk.toString('utf8')).slice(-TAIL_BYTES);
      opts.log?.write(chunk);
    };
    child.stdout.on('data', (chunk: Buffer) => {
      if (opts.capture) out.push(chunk);
      else keep(chunk);
    });
    child.stderr.on('data', keep);
    child.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') reject(new BuildError(`${cmd}: command not found`));
      else reject(err);
    });
    child.on('close', (code, signal) => {
      if (code === 0) {
        resolve(Buffer.concat(out).toString('utf8'));
        return;
      }
      const why = signal ? `was killed by ${signal}` : `exited with status ${code}`;
      const lines = tail.trimEnd().split('\n').slice(-12).map((l) => `  | ${l}`).join('\n');
      reject(new BuildError(`${[cmd, ...args].join(' ')} ${why}${lines ? `\n${lines}` : ''}`));
    });
  });
}

/** Finds an executable on PATH plus the sbin directories a non-root PATH may lack. */
export function which(cmd: string): string | undefined {
  const dirs = (process.env.PATH ?? '').split(delimiter).concat(['/usr/local/sbin', '/usr/sbin', '/sbin']);
  for (const dir of dirs) {
    if (!dir) continue;
    const p = join(dir, cmd);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      /* not here */
    }
  }
  return undefined;
}
