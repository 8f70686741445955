/**
 * BMC passwords at rest: AES-256-GCM with a 32-byte key kept in a 0600 file in the
 * server's data directory (created on first start). Ciphertexts are bound to the
 * machine name (additional authenticated data), so a stored password cannot be
 * copied onto another machine's record. Plus the redaction helpers that make sure a
 * Machine is never returned or logged with its password.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { chmod, mkdir, open, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { InputError, KiverError } from '../errors.js';
import type { BmcSpec, InstallRecord, MachineRecord, MachineView, StoredBmc } from '../model/machine.js';

export const SECRET_KEY_FILE = 'machine-secrets.key';
const VERSION = 'v1';

export class SecretKeyError extends KiverError {
  override readonly code = 'secret_key';
}

export class SecretBox {
  private constructor(private readonly key: Buffer) {}

  /** From raw key bytes (32). Mostly for tests; servers use loadOrCreate. */
  static fromKey(key: Buffer): SecretBox {
    if (key.length !== 32) throw new SecretKeyError('the machine secret key must be 32 bytes');
    return new SecretBox(Buffer.from(key));
  }

  /**
   * Loads `<dataDir>/machine-secrets.key`, creating it (mode 0600, O_EXCL so two
   * starting servers cannot write different keys) when missing. Refuses a key file
   * that others can read.
   */
  static async loadOrCreate(dataDir: string, fileName = SECRET_KEY_FILE): Promise<SecretBox> {
    const path = join(dataDir, fileName);
    await mkdir(dataDir, { recursive: true, mode: 0o700 });
    try {
      const fh = await open(path, 'wx', 0o600);
      try {
        await fh.writeFile(randomBytes(32).toString('hex') + '\n');
        await fh.sync();
      } finally {
        await fh.close();
      }
      await chmod(path, 0o600);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const st = await stat(path);
    if ((st.mode & 0o077) !== 0) {
      throw new SecretKeyError(`${path} is readable by group or others (mode ${(st.mode & 0o777).toString(8)}); chmod 600 it`);
    }
    const hex = (await readFile(path, 'utf8')).trim();
    if (!/^[0-9a-f]{64}$/i.test(hex)) throw new SecretKeyError(`${path} does not hold a 32-byte hex key`);
    return new SecretBox(Buffer.from(hex, 'hex'));
  }

  /** `v1:<base64(iv 12 | tag 16 | ciphertext)>`; `context` (e.g. the machine name) is authenticated. */
  encrypt(plain: string, context = ''): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv);
    cipher.setAAD(Buffer.from(context, 'utf8'));
    const ct = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
    return `${VERSION}:${Buffer.concat([iv, cipher.getAuthTag(), ct]).toString('base64')}`;
  }

  decrypt(envelope: string, context = ''): string {
    const [v, b64] = envelope.split(':', 2);
    if (v !== VERSION || !b64) throw new SecretKeyError('unknown secret envelope format');
    const raw = Buffer.from(b64, 'base64');
    if (raw.length < 28) throw new SecretKeyError('secret envelope too short');
    const decipher = createDecipheriv('aes-256-gcm', this.key, raw.subarray(0, 12));
    decipher.setAAD(Buffer.from(context, 'utf8'));
    decipher.setAuthTag(raw.subarray(12, 28));
    try {
      return Buffer.concat([decipher.update(raw.subarray(28)), decipher.final()]).toString('utf8');
    } catch {
      throw new SecretKeyError('cannot decrypt a stored secret (wrong key file, or the record was tampered with)');
    }
  }

  sealBmc(machineName: string, bmc: BmcSpec): StoredBmc {
    const { password, ...rest } = bmc;
    if (!password) throw new InputError('BMC password is required', 'bmc.password');
    return { ...rest, passwordEnc: this.encrypt(password, `machine/${machineName}/bmc`) };
  }

  openBmc(machineName: string, bmc: StoredBmc): BmcSpec {
    const { passwordEnc, ...rest } = bmc;
    return { ...rest, password: this.decrypt(passwordEnc, `machine/${machineName}/bmc`) };
  }
}

export function redactMachine(m: MachineRecord): MachineView {
  const { passwordEnc: _p, ...bmc } = m.bmc;
  const { install, ...status } = m.status;
  let inst: Omit<InstallRecord, 'tokenSha256'> | undefined;
  if (install) {
    const { tokenSha256: _t, ...rest } = install;
    inst = rest;
  }
  return {
    name: m.name,
    bmc: { ...bmc, password: '(set)' },
    macs: [...m.macs],
    osProfile: m.osProfile,
    identity: m.identity,
    createdAt: m.createdAt,
    status: { ...status, events: [...status.events], ...(inst ? { install: inst } : {}) },
  };
}

/**
 * Paths for pino's `redact` option, so a BMC password or install token that reaches a
 * log call by mistake is censored anyway.
 */
export const MACHINE_LOG_REDACT_PATHS = [
  'password', 'passwordEnc', 'token', 'tokenSha256',
  '*.password', '*.passwordEnc', '*.token', '*.tokenSha256',
  'bmc.password', '*.bmc.password', 'machine.bmc.password', 'machine.bmc.passwordEnc',
  'req.headers["x-kiver-install-token"]', 'req.query.token',
];
