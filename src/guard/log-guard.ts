/**
 * LogGuard: mirrors every regular file of a log tree, at any depth, as a symlink in one
 * flat directory that a log shipper (Flume Taildir, Fluent Bit tail, Filebeat) watches.
 *
 * How it stays correct (docs/guard.md has the long version):
 *  - one inotify watch per directory through Node's fs.watch (libuv shares one inotify fd);
 *    every 'rename' event is only a hint "look at this name again": the guard lstat()s the
 *    entry and makes the flat directory agree (level-triggered, idempotent);
 *  - a new directory is watched first and scanned right after, so files created before
 *    the watch existed are not missed;
 *  - libuv drops IN_Q_OVERFLOW silently, but when the kernel queue overflowed the next read
 *    burst is as long as the queue (max_queued_events); a burst of half that length or more
 *    triggers a full rescan;
 *  - when no watch can be had (ENOSPC, or the --max-watches budget), the directory is
 *    scanned every pollIntervalMs instead, and the error names fs.inotify.max_user_watches;
 *  - a full reconcile runs at start and every rescanIntervalMs: links for every file,
 *    links of ours that no longer match a file removed, foreign entries left alone;
 *  - a directory is opened with O_NOFOLLOW|O_DIRECTORY and the opened handle's inode must
 *    be the one recorded when its parent listed it (an ancestor swapped for a symlink
 *    leads elsewhere and fails the check); its entries are listed and lstat'ed through
 *    that handle (/proc/self/fd/N), never through the path again — O(1) per directory,
 *    where a realpath of the whole path cost O(depth);
 *  - directories deeper than maxDepth (default 64) are not followed (counted, logged once).
 * Paths are byte strings (link-name.ts) so any file name works.
 */
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { Registry } from 'prom-client';
import { InputError } from '../errors.js';
import { readInotifyLimits, watchLimitMessage } from './inotify-limits.js';
import { display, fromBuf, linkNameFor, plainChildName, plainDirPrefix, toBuf, DEFAULT_MAX_NAME_BYTES } from './link-name.js';
import { GuardMetrics, type ErrorKind, type RemoveReason, type RescanReason } from './metrics.js';
import { checkOutDir, entryKind, isGuardLink, targetRel, type EntryKind } from './safety.js';

/** The subset of a pino logger the guard uses. */
export interface GuardLogger {
  /** pino's; when present, debug lines are built only if they will be written. */
  isLevelEnabled?(level: string): boolean;
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface LogGuardOptions {
  /** The log tree (Kiver: /app/log, laid out as <service>/<ordinal>/…). Must exist. */
  root: string;
  /** The flat directory the shipper reads. Created if missing. Outside the root or directly under it. */
  out: string;
  /** Where the kiver_guard_* metrics go; a private registry when omitted. */
  registry?: Registry;
  /** Metric name prefix (default 'kiver_guard_'). */
  metricsPrefix?: string;
  /** pino-like logger; silent when omitted. */
  logger?: GuardLogger;
  /** Full reconcile period in ms (default 300000; 0 turns it off). */
  rescanIntervalMs?: number;
  /** Scan period for directories without a watch, in ms (default 2000). */
  pollIntervalMs?: number;
  /** Most inotify watches the guard may hold (default: no cap but the kernel's). */
  maxWatches?: number;
  /** Longest link name in bytes (default 255). */
  maxNameBytes?: number;
  /** Events in one read burst taken as a sign of queue overflow (default max_queued_events / 2). */
  overflowBurstEvents?: number;
  /** Longest stretch of synchronous scanning before yielding to the event loop, ms (default 10). */
  sliceMs?: number;
  /** Whether the watches keep the Node process alive (default true). */
  keepAlive?: boolean;
  /** Deepest directory (root = 0) the guard follows; deeper ones are counted and logged once (default 64). */
  maxDepth?: number;
}

/** Deep enough for any real log layout; a 10,000-deep tree is an attack on the guard's time. */
export const DEFAULT_MAX_DEPTH = 64;
const DIR_FLAGS = fs.constants.O_RDONLY | fs.constants.O_DIRECTORY | fs.constants.O_NOFOLLOW;
/** Listing and lstat through an open directory handle (Node has no fdopendir/fstatat). */
const FD_DIR = fs.existsSync('/proc/self/fd') ? '/proc/self/fd' : null;

export type GuardState = 'stopped' | 'starting' | 'running' | 'stopping';

export interface ReconcileSummary {
  reason: RescanReason;
  finishedAt: Date;
  durationMs: number;
  directories: number;
  links: number;
  foreignEntries: number;
}

export interface LogGuardStatus {
  state: GuardState;
  root: string;
  out: string;
  links: number;
  directories: number;
  watches: number;
  unwatchedDirectories: number;
  watchLimitReached: boolean;
  rootOnSystemFilesystem: boolean;
  lastReconcile: ReconcileSummary | null;
}

/** Payload of the 'link' and 'unlink' events; name and rel are byte strings. */
export interface LinkEvent {
  name: string;
  rel: string;
  reason?: RemoveReason;
}

type Via = 'start' | 'scan' | 'event';

class DirNode {
  readonly rel: string;
  readonly abs: string;
  readonly depth: number;
  readonly files = new Map<string, string>(); // child name → link name
  readonly dirs = new Map<string, DirNode>();
  watcher: fs.FSWatcher | null = null;
  removed = false;
  /** Link-name prefix of the children (plainDirPrefix), null when names need the full encoder; computed once. */
  linkPrefix: string | null | undefined = undefined;
  /** What a child's symlink target starts with; computed once. */
  targetPrefix: string | undefined = undefined;
  constructor(
    readonly parent: DirNode | null,
    readonly name: string,
    readonly ino: number,
    readonly dev: number,
    rootAbs: string,
  ) {
    this.rel = parent === null ? '' : parent.rel === '' ? name : `${parent.rel}/${name}`;
    this.depth = parent === null ? 0 : parent.depth + 1;
    this.abs = parent === null ? rootAbs : `${rootAbs}/${this.rel}`;
  }
}

const SILENT: GuardLogger = { debug() {}, info() {}, warn() {}, error() {} };

function errCode(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException | null)?.code;
}

