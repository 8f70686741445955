/**
 * IPMI over LAN (IPMI 2.0 / RMCP+) through `ipmitool -I lanplus -C 3`.
 *
 * - ipmitool is spawned with an argv array (no shell); the password is never on a
 *   command line: it goes through the `IPMI_PASSWORD` environment variable (`-E`,
 *   readable only by the same user in /proc/<pid>/environ) or a 0600 temp file (`-f`).
 * - `-C 3` (HMAC-SHA1 / AES-CBC-128) skips the cipher-suite probe that otherwise stalls
 *   every call for ~10 s.
 * - ipmitool's verbose output is parsed to tell bad credentials (RAKP errors) from an
 *   unreachable BMC (no answer) from an unsupported command (completion codes); note
 *   that ipmitool exits 0 on some failures ("Set Chassis Boot Parameter 5 failed"), so
 *   stderr is always checked.
 * - Retries: only when no session could be established (nothing was executed), so a
 *   reset is never sent twice by Kiver. Bad credentials are never retried (lock-outs).
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { normalizeMac } from '../inventory-validate.js';
import { BmcAuthError, BmcCommandError, BmcUnreachableError, BmcUnsupportedError } from '../errors.js';
import type { BmcDriver, BmcDriverOptions, PowerState } from './driver.js';

export interface IpmiOptions extends BmcDriverOptions {
  address: string;
  port?: number;
  user: string;
  password: string;
  /** ipmitool binary (default `ipmitool` on PATH). */
  ipmitool?: string;
  /**
   * Run ipmitool through this prefix, e.g. `['ip', 'netns', 'exec', 'mgmt']` when the
   * BMC network is reachable only from a management namespace/VRF.
   */
  commandPrefix?: string[];
  /** How the password reaches ipmitool: environment (`-E`, default) or a 0600 file (`-f`). */
  passwordVia?: 'env' | 'file';
  /** ipmitool's own per-packet timeout `-N` (seconds, default 1) and retransmits `-R` (default 2). */
  lanTimeoutSec?: number;
  lanRetries?: number;
  /** Cipher suite (default 3). */
  cipherSuite?: number;
}

export interface IpmiRunResult {
  stdout: string;
  stderr: string;
  code: number | null;
  timedOut: boolean;
}

/** Lines ipmitool -v prints on every call that are not errors. */
const NOISE = [
  /^Loading IANA PEN Registry/,
  /^Running Get VSO Capabilities/,
  /^Invalid completion code received: Invalid command$/,
  /^Discovered IPMB address/,
  /^>> /,
  /^<< /,
];

function meaningful(stderr: string): string[] {
  return stderr
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !NOISE.some((re) => re.test(l)));
}

/** Classifies a finished ipmitool run; returns undefined when it succeeded. */
export function classifyIpmiFailure(r: IpmiRunResult, what: string, target: string): Error | undefined {
  const lines = meaningful(r.stderr);
  const text = lines.join('\n');
  if (/RAKP 2 HMAC is invalid|unauthorized name|invalid (user ?name|password)|RAKP \d message indicates an error : (unauthorized|invalid|insufficient)/i.test(text)) {
    return new BmcAuthError(`BMC ${target} refused the user name or password (${what})`);
  }
  if (/insufficient privilege/i.test(text)) {
    return new BmcAuthError(`BMC ${target}: the user lacks the privilege for ${what} (needs operator or admin)`);
  }
  if (r.timedOut) return new BmcUnreachableError(`BMC ${target} did not answer in time (${what})`);
  const failed = lines.filter((l) => /failed|error|unable|invalid|not supported|not present/i.test(l));
  const established = !/Unable to establish IPMI v2 \/ RMCP\+ session|Get Auth Capabilities error|Error issuing Get Channel Authentication Capabilities|No response from remote controller|Unable to establish LAN session/i.test(text);
  if (!established) return new BmcUnreachableError(`BMC ${target} is unreachable: no answer to IPMI session setup (${what})`);
  if (r.code === 0 && failed.length === 0) return undefined;
  if (failed.some((l) => /Invalid command|Invalid data field in request|not supported|Device not present|Requested sensor, data, or record not found|Command not supported|Parameter not supported/i.test(l))) {
    return new BmcUnsupportedError(`BMC ${target} does not support ${what}: ${failed[0]}`);
  }
  return new BmcCommandError(`BMC ${target}: ${what} failed: ${failed[0] ?? (text || `ipmitool exited ${r.code}`)}`);
}

/** Is this error safe to retry (the command surely did not run)? */
function retryable(err: Error): boolean {
  return err instanceof BmcUnreachableError;
}

