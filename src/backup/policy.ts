/**
 * Backup policies, pure: checking a policy (cron, time zone, counts) and finding the
 * cron slot that is due. A slot is due when it lies after the last slot a backup was
 * created for and not after now; when several were missed (no leader for a while), only
 * the newest runs — once — and the older ones are skipped.
 */
import { Cron } from 'croner';
import type { BackupPolicy, PolicySet } from '../model/backup.js';
import { InputError } from '../errors.js';

export const DEFAULT_KEEP = 7;
/** How far back a missed slot is looked for (a schedule idle for longer starts from here). */
const LOOKBACK_MS = 2 * 24 * 3600 * 1000;

function cron(schedule: string, tz: string): Cron {
  return new Cron(schedule, { timezone: tz, paused: true });
}

/** Checks every field (400 naming it); the target's existence is the caller's (it needs the store). */
export function checkPolicy(service: string, p: PolicySet, now = new Date()): BackupPolicy {
  const tz = p.tz ?? 'UTC';
  try {
    new Intl.DateTimeFormat('en', { timeZone: tz });
  } catch {
    throw new InputError(`tz: unknown time zone ${JSON.stringify(tz)} (an IANA name such as Asia/Shanghai)`, 'tz');
  }
  try {
    cron(p.schedule, tz).nextRun(now);
  } catch (err) {
    throw new InputError(`schedule: not a cron expression: ${(err as Error).message}`, 'schedule');
  }
  const keep = p.keep ?? DEFAULT_KEEP;
  if (!Number.isInteger(keep) || keep < 1 || keep > 10_000) throw new InputError('keep: must be an integer from 1 to 10000', 'keep');
  if (p.keepDays !== undefined && (!Number.isInteger(p.keepDays) || p.keepDays < 1 || p.keepDays > 36_500)) {
    throw new InputError('keepDays: must be an integer from 1 to 36500', 'keepDays');
  }
  return {
    service, schedule: p.schedule, tz, target: p.target, keep,
    ...(p.keepDays !== undefined ? { keepDays: p.keepDays } : {}),
    createdAt: now.toISOString(),
  };
}

/** The newest slot in (lastSlot ?? createdAt, now], or undefined when none is due. */
export function dueSlot(p: BackupPolicy, now: Date): Date | undefined {
  const c = cron(p.schedule, p.tz);
  let from = new Date(Math.max(Date.parse(p.lastSlot ?? p.createdAt), now.getTime() - LOOKBACK_MS));
  let due: Date | undefined;
  for (let i = 0; i < 100_000; i++) {
    const next = c.nextRun(from);
    if (!next || next.getTime() > now.getTime()) break;
    due = next;
    from = next;
  }
  return due;
}

/** The next slot after now (for `policy get`). */
export function nextSlot(p: BackupPolicy, now: Date): Date | undefined {
  return cron(p.schedule, p.tz).nextRun(now) ?? undefined;
}

/** `20261202t020000z`: a slot or time as a backup id suffix. */
export function stamp(d: Date): string {
  return d.toISOString().replace(/\.\d+Z$/, 'Z').replace(/[-:]/g, '').toLowerCase();
}