const ASCII_RE = /^[\x01-\x7f]*$/;

/** A byte-string path as an fs argument: ASCII as it is (same bytes in UTF-8), anything else as a Buffer. */
function p(s: string): string | Buffer {
  return ASCII_RE.test(s) ? s : toBuf(s);
}

function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

export class LogGuard extends EventEmitter {
  readonly metrics: GuardMetrics;
  readonly registry: Registry;
  private readonly log: GuardLogger;
  private readonly opts: Required<Omit<LogGuardOptions, 'registry' | 'logger' | 'maxWatches' | 'overflowBurstEvents' | 'metricsPrefix'>> & {
    maxWatches: number | null;
  };
  private state: GuardState = 'stopped';
  private rootAbs = '';
  private outAbs = '';
  private skipName: string | null = null;
  private outIno = -1;
  private outDev = -1;
  private root: DirNode | null = null;
  private readonly links = new Map<string, DirNode>(); // link name → directory of the file it names
  private watchCount = 0;
  private dirCount = 0;
  private readonly unwatched = new Set<DirNode>(); // scanned every pollIntervalMs instead
  private readonly limited = new Set<DirNode>(); // the unwatched ones that hit the watch limit
  private limitLogged = false;
  private maxUserWatches: number | null = null;
  private overflowThreshold = 8192;
  private burst = 0;
  private queue: Array<{ node: DirNode; reason: RescanReason | null }> = [];
  private queueHead = 0;
  private pumping: Promise<void> | null = null;
  private fullRunning: Promise<void> | null = null;
  private fullPending: RescanReason | null = null;
  private rescanTimer: NodeJS.Timeout | null = null;
  private pollTimer: NodeJS.Timeout | null = null;
  private rootOnSystemFs = false;
  private lastReconcile: ReconcileSummary | null = null;
  private outListing: Set<string> | null = null;
  private readonly debugOn: boolean;
  private readonly warnBudget = new Map<string, { windowStart: number; count: number }>();
  private depthLogged = false;

  constructor(options: LogGuardOptions) {
    super();
    if (!options || typeof options.root !== 'string' || options.root === '') throw new InputError('root is required', 'root');
    if (typeof options.out !== 'string' || options.out === '') throw new InputError('out is required', 'out');
    const num = (v: number | undefined, d: number, field: string, min: number): number => {
      if (v === undefined) return d;
      if (!Number.isFinite(v) || v < min) throw new InputError(`${field} must be a number >= ${min}`, field);
      return v;
    };
    this.opts = {
      root: options.root,
      out: options.out,
      rescanIntervalMs: num(options.rescanIntervalMs, 300_000, 'rescanIntervalMs', 0),
      pollIntervalMs: num(options.pollIntervalMs, 2_000, 'pollIntervalMs', 10),
      maxNameBytes: num(options.maxNameBytes, DEFAULT_MAX_NAME_BYTES, 'maxNameBytes', 64),
      sliceMs: num(options.sliceMs, 10, 'sliceMs', 1),
      keepAlive: options.keepAlive ?? true,
      maxWatches: options.maxWatches === undefined ? null : num(options.maxWatches, 0, 'maxWatches', 1),
      maxDepth: num(options.maxDepth, DEFAULT_MAX_DEPTH, 'maxDepth', 1),
    };
    if (options.overflowBurstEvents !== undefined) this.overflowThreshold = num(options.overflowBurstEvents, 0, 'overflowBurstEvents', 1);
    this.overflowFromOptions = options.overflowBurstEvents !== undefined;
    this.registry = options.registry ?? new Registry();
    this.log = options.logger ?? SILENT;
    this.debugOn = this.log === SILENT ? false : (this.log.isLevelEnabled?.('debug') ?? true);
    this.metrics = new GuardMetrics(this.registry, options.metricsPrefix ?? 'kiver_guard_', () => ({
      links: this.links.size,
      watches: this.watchCount,
      unwatched: this.unwatched.size,
      watchLimitReached: this.limited.size > 0,
    }));
  }
  private readonly overflowFromOptions: boolean;

  // ---------------------------------------------------------------- lifecycle

  /** Checks the paths, watches the tree and links every existing file. Resolves when the first reconcile is done. */
  async start(): Promise<void> {
    if (this.state !== 'stopped') throw new Error(`guard is ${this.state}`);
    this.state = 'starting';
    try {
      this.prepare();
      await this.reconcile('start');
    } catch (e) {
      await this.stop();
      throw e;
    }
    if (this.state !== 'starting') return;
    this.state = 'running';
    if (this.opts.rescanIntervalMs > 0) {
      this.rescanTimer = setInterval(() => this.requestFull('periodic'), this.opts.rescanIntervalMs);
      this.rescanTimer.unref();
    }
    this.pollTimer = setInterval(() => this.pollUnwatched(), this.opts.pollIntervalMs);
    this.pollTimer.unref();
    this.log.info(
      { root: display(this.rootAbs), out: display(this.outAbs), links: this.links.size, watches: this.watchCount, durationMs: this.lastReconcile?.durationMs },
      'log guard started',
    );
  }