/** MACs from `ipmitool fru print` output ("Product Extra : MAC0=52:54:00:12:34:56", ...). */
export function parseFruMacs(fruText: string): string[] {
  const macs: string[] = [];
  const re = /([0-9a-f]{2}(?:[:-][0-9a-f]{2}){5})/gi;
  for (const line of fruText.split('\n')) {
    if (!/(Extra|MAC)/i.test(line)) continue;
    for (const m of line.matchAll(re)) {
      const n = normalizeMac(m[1]);
      if (n && !macs.includes(n)) macs.push(n);
    }
  }
  return macs;
}

export class IpmiDriver implements BmcDriver {
  private readonly target: string;

  constructor(private readonly opts: IpmiOptions) {
    this.target = `${opts.address}${opts.port ? `:${opts.port}` : ''}`;
  }

  /** The argv (without the password) — exposed for tests and debugging. */
  argv(args: string[], passwordFile?: string): string[] {
    const o = this.opts;
    return [
      '-v',
      '-I', 'lanplus',
      '-C', String(o.cipherSuite ?? 3),
      '-H', o.address,
      '-p', String(o.port ?? 623),
      '-U', o.user,
      ...(passwordFile ? ['-f', passwordFile] : ['-E']),
      '-N', String(o.lanTimeoutSec ?? 1),
      '-R', String(o.lanRetries ?? 2),
      ...args,
    ];
  }

  private async runOnce(args: string[]): Promise<IpmiRunResult> {
    const o = this.opts;
    let dir: string | undefined;
    let pwFile: string | undefined;
    const env: NodeJS.ProcessEnv = { ...process.env };
    delete env.IPMI_PASSWORD;
    if (o.passwordVia === 'file') {
      dir = await mkdtemp(join(tmpdir(), 'kiver-ipmi-'));
      pwFile = join(dir, 'pw');
      await writeFile(pwFile, o.password, { mode: 0o600 });
    } else {
      env.IPMI_PASSWORD = o.password;
    }
    const cmd = [...(o.commandPrefix ?? []), o.ipmitool ?? 'ipmitool', ...this.argv(args, pwFile)];
    const timeoutMs = o.timeoutMs ?? 15_000;
    try {
      return await new Promise<IpmiRunResult>((resolve, reject) => {
        const child = spawn(cmd[0], cmd.slice(1), { env, stdio: ['ignore', 'pipe', 'pipe'] });
        let stdout = '';
        let stderr = '';
        let timedOut = false;
        child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
        child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
        const timer = setTimeout(() => { timedOut = true; child.kill('SIGKILL'); }, timeoutMs);
        child.on('error', (err) => {
          clearTimeout(timer);
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') reject(new BmcUnsupportedError(`${cmd[0]} is not installed (apt-get install ipmitool)`));
          else reject(err);
        });
        child.on('close', (code) => { clearTimeout(timer); resolve({ stdout, stderr, code, timedOut }); });
      });
    } finally {
      if (dir) await rm(dir, { recursive: true, force: true });
    }
  }

  /** Runs one ipmitool command with retries; throws a typed error. */
  async run(args: string[], what = args.join(' ')): Promise<string> {
    const attempts = 1 + (this.opts.retries ?? 1);
    let last: Error | undefined;
    for (let i = 0; i < attempts; i++) {
      const r = await this.runOnce(args);
      const err = classifyIpmiFailure(r, what, this.target);
      if (!err) return r.stdout;
      last = err;
      if (!retryable(err)) break;
    }
    throw last!;
  }

  async powerStatus(): Promise<PowerState> {
    const out = await this.run(['power', 'status'], 'power status');
    const m = /Chassis Power is (on|off)/i.exec(out);
    if (!m) throw new BmcCommandError(`BMC ${this.target}: unexpected power status answer: ${out.trim()}`);
    return m[1].toLowerCase() as PowerState;
  }

  async powerOn(): Promise<void> {
    await this.run(['power', 'on'], 'power on');
  }

  async powerOff(): Promise<void> {
    await this.run(['power', 'off'], 'power off');
  }

  async powerReset(): Promise<void> {
    await this.run(['power', 'reset'], 'power reset');
  }

  async bootPxeOnce(): Promise<void> {
    // `chassis bootdev pxe` sets boot flags valid for the next boot only.
    const out = await this.run(['chassis', 'bootdev', 'pxe'], 'one-time PXE boot');
    if (!/Set Boot Device to pxe/i.test(out)) {
      throw new BmcCommandError(`BMC ${this.target}: unexpected answer to bootdev pxe: ${out.trim()}`);
    }
  }

  async readMacs(): Promise<string[]> {
    const out = await this.run(['fru', 'print', '0'], 'FRU read (NIC MAC)');
    const macs = parseFruMacs(out);
    if (macs.length === 0) {
      throw new BmcUnsupportedError(`BMC ${this.target} exposes no NIC MAC in its FRU data; list the machine's MACs in the inventory`);
    }
    return macs;
  }
}
