/** Kernel inotify limits and the operator-facing messages about them. */
import { readFileSync } from 'node:fs';

export interface InotifyLimits {
  /** fs.inotify.max_user_watches, or null when /proc does not say. */
  maxUserWatches: number | null;
  /** fs.inotify.max_queued_events, or null when /proc does not say. */
  maxQueuedEvents: number | null;
}

function readNumber(path: string): number | null {
  try {
    const n = Number(readFileSync(path, 'utf8').trim());
    return Number.isFinite(n) && n > 0 ? n : null;
  } catch {
    return null;
  }
}

export function readInotifyLimits(): InotifyLimits {
  return {
    maxUserWatches: readNumber('/proc/sys/fs/inotify/max_user_watches'),
    maxQueuedEvents: readNumber('/proc/sys/fs/inotify/max_queued_events'),
  };
}

/** The error logged once when the guard runs out of inotify watches. */
export function watchLimitMessage(opts: {
  watchesInUse: number;
  maxUserWatches: number | null;
  budget: number | null;
  pollIntervalMs: number;
}): string {
  const current = opts.maxUserWatches ?? 'unknown';
  const suggested = Math.max(524288, (opts.maxUserWatches ?? 0) * 2);
  const cause =
    opts.budget !== null
      ? `the guard's watch budget (--max-watches ${opts.budget}) is used up`
      : `the kernel refused another inotify watch (ENOSPC): fs.inotify.max_user_watches=${current} is too low for this log tree and everything else watching files as this user`;
  return (
    `inotify watch limit reached with ${opts.watchesInUse} watches in use: ${cause}. ` +
    `Raise it: sysctl -w fs.inotify.max_user_watches=${suggested} (persist it in /etc/sysctl.d/)` +
    (opts.budget !== null ? ' and --max-watches' : '') +
    `. Until then directories without a watch are scanned every ${opts.pollIntervalMs / 1000}s, so new files there are linked late, not missed.`
  );
}