  /** Closes every watch and timer. Links stay in place for the shipper and the next start. */
  async stop(): Promise<void> {
    if (this.state === 'stopped' || this.state === 'stopping') return;
    const wasRunning = this.state === 'running';
    this.state = 'stopping';
    if (this.rescanTimer) clearInterval(this.rescanTimer);
    if (this.pollTimer) clearInterval(this.pollTimer);
    this.rescanTimer = this.pollTimer = null;
    await Promise.allSettled([this.fullRunning, this.pumping].filter(Boolean));
    if (this.root) this.forEachNode(this.root, (n) => this.closeWatch(n));
    const links = this.links.size;
    // Forget the tree: a later start() walks it again and adopts the links it finds.
    this.root = null;
    this.links.clear();
    this.dirCount = 0;
    this.unwatched.clear();
    this.limited.clear();
    this.limitLogged = false;
    this.state = 'stopped';
    if (wasRunning) this.log.info({ links }, 'log guard stopped; links stay in place');
  }

  /** Runs a full reconcile now (also what start and the periodic timer do). */
  async reconcile(reason: RescanReason = 'periodic'): Promise<void> {
    if (this.fullRunning) {
      // the running pass picks this up when it ends, before it resolves
      this.fullPending = reason;
      await this.fullRunning;
      return;
    }
    this.fullRunning = (async () => {
      await null; // let the assignment above happen before anything below can finish
      try {
        let r: RescanReason | null = reason;
        while (r !== null && this.active()) {
          this.fullPending = null;
          await this.runFull(r);
          r = this.fullPending;
        }
      } finally {
        this.fullRunning = null; // in the same turn as the last check of fullPending
      }
    })();
    await this.fullRunning;
  }

  status(): LogGuardStatus {
    return {
      state: this.state,
      root: display(this.rootAbs || toBytes(this.opts.root)),
      out: display(this.outAbs || toBytes(this.opts.out)),
      links: this.links.size,
      directories: this.dirCount,
      watches: this.watchCount,
      unwatchedDirectories: this.unwatched.size,
      watchLimitReached: this.limited.size > 0,
      rootOnSystemFilesystem: this.rootOnSystemFs,
      lastReconcile: this.lastReconcile,
    };
  }

  /** A snapshot of the links: link name → path relative to the root (byte strings). O(links). */
  linkTable(): Map<string, string> {
    const table = new Map<string, string>();
    if (this.root) {
      this.forEachNode(this.root, (n) => {
        for (const [name, linkName] of n.files) table.set(linkName, n.rel === '' ? name : `${n.rel}/${name}`);
      });
    }
    return table;
  }

  private active(): boolean {
    return this.state === 'starting' || this.state === 'running';
  }

  private prepare(): void {
    let rootBuf: Buffer;
    try {
      rootBuf = fs.realpathSync.native(this.opts.root, { encoding: 'buffer' });
    } catch (e) {
      throw new InputError(`log root ${this.opts.root} does not exist or cannot be read (${errCode(e) ?? e})`, 'root');
    }
    const rootSt = fs.statSync(rootBuf);
    if (!rootSt.isDirectory()) throw new InputError(`log root ${this.opts.root} is not a directory`, 'root');
    this.rootAbs = fromBuf(rootBuf);
    // Check where --out really lies before creating anything there.
    this.skipName = checkOutDir(this.rootAbs, resolveFuturePath(this.opts.out));
    try {
      fs.mkdirSync(this.opts.out, { recursive: true, mode: 0o755 });
    } catch (e) {
      throw new InputError(`cannot create the flat directory ${this.opts.out}: ${(e as Error).message}`, 'out');
    }
    const outBuf = fs.realpathSync.native(this.opts.out, { encoding: 'buffer' });
    this.outAbs = fromBuf(outBuf);
    this.skipName = checkOutDir(this.rootAbs, this.outAbs);
    const outSt = fs.statSync(outBuf);
    if (!outSt.isDirectory()) throw new InputError(`--out ${this.opts.out} is not a directory`, 'out');
    this.outIno = outSt.ino;
    this.outDev = outSt.dev;

    try {
      this.rootOnSystemFs = fs.statSync('/').dev === rootSt.dev;
    } catch {
      this.rootOnSystemFs = false;
    }
    this.metrics.rootOnSystemFs.set(this.rootOnSystemFs ? 1 : 0);
    if (this.rootOnSystemFs) {
      this.log.warn(
        { root: display(this.rootAbs) },
        `log root ${display(this.rootAbs)} is on the same filesystem as /: container logs can fill the system disk; mount a dedicated log partition there`,
      );
    }
    const limits = readInotifyLimits();
    this.maxUserWatches = limits.maxUserWatches;
    if (!this.overflowFromOptions) this.overflowThreshold = Math.max(64, Math.floor((limits.maxQueuedEvents ?? 16384) / 2));
  }

  // ------------------------------------------------------------ full reconcile

  private requestFull(reason: RescanReason): void {
    if (!this.active()) return;
    this.reconcile(reason).catch((e) => this.fail('scan', e, 'full reconcile failed'));
  }

