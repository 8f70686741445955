/**
 * `kiver monitoring up`: the Prometheus pair and the Alertmanager pair (clustered),
 * configured from deploy/monitoring/, plus Kiver's alert receiver in this process.
 * Registers the pair with Kiver so `kiver health` watches it. A child that dies is
 * reported (the pair runs on), not restarted: its absence is what health code 1 shows.
 */
import type { Command } from 'commander';
import { spawn, type ChildProcess } from 'node:child_process';
import { openSync, readFileSync, writeFileSync, mkdirSync, rmSync, closeSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { ApiClient } from '../client/api-client.js';
import { clientSettings, defaultDataDir } from '../cli/config.js';
import { parseListen, parseListenList } from '../cli/flags.js';
import { InputError, UnavailableError } from '../errors.js';
import { logOptions, loggerFrom } from './log-options.js';
import { AlertReceiver, checkNotifyConfig, type NotifyConfig } from '../monitoring/receiver.js';
import { renderAlertmanager, renderPrometheus, type PairAddresses } from '../monitoring/pair-config.js';
import { onSignal } from './process.js';

/** deploy/monitoring/ of this installation (dist/src/cmd → package root). */
const DEPLOY = fileURLToPath(new URL('../../../deploy/monitoring/', import.meta.url));
const INTERVAL = /^\d+(ms|s|m)$/;

function interval(v: string | undefined, field: string): string | undefined {
  if (v !== undefined && !INTERVAL.test(v)) throw new InputError(`--${field}: expected a Prometheus duration like 15s, got "${v}"`, field);
  return v;
}

interface Child {
  name: string;
  proc: ChildProcess;
}

function start(bin: string, args: string[], name: string, dir: string): Promise<Child> {
  const log = openSync(join(dir, `${name}.log`), 'a');
  const proc = spawn(bin, args, { stdio: ['ignore', log, log] });
  closeSync(log);
  return new Promise((ok, fail) => {
    proc.once('error', (err) => fail(new UnavailableError(`cannot run ${bin} (${(err as NodeJS.ErrnoException).code}); install it: apt-get install prometheus prometheus-alertmanager, or pass --prometheus-bin/--alertmanager-bin`)));
    proc.once('spawn', () => {
      writeFileSync(join(dir, `${name}.pid`), `${proc.pid}\n`);
      ok({ name, proc });
    });
  });
}

export function registerMonitoring(program: Command): void {
  const mon = program.command('monitoring').description('the monitoring pair: Prometheus x2, Alertmanager x2, alert receiver');
  logOptions(mon.command('up')
    .description('start both Prometheus servers, both Alertmanager peers and the alert receiver; register them with Kiver')
    .option('--dir <dir>', 'configs, data, logs and pid files', join(defaultDataDir(), 'monitoring'))
    .option('--kiver <url>', 'Kiver API URL for service discovery and alert records (default: KIVER_ADDR or the client file)')
    .option('--token-file <file>', 'Kiver token Prometheus and the receiver use (default: KIVER_TOKEN or the client file\'s token)')
    .option('--prometheus <h:p,h:p>', 'listen addresses of the two Prometheus servers', '127.0.0.1:9090,127.0.0.1:9091')
    .option('--alertmanager <h:p,h:p>', 'listen addresses of the two Alertmanager peers', '127.0.0.1:9093,127.0.0.1:9094')
    .option('--alertmanager-cluster <h:p,h:p>', 'the peers\' cluster (gossip) addresses', '127.0.0.1:9194,127.0.0.1:9195')
    .option('--receiver <host:port>', 'where the alert receiver listens for Alertmanager\'s webhook', '127.0.0.1:7799')
    .option('--notify <file>', 'notification channels (YAML: email.smtp/from/to, sms.url/body/to, retry); see the README')
    .option('--scrape-interval <d>', 'override the scrape interval (e.g. 15s)')
    .option('--evaluation-interval <d>', 'override the rule evaluation interval')
    .option('--group-wait <d>', "override Alertmanager's group_wait")
    .option('--prometheus-bin <path>', 'Prometheus binary', 'prometheus')
    .option('--alertmanager-bin <path>', 'Alertmanager binary (Debian: prometheus-alertmanager)', 'prometheus-alertmanager'))
    .action(async (o) => {
      const log = loggerFrom(o, 'kiver-monitoring');
      const prom = parseListenList(o.prometheus, 'prometheus', 2);
      const am = parseListenList(o.alertmanager, 'alertmanager', 2);
      const cluster = parseListenList(o.alertmanagerCluster, 'alertmanager-cluster', 2);
      const rcv = parseListen(o.receiver, 'receiver');
      let notify: NotifyConfig = {};
      if (o.notify) {
        try {
          notify = checkNotifyConfig(parse(readFileSync(o.notify, 'utf8')));
        } catch (err) {
          if (err instanceof InputError) throw err;
          throw new InputError(`--notify: cannot read ${o.notify}: ${(err as Error).message}`, 'notify');
        }
      }
      const dir = resolve(o.dir);
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      const settings = o.kiver && o.tokenFile ? { servers: [o.kiver as string], token: readFileSync(o.tokenFile, 'utf8').trim() } : clientSettings();
      const kiver = (o.kiver as string | undefined) ?? settings.servers[0];
      const token = o.tokenFile ? readFileSync(o.tokenFile, 'utf8').trim() : settings.token;
      const tokenFile = join(dir, 'kiver.token');
      writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });
      const url = (a: { host: string; port: number }) => `http://${a.host.includes(':') ? `[${a.host}]` : a.host}:${a.port}`;
      const addrs: PairAddresses = {
        kiver, tokenFile, prometheus: prom.map(url), alertmanager: am.map(url), receiver: url(rcv),
        scrapeInterval: interval(o.scrapeInterval, 'scrape-interval'), evaluationInterval: interval(o.evaluationInterval, 'evaluation-interval'),
        groupWait: interval(o.groupWait, 'group-wait'),
      };

      const api = new ApiClient({ servers: [kiver], token, timeoutMs: 10_000 });
      const receiver = new AlertReceiver({ config: notify, api, log: log.child({ component: 'receiver' }) });
      await receiver.listen(rcv.host, rcv.port);
      if (!notify.email && !notify.sms) log.warn('no --notify file: alerts are received but neither e-mailed nor texted');

      writeFileSync(join(dir, 'kiver-rules.yml'), readFileSync(join(DEPLOY, 'kiver-rules.yml')));
      const amConfig = join(dir, 'alertmanager.yml');
      writeFileSync(amConfig, renderAlertmanager(readFileSync(join(DEPLOY, 'alertmanager.yml'), 'utf8'), addrs));
      const children: Child[] = [];
      const template = readFileSync(join(DEPLOY, 'prometheus.yml'), 'utf8');
      for (const [i, replica] of ['prom-a', 'prom-b'].entries()) {
        const cfg = join(dir, `prometheus-${replica}.yml`);
        writeFileSync(cfg, renderPrometheus(template, addrs, replica));
        mkdirSync(join(dir, replica), { recursive: true });
        children.push(await start(o.prometheusBin, [
          `--config.file=${cfg}`, `--storage.tsdb.path=${join(dir, replica)}`, `--web.listen-address=${prom[i].host}:${prom[i].port}`,
          '--storage.tsdb.retention.time=15d',
        ], replica, dir));
      }
      for (const [i, name] of ['am-a', 'am-b'].entries()) {
        mkdirSync(join(dir, name), { recursive: true });
        const me = cluster[i];
        const peer = cluster[1 - i];
        children.push(await start(o.alertmanagerBin, [
          `--config.file=${amConfig}`, `--storage.path=${join(dir, name)}`, `--web.listen-address=${am[i].host}:${am[i].port}`,
          `--cluster.listen-address=${me.host}:${me.port}`, `--cluster.advertise-address=${me.host}:${me.port}`, `--cluster.peer=${peer.host}:${peer.port}`,
        ], name, dir));
      }
      let stopping = false;
      for (const c of children) {
        c.proc.once('exit', (code, signal) => {
          if (!stopping) log.warn({ name: c.name, code, signal }, `${c.name} exited; the pair runs on without it (see ${join(dir, `${c.name}.log`)})`);
          rmSync(join(dir, `${c.name}.pid`), { force: true });
        });
      }
      await api.put('/v1/monitoring/config', { prometheus: addrs.prometheus, alertmanager: addrs.alertmanager })
        .catch((err) => log.warn({ err: (err as Error).message }, 'could not register the monitoring pair with Kiver'));

      onSignal(async () => {
        stopping = true;
        await Promise.all(children.map((c) => new Promise<void>((r) => {
          if (c.proc.exitCode !== null || c.proc.signalCode !== null) return r();
          c.proc.once('exit', () => r());
          c.proc.kill('SIGTERM');
        })));
        await receiver.stop();
      });
      process.stdout.write([
        'Kiver monitoring is up.',
        `  Prometheus:    ${addrs.prometheus.join(', ')}`,
        `  Alertmanager:  ${addrs.alertmanager.join(', ')} (cluster ${cluster.map((c) => `${c.host}:${c.port}`).join(', ')})`,
        `  receiver:      ${addrs.receiver}/alerts (${[notify.email ? 'e-mail' : '', notify.sms ? 'SMS' : ''].filter(Boolean).join(' + ') || 'no channels'})`,
        `  files:         ${dir}`,
        '',
      ].join('\n'));
    });
}
