/** `kiver backup …`: targets, backups, policies, restores (thin client of /v1/backup*, /v1/restores). */
import type { Command } from 'commander';
import { clientFromEnv } from './config.js';
import { age, format, formatBytes, print, printErr, secs, table } from './output.js';
import { parseBackupPolicy, parseNumber, parseSecretArg } from './flags.js';
import { InputError, UnavailableError } from '../errors.js';
import type { Backup, BackupPolicy, Restore, TargetCheck, TargetView } from '../model/backup.js';

const enc = encodeURIComponent;

function backupTable(bs: Backup[]): string {
  return table(bs.map((b) => [
    b.id, b.state + (b.state === 'completed' && b.verified ? ' (verified)' : ''), b.trigger, b.target, formatBytes(b.bytes),
    b.durationMs !== undefined ? secs(b.durationMs) : '-', age(b.createdAt), b.error ?? '',
  ]), ['ID', 'STATE', 'TRIGGER', 'TARGET', 'SIZE', 'DURATION', 'AGE', 'ERROR']);
}

function backupDetail(b: Backup): string {
  return [
    `ID:        ${b.id}`, `Service:   ${b.service} (replica ${b.ordinal ?? '-'} on node ${b.node ?? '-'})`, `Target:    ${b.target}`,
    `State:     ${b.state}${b.verified ? ', verified (read back, SHA-256 equal)' : ''}`, `Trigger:   ${b.trigger}${b.slot ? ` (slot ${b.slot})` : ''}`,
    `Created:   ${b.createdAt}`, `Started:   ${b.startedAt ?? '-'}`, `Finished:  ${b.finishedAt ?? '-'}`,
    `Size:      ${b.bytes} bytes (${formatBytes(b.bytes)})${b.state === 'running' ? ' so far' : ''}`,
    `Duration:  ${b.durationMs !== undefined ? secs(b.durationMs) : '-'}`, `SHA-256:   ${b.sha256 ?? '-'}`,
    `Position:  ${b.position ? JSON.stringify(b.position) : '-'}`, `Object:    ${b.objectKey} (manifest ${b.manifestKey})`,
    ...(b.error ? [`Error:     ${b.error}`] : []),
  ].join('\n');
}