  private async runFull(reason: RescanReason): Promise<void> {
    const t0 = nowMs();
    this.metrics.rescans.inc({ reason });
    this.ensureOutDir();
    const root = this.checkRoot();
    if (root === null) return;
    const via: Via = reason === 'start' ? 'start' : 'scan';
    // Names already in the flat directory: checked with readlink instead of a failing
    // symlink (an EEXIST costs an Error object with a stack trace in Node).
    this.outListing = this.listOutDir();
    const stack: DirNode[] = [root];
    let slice = nowMs();
    while (stack.length > 0 && this.active()) {
      const node = stack.pop()!;
      if (node.removed) continue;
      for (const child of this.scanDir(node, via, true)) stack.push(child);
      if (nowMs() - slice > this.opts.sliceMs) {
        await yieldTurn();
        slice = nowMs();
      }
    }
    this.outListing = null;
    if (!this.active()) return;
    const foreign = this.sweepOutDir();
    const durationMs = nowMs() - t0;
    this.metrics.reconcileSeconds.set(durationMs / 1000);
    this.metrics.lastReconcile.set(Date.now() / 1000);
    this.lastReconcile = {
      reason,
      finishedAt: new Date(),
      durationMs,
      directories: this.dirCount,
      links: this.links.size,
      foreignEntries: foreign,
    };
    this.log.debug({ ...this.lastReconcile }, 'reconcile done');
  }

  /** Makes sure the root node matches the root directory on disk; null when the root is gone. */
  private checkRoot(): DirNode | null {
    let st: fs.Stats | undefined;
    try {
      st = fs.lstatSync(toBuf(this.rootAbs), { throwIfNoEntry: false });
    } catch (e) {
      this.fail('root', e, 'cannot stat the log root');
    }
    if (!st || !st.isDirectory()) {
      if (this.root) {
        this.warnLimited('root', { root: display(this.rootAbs) }, 'log root disappeared; removing its links');
        this.removeDir(this.root, 'dir_gone');
        this.root = null;
      }
      return null;
    }
    if (this.root && (this.root.ino !== st.ino || this.root.dev !== st.dev)) {
      this.removeDir(this.root, 'dir_gone');
      this.root = null;
    }
    if (!this.root) {
      this.root = new DirNode(null, basename(this.rootAbs), st.ino, st.dev, this.rootAbs);
      this.dirCount++;
      this.watch(this.root);
    }
    return this.root;
  }

  /**
   * Removes links of ours that nothing backs, counts foreign entries, recreates links
   * someone deleted. Only symlinks whose target lies inside the root and whose name is
   * the guard's name for that target are ever removed.
   */
  private sweepOutDir(): number {
    const ours: Array<[string, string]> = []; // [link name, rel] of links the guard made but does not maintain now
    let foreign = 0;
    const outUnderRoot = this.skipName !== null;
    const maintained = this.links.size;
    let maintainedPresent = 0;
    const err = this.listDir(this.outAbs, (name, de) => {
      if (this.links.has(name)) {
        maintainedPresent++;
        return;
      }
      if (!de.isSymbolicLink()) {
        foreign++;
        return;
      }
      let target: string;
      try {
        target = fs.readlinkSync(p(`${this.outAbs}/${name}`), { encoding: 'latin1' });
      } catch {
        return;
      }
      if (!isGuardLink(name, target, this.rootAbs, { maxNameBytes: this.opts.maxNameBytes, outUnderRoot })) {
        foreign++;
        return;
      }
      ours.push([name, targetRel(target, this.rootAbs, outUnderRoot)!]);
    });
    if (err) {
      this.fail('out_dir', err, 'cannot list the flat directory');
      return 0;
    }
    for (const [name, rel] of ours) {
      // The file appeared after its directory was scanned (link it properly), or it is
      // gone or unsafe now (remove the link).
      const slash = rel.lastIndexOf('/');
      const parent = this.findDir(slash < 0 ? '' : rel.slice(0, slash));
      const base = rel.slice(slash + 1);
      if (parent) this.reconcileEntry(parent, base, 'scan');
      if (!parent || this.links.get(name) !== parent || parent.files.get(base) !== name) this.unlinkOurs(name, rel, 'stale');
    }
    // links someone deleted: make them again (the only case that needs the whole listing in memory)
    if (this.root && maintainedPresent < maintained) {
      const present = this.listOutDir() ?? new Set<string>();
      this.forEachNode(this.root, (n) => {
        for (const [fname, linkName] of n.files) {
          if (!present.has(linkName)) this.createLink(linkName, n, fname);
        }
      });
    }
    this.metrics.foreignEntries.set(foreign);
    return foreign;
  }

  /**
   * Streams a directory's entries (names as byte strings) without building arrays: a
   * flat directory of 100,000 links costs no transient memory. Returns the error, if any.
   */
  private listDir(abs: string, fn: (name: string, de: fs.Dirent) => void): NodeJS.ErrnoException | null {
    let dir: fs.Dir;
    try {
      // 'latin1' names are byte strings already: no Buffer per entry
      dir = fs.opendirSync(p(abs) as string, { encoding: 'latin1', bufferSize: 128 });
    } catch (e) {
      return e as NodeJS.ErrnoException;
    }
    try {
      for (let de = dir.readSync(); de !== null; de = dir.readSync()) fn(de.name, de);
      return null;
    } catch (e) {
      return e as NodeJS.ErrnoException;
    } finally {
      dir.closeSync();
    }
  }

