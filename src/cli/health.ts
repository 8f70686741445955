/** `kiver health` and `kiver alerts ls`: the cluster health code, and what the alert receiver sent. */
import type { Command } from 'commander';
import { clientFromEnv } from './config.js';
import { parseHealthFormat, parseInteger, type HealthFormat } from './flags.js';
import { age, print, table } from './output.js';
import { HEALTH_CODES, problem, report, toInflux, toPrometheus, toText, type HealthReport } from '../monitoring/health.js';
import { UnavailableError } from '../errors.js';
import type { AlertRecord } from '../model/monitoring.js';

export function registerHealth(program: Command): void {
  program.command('health')
    .description(`print the cluster health code and its text; the exit code is the health code, not the generic table (${Object.values(HEALTH_CODES).map((c) => `${c.code} ${c.text}`).join(', ')})`)
    .action(async (_o, cmd: Command) => {
      // Every outcome is a health code, so telegraf and scripts read one table: a failure to
      // check (bad token, bad flag) is 8, never a generic exit code that means a cluster problem here.
      let fmt: HealthFormat = 'text';
      let r: HealthReport;
      try {
        fmt = parseHealthFormat((cmd.optsWithGlobals() as { output?: string }).output);
        r = await clientFromEnv().get<HealthReport>('/v1/health', { timeoutMs: 15_000 });
      } catch (err) {
        r = report([problem(err instanceof UnavailableError ? 'unreachable' : 'failed', (err as Error).message)]);
      }
      const out = { text: toText, json: (x: HealthReport) => `${JSON.stringify(x, null, 2)}\n`, influx: toInflux, prometheus: toPrometheus }[fmt](r);
      process.stdout.write(out);
      process.exitCode = r.code;
    });
}

export function registerAlerts(program: Command): void {
  const alerts = program.command('alerts').description('notifications sent by the alert receiver');
  alerts.command('ls').alias('list').description('list notifications, newest first')
    .option('--limit <n>', 'at most this many', '50')
    .action(async (o: { limit: string }, cmd: Command) => {
      const rs = await clientFromEnv().get<AlertRecord[]>(`/v1/alerts?limit=${parseInteger(o.limit, 'limit', 1, 1000)}`);
      print(cmd, rs, () => table(
        rs.map((r) => [age(r.createdAt), r.alertname, r.status, r.channel, r.recipients.join(','), r.state, r.attempts, r.error ?? '']),
        ['AGE', 'ALERT', 'STATUS', 'CHANNEL', 'TO', 'STATE', 'ATTEMPTS', 'ERROR'],
      ));
    });
}
