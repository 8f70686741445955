import type { Command } from 'commander';
import { readFile } from 'node:fs/promises';
import { InputError } from '../errors.js';
import { parseBytes, parseInteger, parseLabels, parseNumber, parseSecondsMs, collect } from '../cli/flags.js';
import { SimFleet } from '../sim/fleet.js';
import { onSignal } from './process.js';

/** `kiver sim`: simulated nodes on the real agent protocol, for benchmarks and scale tests only. */
export function registerSim(program: Command): void {
  program.command('sim')
    .description('run N simulated nodes (no containers) against a server, for benchmarks and scale tests')
    .requiredOption('--nodes <n>', 'how many nodes to simulate')
    .requiredOption('--server <urls>', 'server URL(s), comma-separated')
    .option('--join-token <token>', 'the join token (or --join-token-file, or KIVER_JOIN_TOKEN)')
    .option('--join-token-file <file>', 'file holding the join token')
    .option('--prefix <name>', 'node names are <prefix>-<i>', 'sim')
    .option('--cpus <n>', 'CPUs each node offers', '16')
    .option('--memory <size>', 'memory each node offers, e.g. 64Gi', '64Gi')
    .option('--label <key=value>', 'a label on every node (repeatable)', collect, [])
    .option('--heartbeat <seconds>', 'heartbeat interval', '10')
    .option('--wait <seconds>', 'assignment long-poll wait (max 60)', '30')
    .option('--start-latency <seconds>', 'assigned → running, each replica ±50 %', '0')
    .option('--failure-rate <fraction>', 'fraction of replicas that exit instead of running', '0')
    .option('--register-parallel <n>', 'registrations in flight at once', '32')
    .option('--stats-every <seconds>', 'print a stats line this often (0: never)', '10')
    .action(async (o) => {
      const token = o.joinToken ?? process.env.KIVER_JOIN_TOKEN ?? (o.joinTokenFile ? (await readFile(o.joinTokenFile, 'utf8')).trim() : undefined);
      if (!token) throw new InputError('no join token: pass --join-token, --join-token-file or set KIVER_JOIN_TOKEN', 'join-token');
      const failureRate = parseNumber(o.failureRate, 'failure-rate');
      if (failureRate < 0 || failureRate > 1) throw new InputError('--failure-rate must be between 0 and 1', 'failure-rate');
      const fleet = new SimFleet({
        servers: String(o.server).split(','), joinToken: token,
        nodes: parseInteger(o.nodes, 'nodes', 1, 100_000), prefix: o.prefix,
        cpus: parseInteger(o.cpus, 'cpus', 1, 4096), memory: parseBytes(o.memory, 'memory'), labels: parseLabels(o.label, 'label'),
        heartbeatMs: parseSecondsMs(o.heartbeat, 'heartbeat', 0.1), waitSeconds: parseInteger(o.wait, 'wait', 1, 60),
        startLatencyMs: parseSecondsMs(o.startLatency, 'start-latency', 0), failureRate,
        registerParallel: parseInteger(o.registerParallel, 'register-parallel', 1, 1024),
      });
      const every = parseSecondsMs(o.statsEvery, 'stats-every', 0);
      const print = () => process.stdout.write(`${new Date().toISOString()} ${JSON.stringify(fleet.stats)}\n`);
      const timer = every > 0 ? setInterval(print, every).unref() : undefined;
      onSignal(async () => {
        clearInterval(timer);
        await fleet.stop();
        print();
      });
      await fleet.start((n) => process.stdout.write(`registered ${n}/${fleet.nodes.length}\n`));
      process.stdout.write(`kiver sim: ${fleet.nodes.length} nodes running against ${o.server}\n`);
      await new Promise(() => {}); // until a signal
    });
}