  private listOutDir(): Set<string> | null {
    const names = new Set<string>();
    return this.listDir(this.outAbs, (name) => names.add(name)) ? null : names;
  }

  private findDir(rel: string): DirNode | null {
    let node = this.root;
    if (rel === '' || node === null) return node;
    for (const part of rel.split('/')) {
      node = node.dirs.get(part) ?? null;
      if (node === null) return null;
    }
    return node;
  }

  private ensureOutDir(): void {
    try {
      fs.mkdirSync(toBuf(this.outAbs), { recursive: true, mode: 0o755 });
    } catch (e) {
      this.fail('out_dir', e, 'cannot create the flat directory');
    }
  }

  // --------------------------------------------------------------- scanning

  /**
   * Makes one directory's links agree with its listing. Returns the child directories
   * when `full` (the caller walks them); otherwise new child directories are queued.
   */
  private scanDir(node: DirNode, via: Via, full: boolean): DirNode[] {
    if (node.removed) return [];
    const fd = this.openDir(node, via);
    if (fd === null) return [];
    try {
      return this.scanOpenDir(node, fd, via, full);
    } finally {
      fs.closeSync(fd);
    }
  }

  /**
   * Opens a tracked directory without following a symlink as its last component and
   * checks that the handle is the directory recorded (same inode and device): a path
   * whose ancestor was swapped for a symlink leads to another directory and fails. On
   * failure the directory's parent settles what it is now (gone, replaced, a symlink).
   */
  private openDir(node: DirNode, via: Via): number | null {
    let fd: number;
    try {
      fd = fs.openSync(p(node.abs), DIR_FLAGS);
    } catch (e) {
      const code = errCode(e);
      // gone, not a directory, or a symlink as last component (ELOOP): the parent's listing says which
      if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'ELOOP') this.settleInParent(node, via);
      else this.fail('scan', e, 'cannot open a directory', node.abs);
      return null;
    }
    let st: fs.Stats;
    try {
      st = fs.fstatSync(fd);
    } catch (e) {
      fs.closeSync(fd);
      this.fail('stat', e, 'fstat failed', node.abs);
      return null;
    }
    if (st.ino === node.ino && st.dev === node.dev) return fd;
    fs.closeSync(fd);
    const now = this.lstat(node.abs);
    if (now && now.isDirectory() && now.ino === node.ino && now.dev === node.dev) {
      // the path names the directory again, but the open led elsewhere: a component was swapped meanwhile
      this.metrics.refused.inc({ kind: 'outside_root' });
      this.removeDir(node, 'dir_gone');
    } else this.settleInParent(node, via);
    return null;
  }

  private settleInParent(node: DirNode, via: Via): void {
    if (node.parent) this.reconcileEntry(node.parent, node.name, via);
    else this.requestFull('root_changed');
  }

  /** The path of a directory's entry through its open handle (no path walk that a swap could redirect). */
  private entryAt(dir: DirNode, fd: number, name: string): string {
    return FD_DIR === null ? `${dir.abs}/${name}` : `${FD_DIR}/${fd}/${name}`;
  }

  private scanOpenDir(node: DirNode, fd: number, via: Via, full: boolean): DirNode[] {
    const seen = new Set<string>();
    const children: DirNode[] = [];
    const err = this.listDir(FD_DIR === null ? node.abs : `${FD_DIR}/${fd}`, (name, de) => {
      seen.add(name);
      if (node === this.root && name === this.skipName) return;
      const kind = entryKind(de);
      if (kind === 'file') {
        const sub = node.dirs.get(name);
        if (sub) this.removeDir(sub, 'dir_gone');
        this.ensureFile(node, name, via, null);
      } else if (kind === 'directory') {
        const child = this.reconcileEntry(node, name, via, !full, fd);
        if (child && full) children.push(child);
      } else {
        this.refuse(kind, node, name);
      }
    });
    if (err) {
      const code = err.code;
      if (code === 'ENOENT' || code === 'ENOTDIR') {
        if (node.parent) this.reconcileEntry(node.parent, node.name, via);
      } else this.fail('scan', err, 'cannot list a directory', node.abs);
      return [];
    }
    for (const name of [...node.files.keys()]) if (!seen.has(name)) this.reconcileEntry(node, name, via, true, fd);
    for (const name of [...node.dirs.keys()]) if (!seen.has(name)) this.reconcileEntry(node, name, via, true, fd);
    return children;
  }

  /**
   * Looks at one entry again and makes the flat directory agree. Returns the entry's
   * directory node when it is a (tracked) directory.
   */
  private reconcileEntry(dir: DirNode, name: string, via: Via, queueNewDirs = true, dirFd?: number): DirNode | null {
    if (dir.removed) return null;
    if (dir === this.root && name === this.skipName) return null;
    if (dirFd !== undefined) return this.reconcileAt(dir, dirFd, name, via, queueNewDirs);
    // An event or a sweep: open the directory (checked) and look at the entry through it.
    const fd = this.openDir(dir, via);
    if (fd === null) return null;
    try {
      return this.reconcileAt(dir, fd, name, via, queueNewDirs);
    } finally {
      fs.closeSync(fd);
    }
  }

  private reconcileAt(dir: DirNode, fd: number, name: string, via: Via, queueNewDirs: boolean): DirNode | null {
    const st = this.lstat(this.entryAt(dir, fd, name));
    if (!st) {
      this.removeFile(dir, name, 'file_gone');
      const sub = dir.dirs.get(name);
      if (sub) this.removeDir(sub, 'dir_gone');
      return null;
    }
    const kind = entryKind(st);
    if (kind === 'file') {
      const sub = dir.dirs.get(name);
      if (sub) this.removeDir(sub, 'dir_gone');
      this.ensureFile(dir, name, via, st);
      return null;
    }
    if (kind === 'directory') {
      this.removeFile(dir, name, 'not_regular');
      const existing = dir.dirs.get(name);
      if (existing && existing.ino === st.ino && existing.dev === st.dev) return existing;
      if (existing) this.removeDir(existing, 'dir_gone');
      if (dir.depth + 1 > this.opts.maxDepth) {
        this.tooDeep(dir, name);
        return null;
      }
      return this.addDir(dir, name, st, queueNewDirs);
    }
    this.refuse(kind, dir, name);
    return null;
  }

  private refuse(kind: EntryKind, dir: DirNode, name: string): void {
    this.metrics.refused.inc({ kind: kind === 'file' || kind === 'directory' ? 'unknown' : kind });
    this.removeFile(dir, name, 'not_regular');
    const sub = dir.dirs.get(name);
    if (sub) this.removeDir(sub, 'dir_gone');
  }

  private tooDeep(dir: DirNode, name: string): void {
    this.metrics.refused.inc({ kind: 'too_deep' });
    if (this.depthLogged) return;
    this.depthLogged = true;
    this.log.warn(
      { path: display(relOf(dir, name)), maxDepth: this.opts.maxDepth },
      `a directory deeper than ${this.opts.maxDepth} levels under the log root: not followed, its files get no links (counted in refused_entries_total{kind="too_deep"}; logged once)`,
    );
  }

  /** `st` came from an lstat through the parent's checked handle: the new node is the directory listed there. */
  private addDir(parent: DirNode, name: string, st: fs.Stats, queueScan: boolean): DirNode | null {
    if (st.ino === this.outIno && st.dev === this.outDev) return null;
    const node = new DirNode(parent, name, st.ino, st.dev, this.rootAbs);
    parent.dirs.set(name, node);
    this.dirCount++;
    this.watch(node);
    if (queueScan) this.enqueueScan(node, 'new_directory');
    return node;
  }

  private lstat(abs: string): fs.Stats | undefined {
    try {
      return fs.lstatSync(p(abs), { throwIfNoEntry: false });
    } catch (e) {
      const code = errCode(e);
      if (code !== 'ENOTDIR' && code !== 'ENOENT') this.fail('stat', e, 'lstat failed', abs);
      return undefined;
    }
  }

  private enqueueScan(node: DirNode, reason: RescanReason | null): void {
    this.queue.push({ node, reason });
    if (!this.pumping) this.pumping = this.pump();
  }

  private async pump(): Promise<void> {
    try {
      await yieldTurn();
      let slice = nowMs();
      while (this.queueHead < this.queue.length && this.active()) {
        const { node, reason } = this.queue[this.queueHead++]!;
        if (this.queueHead > 1024 && this.queueHead * 2 > this.queue.length) {
          this.queue = this.queue.slice(this.queueHead);
          this.queueHead = 0;
        }
        if (node.removed) continue;
        if (reason) this.metrics.rescans.inc({ reason });
        this.scanDir(node, 'scan', false);
        if (nowMs() - slice > this.opts.sliceMs) {
          await yieldTurn();
          slice = nowMs();
        }
      }
    } finally {
      // in the same turn as the loop's last emptiness check, so no queued scan is stranded
      this.queue = [];
      this.queueHead = 0;
      this.pumping = null;
    }
  }

  // ------------------------------------------------------------------ links

  private ensureFile(dir: DirNode, name: string, via: Via, st: fs.Stats | null): void {
    if (dir.files.has(name)) return;
    if (dir.linkPrefix === undefined) dir.linkPrefix = plainDirPrefix(dir.rel);
    let linkName = dir.linkPrefix === null ? null : plainChildName(dir.linkPrefix, name, this.opts.maxNameBytes);
    if (linkName === null) {
      try {
        linkName = linkNameFor(relOf(dir, name), { maxNameBytes: this.opts.maxNameBytes });
      } catch (e) {
        this.fail('link', e, 'cannot name a link', relOf(dir, name));
        return;
      }
    }
    const owner = this.links.get(linkName);
    if (owner !== undefined) {
      // another file holds this name (only a 128-bit hash collision could do that)
      this.metrics.errors.inc({ kind: 'name_collision' });
      this.warnLimited(
        'name_collision',
        { name: display(linkName), path: display(relOf(dir, name)), ownerDir: display(owner.rel) },
        'two files map to one link name; the second is not linked',
      );
      return;
    }
    const created = this.createLink(linkName, dir, name);
    if (created === null) return;
    dir.files.set(name, linkName);
    this.links.set(linkName, dir);
    if (!created) return;
    this.metrics.linksCreated.inc();
    if (via !== 'start') {
      const s = st ?? this.lstat(`${dir.abs}/${name}`);
      if (s) {
        const born = s.birthtimeMs > 0 ? s.birthtimeMs : s.ctimeMs;
        this.metrics.linkLatency.observe({ source: via === 'event' ? 'event' : 'scan' }, Math.max(0, nowMs() - born) / 1000);
      }
    }
    if (this.debugOn) this.log.debug({ link: display(linkName), path: display(relOf(dir, name)) }, 'linked');
    if (this.listenerCount('link') > 0) this.emit('link', { name: linkName, rel: relOf(dir, name) } satisfies LinkEvent);
  }

  /**
   * What the symlinks of a directory's files point at: relative (`../<rel>`) when the flat
   * directory is a direct child of the root — short enough to live in the inode (ext4
   * "fast" symlinks take < 60 bytes) and still right when a shipper container mounts the
   * log partition elsewhere — absolute otherwise.
   */
  private targetPrefix(dir: DirNode): string {
    if (dir.targetPrefix === undefined) {
      const relative = this.skipName !== null;
      dir.targetPrefix = dir.rel === '' ? (relative ? '../' : `${this.rootAbs}/`) : relative ? `../${dir.rel}/` : `${dir.abs}/`;
    }
    return dir.targetPrefix;
  }

  /** Creates the symlink; true when made, false when an identical one was there, null on failure. */
  private createLink(linkName: string, dir: DirNode, name: string): boolean | null {
    const target = this.targetPrefix(dir) + name;
    const at = p(`${this.outAbs}/${linkName}`);
    if (this.outListing?.has(linkName)) {
      try {
        if (fs.readlinkSync(at, { encoding: 'latin1' }) === target) return false;
      } catch {
        /* not a symlink, or gone: decided below */
      }
    }
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        fs.symlinkSync(p(target), at);
        return true;
      } catch (e) {
        const code = errCode(e);
        if (code === 'EEXIST') {
          let existing: string | null = null;
          try {
            existing = fs.readlinkSync(at, { encoding: 'latin1' });
          } catch {
            existing = null;
          }
          if (existing === target) return false;
          if (existing !== null && targetRel(existing, this.rootAbs, this.skipName !== null) === relOf(dir, name)) {
            // ours in the other form (absolute vs relative, from an earlier configuration): rewrite it
            try {
              fs.unlinkSync(at);
            } catch {
              /* retried below */
            }
            continue;
          }
          this.metrics.errors.inc({ kind: 'name_taken' });
          this.warnLimited('name_taken', { name: display(linkName), path: display(relOf(dir, name)) }, 'an entry the guard did not create holds this link name; leaving it alone');
          return null;
        }
        if (code === 'ENOENT' && attempt < 2) {
          this.ensureOutDir();
          continue;
        }
        this.fail('link', e, 'cannot create a link', linkName);
        return null;
      }
    }
    return null;
  }

  private removeFile(dir: DirNode, name: string, reason: RemoveReason): void {
    const linkName = dir.files.get(name);
    if (linkName === undefined) return;
    dir.files.delete(name);
    if (this.links.get(linkName) !== dir) return;
    this.links.delete(linkName);
    this.unlinkOurs(linkName, relOf(dir, name), reason);
  }

  /** Removes a flat-directory entry only if it is still our symlink to the file `rel`. */
  private unlinkOurs(linkName: string, rel: string, reason: RemoveReason): void {
    const at = p(`${this.outAbs}/${linkName}`);
    try {
      const target = fs.readlinkSync(at, { encoding: 'latin1' });
      if (targetRel(target, this.rootAbs, this.skipName !== null) !== rel) return;
      fs.unlinkSync(at);
    } catch (e) {
      const code = errCode(e);
      if (code !== 'ENOENT' && code !== 'EINVAL') this.fail('unlink', e, 'cannot remove a link', linkName);
      return;
    }
    this.metrics.linksRemoved.inc({ reason });
    if (this.debugOn) this.log.debug({ link: display(linkName), reason }, 'unlinked');
    if (this.listenerCount('unlink') > 0) this.emit('unlink', { name: linkName, rel, reason } satisfies LinkEvent);
  }

  private removeDir(node: DirNode, reason: RemoveReason): void {
    const stack = [node];
    while (stack.length > 0) {
      const n = stack.pop()!;
      if (n.removed) continue;
      n.removed = true;
      this.dirCount--;
      this.closeWatch(n);
      this.unwatched.delete(n);
      this.limited.delete(n);
      for (const name of [...n.files.keys()]) this.removeFile(n, name, reason);
      for (const sub of n.dirs.values()) stack.push(sub);
      n.dirs.clear();
    }
    if (node.parent && node.parent.dirs.get(node.name) === node) node.parent.dirs.delete(node.name);
  }

  private forEachNode(node: DirNode, fn: (n: DirNode) => void): void {
    const stack = [node];
    while (stack.length > 0) {
      const n = stack.pop()!;
      fn(n);
      for (const sub of n.dirs.values()) stack.push(sub);
    }
  }

  // ---------------------------------------------------------------- watches

  private watch(node: DirNode): void {
    if (this.opts.maxWatches !== null && this.watchCount >= this.opts.maxWatches) {
      this.markUnwatched(node, this.opts.maxWatches);
      return;
    }
    let w: fs.FSWatcher;
    try {
      // 'latin1' file names in events are byte strings, like every path here
      w = fs.watch(p(node.abs), { encoding: 'latin1', persistent: this.opts.keepAlive });
    } catch (e) {
      const code = errCode(e);
      if (code === 'ENOSPC') this.markUnwatched(node, null);
      else {
        // gone or replaced meanwhile (its parent's event settles it) or another error:
        // either way polling covers the directory until then
        if (code !== 'ENOENT' && code !== 'ENOTDIR') this.fail('watch', e, 'cannot watch a directory; scanning it instead', node.abs);
        this.markUnwatched(node, null, false);
      }
      return;
    }
    // inotify_add_watch follows symlinks: if the path was swapped since lstat, drop the watch.
    const st = this.lstat(node.abs);
    if (!st || !st.isDirectory() || st.ino !== node.ino || st.dev !== node.dev) {
      w.close();
      this.markUnwatched(node, null, false);
      return;
    }
    node.watcher = w;
    this.watchCount++;
    this.unwatched.delete(node);
    this.limited.delete(node);
    w.on('change', (type: string, filename: string | null) => this.onEvent(node, type, filename));
    w.on('error', (e) => {
      this.fail('watch', e, 'watch failed; scanning the directory instead', node.abs);
      this.closeWatch(node);
      if (!node.removed) this.markUnwatched(node, null, false);
    });
  }

  private closeWatch(node: DirNode): void {
    if (!node.watcher) return;
    node.watcher.close();
    node.watcher = null;
    this.watchCount--;
  }

  private markUnwatched(node: DirNode, budget: number | null, limit = true): void {
    if (node.removed) return;
    this.unwatched.add(node);
    if (!limit) return;
    this.limited.add(node);
    if (!this.limitLogged) {
      this.limitLogged = true;
      this.metrics.errors.inc({ kind: 'watch_limit' });
      this.log.error(
        { watches: this.watchCount, maxUserWatches: this.maxUserWatches, maxWatches: budget },
        watchLimitMessage({ watchesInUse: this.watchCount, maxUserWatches: this.maxUserWatches, budget, pollIntervalMs: this.opts.pollIntervalMs }),
      );
    }
  }

  /** Scans the directories that have no watch; tries to watch them again first. */
  private pollUnwatched(): void {
    if (!this.active()) return;
    if (this.unwatched.size > 0) {
      this.metrics.rescans.inc({ reason: 'poll' });
      for (const node of [...this.unwatched]) {
        if (node.removed) {
          this.unwatched.delete(node);
          this.limited.delete(node);
          continue;
        }
        if (this.opts.maxWatches === null || this.watchCount < this.opts.maxWatches) this.watch(node);
        this.enqueueScan(node, null);
      }
    }
    if (this.limitLogged && this.limited.size === 0) {
      this.limitLogged = false;
      this.log.info({ watches: this.watchCount }, 'every directory has an inotify watch again');
    }
  }

  private onEvent(node: DirNode, type: string, filename: string | null): void {
    if (this.burst++ === 0) setImmediate(() => this.endBurst());
    if (node.removed || !this.active() || type !== 'rename') return;
    if (filename === null || filename === undefined) {
      this.enqueueScan(node, 'new_directory');
      return;
    }
    const name = filename; // a byte string ('latin1' encoding)
    if (name === node.name) {
      // Maybe the directory's own IN_DELETE_SELF / IN_MOVE_SELF (libuv reports its basename).
      if (node.parent) this.reconcileEntry(node.parent, node.name, 'event');
      else if (!this.rootStillThere()) this.requestFull('root_changed');
      if (node.removed) return;
    }
    this.reconcileEntry(node, name, 'event');
  }

  private endBurst(): void {
    const n = this.burst;
    this.burst = 0;
    if (n >= this.overflowThreshold && this.active()) {
      this.log.warn({ events: n, threshold: this.overflowThreshold }, 'inotify event burst as long as the kernel queue: events were probably dropped (IN_Q_OVERFLOW); rescanning everything');
      this.requestFull('overflow');
    }
  }

  private rootStillThere(): boolean {
    const st = this.lstat(this.rootAbs);
    return !!st && !!this.root && st.isDirectory() && st.ino === this.root.ino && st.dev === this.root.dev;
  }

  // ----------------------------------------------------------------- errors

  private fail(kind: ErrorKind, e: unknown, msg: string, path?: string): void {
    this.metrics.errors.inc({ kind });
    this.warnLimited(kind, { err: (e as Error)?.message ?? String(e), path: path === undefined ? undefined : display(path) }, msg);
  }

  /** At most 10 warnings of one kind a minute; the metrics count them all. */
  private warnLimited(kind: string, obj: object, msg: string): void {
    const now = Date.now();
    let b = this.warnBudget.get(kind);
    if (!b || now - b.windowStart > 60_000) {
      b = { windowStart: now, count: 0 };
      this.warnBudget.set(kind, b);
    }
    if (++b.count <= 10) this.log.warn({ kind, ...obj }, msg);
  }
}

/** A file's path relative to the root (byte string). */
function relOf(dir: DirNode, name: string): string {
  return dir.rel === '' ? name : `${dir.rel}/${name}`;
}

/** A JS string path given by a user → byte string. */
function toBytes(s: string): string {
  return Buffer.from(s, 'utf8').toString('latin1');
}

/**
 * The real path `p` will have once created: the realpath of its deepest existing
 * ancestor plus the missing rest (byte string).
 */
function resolveFuturePath(p: string): string {
  let head = path.resolve(p);
  const rest: string[] = [];
  for (;;) {
    try {
      const real = fromBuf(fs.realpathSync.native(head, { encoding: 'buffer' }));
      const tail = rest.reverse().map(toBytes).join('/');
      return tail === '' ? real : real === '/' ? `/${tail}` : `${real}/${tail}`;
    } catch {
      const parent = path.dirname(head);
      if (parent === head) return toBytes(path.resolve(p));
      rest.push(path.basename(head));
      head = parent;
    }
  }
}

function basename(p: string): string {
  const i = p.lastIndexOf('/');
  return i < 0 ? p : p.slice(i + 1);
}

function yieldTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
