import type { Command } from 'commander';
import { KiverServer } from '../server/server.js';
import { defaultDataDir } from '../cli/config.js';
import { parseDuration } from '../cli/flags.js';
import { machineOptionsFrom, machineServerOptions } from './machine-options.js';
import { onSignal } from './process.js';
import { logOptions, loggerFrom } from './log-options.js';

/** `kiver server`: the control plane (API, scheduler, controllers). */
export function registerServer(program: Command): void {
  logOptions(machineServerOptions(program.command('server')
    .description('run the control plane (API, scheduler, controllers)')
    .option('--data-dir <dir>', 'where tokens (and the sqlite store) live', defaultDataDir())
    .option('--store <url>', 'sqlite:PATH (default: <data-dir>/kiver.db) or etcd://h1:2379,h2:2379[?ca=F&cert=F&key=F]')
    .option('--listen <host:port>', 'API address', '127.0.0.1:7700')
    .option('--node-grace <duration>', 'a node without heartbeats for this long is NotReady', '30s')
    .option('--secret-key-file <file>', 'key for service secrets; every server of a cluster needs the same one (default <data-dir>/service-secrets.key)')
    .option('--leader-ttl <duration>', 'leader lease TTL: a dead leader is replaced after at most this long', '10s')))
    .action(async (o) => {
      const log = loggerFrom(o, 'kiver-server');
      const server = await KiverServer.start({
        log, dataDir: o.dataDir, listen: o.listen, store: o.store, nodeLeaseTtl: parseDuration(o.nodeGrace, 'node-grace'),
        secretKeyFile: o.secretKeyFile, leaderTtl: parseDuration(o.leaderTtl, 'leader-ttl'), machines: machineOptionsFrom(o),
      });
      onSignal(() => server.close());
      process.stdout.write(`Kiver server at ${server.url}\n  admin token: ${server.tokens.adminTokenFile}\n  join token:  ${server.tokens.joinTokenFile}\n`);
    });
}
