/**
 * The agent's backup worker: asks the server for the backup and restore jobs on its
 * node, runs each one next to the replica's data (source → target, or target →
 * consumer) and reports progress (every second) and the end. The target's keys arrive
 * with the job, are held in memory for it only, and never logged.
 */
import type { ApiClient } from '../client/api-client.js';
import type { Logger } from '../log.js';
import type { BackupJob, JobReport } from '../model/backup.js';
import type { BackupHooks, ReplicaPlace } from './source.js';
import { appFilesHooks } from './app-files.js';
import { openTarget } from './target.js';
import { runBackup, runRestore } from './stream.js';
import { describeS3Error } from './s3-target.js';

export interface BackupWorkerOptions {
  client: () => ApiClient;
  node: string;
  dataRoot: string;
  log: Logger;
  /** Service types' hooks, first match wins; the app-files hooks catch the rest. */
  hooks?: BackupHooks[];
  pollMs?: number;
}

export class BackupWorker {
  private timer?: NodeJS.Timeout;
  private readonly active = new Map<string, { abort: AbortController; done: Promise<void> }>();
  private polling = false;

  constructor(private readonly opts: BackupWorkerOptions) {}

  start(): void {
    this.timer = setInterval(() => void this.poll(), this.opts.pollMs ?? 2000);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    for (const a of this.active.values()) a.abort.abort();
    await Promise.allSettled([...this.active.values()].map((a) => a.done));
  }

  private hooks(place: ReplicaPlace): BackupHooks {
    return [...(this.opts.hooks ?? []), appFilesHooks].find((h) => h.matches(place))!;
  }

  private async poll(): Promise<void> {
    if (this.polling) return;
    this.polling = true;
    try {
      const { jobs } = await this.opts.client().get<{ jobs: BackupJob[] }>(`/v1/agent/backup-jobs?node=${encodeURIComponent(this.opts.node)}`, { timeoutMs: 10_000 });
      for (const job of jobs) {
        const key = `${job.kind}/${job.id}`;
        if (this.active.has(key)) continue;
        const abort = new AbortController();
        const done = this.run(job, abort.signal).finally(() => this.active.delete(key));
        this.active.set(key, { abort, done });
      }
    } catch (err) {
      this.opts.log.debug({ err: (err as Error).message }, 'backup jobs poll failed');
    } finally {
      this.polling = false;
    }
  }

  private report(job: BackupJob, rep: JobReport): Promise<void> {
    return this.opts.client().put(`/v1/agent/backup-jobs/${job.kind}/${encodeURIComponent(job.id)}`, rep, { timeoutMs: 10_000 });
  }

  private async run(job: BackupJob, signal: AbortSignal): Promise<void> {
    const place: ReplicaPlace = { dataRoot: this.opts.dataRoot, service: job.service, ordinal: job.ordinal, image: job.image };
    const hooks = this.hooks(place);
    const target = openTarget(job.target);
    let bytes = 0;
    const progress = (n: number) => {
      bytes = n;
      void this.report(job, { state: 'running', bytes: n }).catch(() => {});
    };
    try {
      await this.report(job, { state: 'running', bytes: 0 });
    } catch {
      target.close();
      return; // ended meanwhile (the cache that listed it was behind), or the server is away: the next poll decides
    }
    try {
      if (job.kind === 'backup') {
        const source = hooks.source(place);
        const r = await runBackup(job, this.opts.node, source, target, progress, signal);
        await this.report(job, { state: 'completed', bytes: r.bytes, sha256: r.sha256, position: r.position, verified: r.verified, source: source.kind });
      } else {
        const r = await runRestore(job, hooks.consumer(place), target, progress);
        await this.report(job, { state: 'completed', bytes: r.bytes });
      }
    } catch (err) {
      const error = describeS3Error(err);
      this.opts.log.warn({ job: `${job.kind}/${job.id}`, error }, 'backup job failed');
      await this.report(job, { state: 'failed', bytes, error }).catch(() => {});
    } finally {
      target.close();
    }
  }
}
