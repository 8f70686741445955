/**
 * Renders deploy/monitoring/ for one monitoring pair: the same prometheus.yml for both
 * servers except `external_labels.replica`, and alertmanager.yml pointing the webhook at
 * Kiver's receiver. Pure: parsed YAML in, YAML text out.
 */
import { parse, stringify } from 'yaml';

export interface PairAddresses {
  /** Kiver API base URL(s); the first serves http_sd. */
  kiver: string;
  tokenFile: string;
  prometheus: string[];
  alertmanager: string[];
  receiver: string;
  scrapeInterval?: string;
  evaluationInterval?: string;
  groupWait?: string;
}

const hostPort = (url: string) => new URL(url).host;

type PromConfig = {
  global: { scrape_interval: string; evaluation_interval: string; external_labels: Record<string, string> };
  alerting: { alertmanagers: { static_configs: { targets: string[] }[] }[] };
  scrape_configs: { job_name: string; static_configs?: { targets: string[] }[]; http_sd_configs?: { url: string; refresh_interval?: string; authorization: { type: string; credentials_file: string } }[] }[];
};

export function renderPrometheus(template: string, a: PairAddresses, replica: string): string {
  const c = parse(template) as PromConfig;
  c.global.external_labels.replica = replica;
  if (a.scrapeInterval) c.global.scrape_interval = a.scrapeInterval;
  if (a.evaluationInterval) c.global.evaluation_interval = a.evaluationInterval;
  c.alerting.alertmanagers[0].static_configs = [{ targets: a.alertmanager.map(hostPort) }];
  for (const job of c.scrape_configs) {
    if (job.job_name === 'kiver') {
      job.http_sd_configs = [{
        url: `${a.kiver.replace(/\/$/, '')}/v1/monitoring/targets`,
        refresh_interval: a.scrapeInterval ?? job.http_sd_configs?.[0]?.refresh_interval ?? '30s',
        // `type` explicitly: Prometheus 2.42's http_sd sent the bare token without it.
        authorization: { type: 'Bearer', credentials_file: a.tokenFile },
      }];
    }
    if (job.job_name === 'prometheus') job.static_configs = [{ targets: a.prometheus.map(hostPort) }];
    if (job.job_name === 'alertmanager') job.static_configs = [{ targets: a.alertmanager.map(hostPort) }];
  }
  return stringify(c);
}

type AmConfig = {
  route: { group_wait?: string; group_interval?: string };
  receivers: { name: string; webhook_configs?: { url: string }[] }[];
};

export function renderAlertmanager(template: string, a: PairAddresses): string {
  const c = parse(template) as AmConfig;
  for (const r of c.receivers) for (const w of r.webhook_configs ?? []) w.url = `${a.receiver.replace(/\/$/, '')}/alerts`;
  if (a.groupWait) c.route.group_wait = a.groupWait;
  return stringify(c);
}
