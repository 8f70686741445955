/**
 * Target records: keys sealed with the cluster's SecretBox, bound to
 * `backup-target/<name>/<field>` (an envelope cannot be moved to another target),
 * a view with "(set)" in place of each key, and `check`: write, read back and delete
 * a probe object, saying which step failed and why.
 */
import { randomBytes } from 'node:crypto';
import type { SecretBox } from '../secrets.js';
import type { StoredTarget, TargetCheck, TargetConfig, TargetCreate, TargetView } from '../model/backup.js';
import { InputError } from '../errors.js';
import { openTarget } from './target.js';
import { describeS3Error } from './s3-target.js';

const ctx = (name: string, field: string) => `backup-target/${name}/${field}`;

export function sealTarget(box: SecretBox, t: TargetCreate, now = new Date()): StoredTarget {
  if (Boolean(t.s3) === Boolean(t.rbd)) throw new InputError('give exactly one of s3 or rbd', t.s3 ? 'rbd' : 's3');
  const createdAt = now.toISOString();
  if (t.s3) {
    const { accessKey, secretKey, ...rest } = t.s3;
    return {
      name: t.name, kind: 's3', createdAt,
      s3: { ...rest, url: rest.url.replace(/\/$/, ''), accessKeyEnc: box.encrypt(accessKey, ctx(t.name, 'access-key')), secretKeyEnc: box.encrypt(secretKey, ctx(t.name, 'secret-key')) },
    };
  }
  const { key, ...rest } = t.rbd!;
  return { name: t.name, kind: 'rbd', createdAt, rbd: { ...rest, ...(key ? { keyEnc: box.encrypt(key, ctx(t.name, 'key')) } : {}) } };
}

/** Opened: only for the server's own check/retention calls and the one agent job that needs it. */
export function openStoredTarget(box: SecretBox, t: StoredTarget): TargetConfig {
  if (t.s3) {
    const { accessKeyEnc, secretKeyEnc, ...rest } = t.s3;
    return { name: t.name, s3: { ...rest, accessKey: box.decrypt(accessKeyEnc, ctx(t.name, 'access-key')), secretKey: box.decrypt(secretKeyEnc, ctx(t.name, 'secret-key')) } };
  }
  const { keyEnc, ...rest } = t.rbd!;
  return { name: t.name, rbd: { ...rest, ...(keyEnc ? { key: box.decrypt(keyEnc, ctx(t.name, 'key')) } : {}) } };
}

export function targetView(t: StoredTarget): TargetView {
  if (t.s3) {
    const { accessKeyEnc: _a, secretKeyEnc: _s, ...rest } = t.s3;
    return { name: t.name, kind: t.kind, s3: { ...rest, accessKey: '(set)', secretKey: '(set)' }, createdAt: t.createdAt };
  }
  const { keyEnc, ...rest } = t.rbd!;
  return { name: t.name, kind: t.kind, rbd: { ...rest, ...(keyEnc ? { key: '(set)' } : {}) }, createdAt: t.createdAt };
}

/** Runs each step in order and stops at the first that fails. */
export async function checkTarget(cfg: TargetConfig): Promise<TargetCheck> {
  const t = openTarget(cfg);
  const key = `kiver/.probe/${randomBytes(8).toString('hex')}`;
  const body = `kiver probe ${new Date().toISOString()} ${randomBytes(8).toString('hex')}`;
  const steps: TargetCheck['steps'] = [];
  const step = async (name: string, fn: () => Promise<void>): Promise<boolean> => {
    const t0 = performance.now();
    try {
      await fn();
      steps.push({ step: name, ok: true, ms: Math.round(performance.now() - t0) });
      return true;
    } catch (err) {
      steps.push({ step: name, ok: false, ms: Math.round(performance.now() - t0), error: describeS3Error(err) });
      return false;
    }
  };
  try {
    const ok = await step(cfg.s3 ? `bucket ${cfg.s3.bucket} (created when missing)` : `pool ${cfg.rbd!.pool}`, () => t.prepare())
      && await step(`write probe object ${key}`, () => t.putSmall(key, body))
      && await step('read probe object back', async () => {
        const got = await t.getSmall(key);
        if (got !== body) throw new Error(`read ${got.length} bytes that differ from the ${body.length} written`);
      })
      && await step('delete probe object', () => t.remove(key));
    if (!ok && steps.at(-1)!.step.startsWith('read')) await t.remove(key).catch(() => {});
    return { ok, steps };
  } finally {
    t.close();
  }
}
