/** The log guard (issue 4): library API embedded by `kiver agent` and used by `kiver guard`. */
export { LogGuard, DEFAULT_MAX_DEPTH } from './log-guard.js';
export type { GuardLogger, GuardState, LinkEvent, LogGuardOptions, LogGuardStatus, ReconcileSummary } from './log-guard.js';
export { GuardMetrics } from './metrics.js';
export { decodeLinkName, display, isHashedName, linkNameFor, DEFAULT_MAX_NAME_BYTES, SEPARATOR } from './link-name.js';
export { checkOutDir, entryKind, isGuardLink, isLinkable, relInsideRoot } from './safety.js';
export { readInotifyLimits, watchLimitMessage } from './inotify-limits.js';