/** Polls a job until it ends, printing progress on stderr; fails (exit non-zero) when the job failed. */
async function waitJob<T extends { state: string; bytes: number; error?: string }>(path: string, what: string, timeoutS: number, quiet: boolean): Promise<T> {
  const client = clientFromEnv();
  const deadline = Date.now() + timeoutS * 1000;
  let last = '';
  for (;;) {
    const j = await client.get<T>(path);
    const line = `${what}: ${j.state}, ${formatBytes(j.bytes)}`;
    if (!quiet && line !== last) printErr(line);
    last = line;
    if (j.state === 'completed') return j;
    if (j.state === 'failed') throw new UnavailableError(`${what} failed: ${j.error ?? 'unknown cause'}`);
    if (Date.now() > deadline) throw new UnavailableError(`${what} still ${j.state} after ${timeoutS}s`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

export function registerBackup(program: Command): void {
  const backup = program.command('backup').description('backups to S3 (Ceph RGW) or RBD: targets, backups, schedules, restores');
  const target = backup.command('target').description('where backups go');

  target.command('add <name>')
    .description('add a target (keys are sealed at rest and never shown); give --s3 … or --rbd …')
    .option('--s3 <url>', 'S3 endpoint, e.g. http://rgw:7480')
    .option('--bucket <bucket>', 'S3 bucket (created by check when missing)')
    .option('--region <region>', 'S3 region (default us-east-1)')
    .option('--access-key <key>', 'S3 access key (or @FILE)')
    .option('--secret-key <key>', 'S3 secret key (or @FILE, keeps it out of the process list)')
    .option('--rbd <pool>', 'RBD pool (images written with rbd import -)')
    .option('--ceph-conf <path>', 'with --rbd: ceph.conf on the nodes')
    .option('--ceph-user <name>', 'with --rbd: cephx user')
    .option('--ceph-key <key>', 'with --rbd: cephx key (or @FILE)')
    .action(async (name: string, o, cmd: Command) => {
      const body: Record<string, unknown> = { name };
      if (o.s3 !== undefined) {
        body.s3 = {
          url: o.s3, bucket: o.bucket, ...(o.region ? { region: o.region } : {}),
          accessKey: o.accessKey === undefined ? undefined : parseSecretArg(o.accessKey, 'access-key'),
          secretKey: o.secretKey === undefined ? undefined : parseSecretArg(o.secretKey, 'secret-key'),
        };
      }
      if (o.rbd !== undefined) {
        body.rbd = { pool: o.rbd, ...(o.cephConf ? { conf: o.cephConf } : {}), ...(o.cephUser ? { user: o.cephUser } : {}), ...(o.cephKey ? { key: parseSecretArg(o.cephKey, 'ceph-key') } : {}) };
      }
      if (!body.s3 && !body.rbd) throw new InputError('give --s3 URL --bucket B --access-key K --secret-key S, or --rbd POOL', 's3');
      const t = await clientFromEnv().post<TargetView>('/v1/backup-targets', JSON.parse(JSON.stringify(body)));
      print(cmd, t, () => `backup target ${t.name} added (${t.kind}); check it with: kiver backup target check ${t.name}`);
    });

  target.command('ls').alias('list').description('list targets').action(async (_o, cmd: Command) => {
    const ts = await clientFromEnv().get<TargetView[]>('/v1/backup-targets');
    print(cmd, ts, () => table(ts.map((t) => [t.name, t.kind, t.s3 ? `${t.s3.url}/${t.s3.bucket}` : `pool ${t.rbd!.pool}`, age(t.createdAt)]), ['NAME', 'KIND', 'WHERE', 'AGE']));
  });

  target.command('check <name>').description('write, read back and delete a probe object; says which step failed').action(async (name: string, _o, cmd: Command) => {
    const r = await clientFromEnv().post<TargetCheck>(`/v1/backup-targets/${enc(name)}/check`, {});
    print(cmd, r, () => r.steps.map((s) => `${s.ok ? 'ok  ' : 'FAIL'} ${s.step} (${s.ms} ms)${s.error ? `: ${s.error}` : ''}`).join('\n'));
    if (!r.ok) throw new UnavailableError(`backup target ${name} failed its check at: ${r.steps.at(-1)!.step}`);
  });

  target.command('rm <name>').alias('delete').description('remove a target (its backups stay where they are)').action(async (name: string, _o, cmd: Command) => {
    await clientFromEnv().delete(`/v1/backup-targets/${enc(name)}`);
    print(cmd, { name, removed: true }, () => `backup target ${name} removed`);
  });

  backup.command('create <service>')
    .description('back up a service now: a running replica streams to the target')
    .option('--target <name>', "target (default: the service's policy target)")
    .option('--wait', 'wait until the backup completed (exit non-zero if it failed)')
    .option('--timeout <seconds>', 'with --wait', '3600')
    .action(async (service: string, o, cmd: Command) => {
      let b = await clientFromEnv().post<Backup>('/v1/backups', { service, ...(o.target ? { target: o.target } : {}) });
      if (o.wait) b = await waitJob<Backup>(`/v1/backups/${enc(b.id)}`, `backup ${b.id}`, parseNumber(o.timeout, 'timeout'), format(cmd) === 'json');
      print(cmd, b, () => (o.wait ? backupDetail(b) : `backup ${b.id} started (replica ${b.ordinal} on ${b.node}); follow it with: kiver backup get ${b.id}`));
    });

  backup.command('ls [service]').alias('list').description("backups (of one service), newest first").action(async (service: string | undefined, _o, cmd: Command) => {
    const bs = await clientFromEnv().get<Backup[]>(`/v1/backups${service ? `?service=${enc(service)}` : ''}`);
    print(cmd, bs, () => backupTable(bs));
  });

  backup.command('get <id>').description('a backup: state, progress, size, duration, checksum, position').action(async (id: string, _o, cmd: Command) => {
    const b = await clientFromEnv().get<Backup>(`/v1/backups/${enc(id)}`);
    print(cmd, b, () => backupDetail(b));
  });

  backup.command('restore <id>')
    .description('restore a backup into a NEW service (never over a live one); the checksum is verified before the data is used')
    .requiredOption('--to <service>', 'name of the new service')
    .option('--wait', 'wait until the restore completed')
    .option('--timeout <seconds>', 'with --wait', '3600')
    .action(async (id: string, o, cmd: Command) => {
      let r = await clientFromEnv().post<Restore>('/v1/restores', { backup: id, to: o.to });
      if (o.wait) r = await waitJob<Restore>(`/v1/restores/${enc(o.to)}`, `restore into ${o.to}`, parseNumber(o.timeout, 'timeout'), format(cmd) === 'json');
      print(cmd, r, () => `restore of ${id} into ${o.to}: ${r.state}${r.state === 'completed' ? ` (${formatBytes(r.bytes)}, checksum verified; ${r.replicas} replicas starting)` : ''}`);
    });

  const policy = backup.command('policy').description("a service's backup schedule and retention");
  policy.command('set <service>')
    .description('set the schedule (cron, run by the leader once per slot) and retention')
    .requiredOption('--schedule <cron>', 'cron expression, e.g. "0 2 * * *"')
    .requiredOption('--target <name>', 'backup target')
    .option('--tz <zone>', 'IANA time zone of the schedule (default UTC)')
    .option('--keep <n>', 'completed backups kept at least (default 7)')
    .option('--keep-days <n>', 'completed backups younger than this many days are kept too')
    .action(async (service: string, o, cmd: Command) => {
      const body = parseBackupPolicy(o)!;
      const p = await clientFromEnv().put<BackupPolicy>(`/v1/backup-policies/${enc(service)}`, body);
      print(cmd, p, () => `backup policy of ${service}: "${p.schedule}" (${p.tz}) to ${p.target}, keep ${p.keep}${p.keepDays ? ` and ${p.keepDays} days` : ''}`);
    });
  policy.command('get <service>').description("a service's policy").action(async (service: string, _o, cmd: Command) => {
    const p = await clientFromEnv().get<BackupPolicy>(`/v1/backup-policies/${enc(service)}`);
    print(cmd, p, () => `schedule "${p.schedule}" (${p.tz}) to ${p.target}, keep ${p.keep}${p.keepDays ? ` and ${p.keepDays} days` : ''}, last slot ${p.lastSlot ?? '-'}`);
  });
  policy.command('rm <service>').description('stop scheduled backups (backups stay)').action(async (service: string, _o, cmd: Command) => {
    await clientFromEnv().delete(`/v1/backup-policies/${enc(service)}`);
    print(cmd, { service, removed: true }, () => `backup policy of ${service} removed`);
  });
}
