import type { Command } from 'commander';
import { KiverServer } from '../server/server.js';
import { defaultDataDir } from '../cli/config.js';
import { parseDuration, parseSecondsMs } from '../cli/flags.js';
import { machineOptionsFrom, machineServerOptions } from './machine-options.js';
import { onSignal } from './process.js';
import { InputError } from '../errors.js';
import { logOptions, loggerFrom } from './log-options.js';

/** `kiver server`: the control plane (API, scheduler, controllers). */
export function registerServer(program: Command): void {
  logOptions(machineServerOptions(program.command('server')
    .description('run the control plane (API, scheduler, controllers)')
    .option('--data-dir <dir>', 'where tokens (and the sqlite store) live', defaultDataDir())
    .option('--store <url>', 'sqlite:PATH (default: <data-dir>/kiver.db) or etcd://h1:2379,h2:2379[?ca=F&cert=F&key=F]')
    .option('--listen <host:port>', 'API address', '127.0.0.1:7700')
    .option('--node-grace <duration>', 'a node without heartbeats for this long is NotReady', '30s')
    .option('--allow-low-host-ports', 'let services publish host ports below 1024')
    .option('--secret-key-file <file>', 'key for service secrets; every server of a cluster needs the same one (default <data-dir>/service-secrets.key)')
    .option('--leader-ttl <duration>', 'leader lease TTL: a dead leader is replaced after at most this long (etcd\'s minimum is 2s)', '2s')
    .option('--leader-renew <seconds>', 'how often the leader renews its lease (default TTL/8)')))
    .action(async (o) => {
      const log = loggerFrom(o, 'kiver-server');
      const leaderTtl = parseDuration(o.leaderTtl, 'leader-ttl');
      if (leaderTtl < 1) throw new InputError('--leader-ttl must be at least 1s', 'leader-ttl');
      const leaderRenewMs = o.leaderRenew === undefined ? undefined : parseSecondsMs(o.leaderRenew, 'leader-renew', 0.05);
      if (leaderRenewMs !== undefined && leaderRenewMs > (leaderTtl * 1000) / 3) throw new InputError('--leader-renew must be at most a third of --leader-ttl', 'leader-renew');
      const server = await KiverServer.start({
        log, dataDir: o.dataDir, listen: o.listen, store: o.store, nodeLeaseTtl: parseDuration(o.nodeGrace, 'node-grace'), allowLowHostPorts: o.allowLowHostPorts === true,
        secretKeyFile: o.secretKeyFile, leaderTtl, leaderRenewMs, machines: machineOptionsFrom(o),
      });
      onSignal(() => server.close());
      process.stdout.write(`Kiver server at ${server.url}\n  admin token: ${server.tokens.adminTokenFile}\n  join token:  ${server.tokens.joinTokenFile}\n`);
    });
}
