/**
 * Which backups retention may delete, pure. Only completed and verified backups count;
 * nothing is deleted unless the newest backup is completed and verified (a failing run
 * never costs a good backup). Kept: the newest `keep` good ones, and any younger than
 * `keepDays`. Failed ones are not touched here (their objects were removed when they failed).
 */
import type { Backup, BackupPolicy } from '../model/backup.js';

export function expired(backups: Backup[], policy: Pick<BackupPolicy, 'keep' | 'keepDays'>, now: Date): Backup[] {
  const newest = [...backups].sort((a, b) => (a.createdAt < b.createdAt ? 1 : -1))[0];
  if (!newest || newest.state !== 'completed' || !newest.verified) return [];
  const good = backups.filter((b) => b.state === 'completed' && b.verified)
    .sort((a, b) => (a.finishedAt ?? a.createdAt) < (b.finishedAt ?? b.createdAt) ? 1 : -1);
  if (good.length <= policy.keep) return [];
  const minAge = (policy.keepDays ?? 0) * 24 * 3600 * 1000;
  return good.slice(policy.keep).filter((b) => now.getTime() - Date.parse(b.finishedAt ?? b.createdAt) >= minAge);
}
