import type { Command } from 'commander';
import os from 'node:os';
import { mkdir, readFile } from 'node:fs/promises';
import { KiverServer } from '../server/server.js';
import { Agent } from '../agent/agent.js';
import { DockerRuntime, dockerFromEnv } from '../agent/runtime/docker.js';
import { createLogger } from '../log.js';
import { defaultDataDir, writeClientFile } from './config.js';
import { InputError } from '../errors.js';
import { NODE_NAME } from '../model/names.js';
import { parseDuration } from './node.js';
import { machineOptionsFrom, machineServerOptions } from './machine.js';
import { parseRestartCommand } from '../agent/watchdog.js';

function defaultNodeName(): string {
  const n = os.hostname().toLowerCase().replace(/[^a-z0-9.-]/g, '-').replace(/^[^a-z0-9]+|[^a-z0-9]+$/g, '').slice(0, 63);
  return n || 'node-1';
}

function checkNodeName(n: string): string {
  if (!new RegExp(NODE_NAME).test(n)) throw new InputError(`--node: "${n}" is not a valid node name (lowercase letters, digits, '.', '-')`, 'node');
  return n;
}

async function ensureRoot(dir: string, flag: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true });
  } catch (err) {
    throw new InputError(`cannot create ${dir} (${(err as NodeJS.ErrnoException).code}); run as root or pass ${flag} DIR`, flag.slice(2));
  }
}

/** Stops on SIGINT/SIGTERM; service containers keep running. */
function onSignal(stop: () => Promise<void>): void {
  let stopping = false;
  const handler = (sig: string) => {
    if (stopping) process.exit(1);
    stopping = true;
    process.stderr.write(`\n${sig}: stopping Kiver (service containers keep running)\n`);
    void stop().finally(() => process.exit(0));
  };
  process.on('SIGINT', () => handler('SIGINT'));
  process.on('SIGTERM', () => handler('SIGTERM'));
}

const agentOptions = (c: Command) =>
  c.option('--node <name>', 'node name', defaultNodeName())
    .option('--address <addr>', 'address clients use to reach published ports')
    .option('--data-root <dir>', 'host directory for replica data', '/app/data')
    .option('--log-root <dir>', 'host directory for replica logs', '/app/log')
    .option('--guard-out <dir>', 'flat directory the log guard links every log file into (default <log-root>/.shipper)')
    .option('--no-guard', 'do not run the log guard in the agent')
    .option('--docker-restart-cmd <argv>', 'what the Docker watchdog runs after repeated failed pings: a JSON array or space-separated words (no shell); "none" = never restart', 'systemctl restart docker')
    .option('--docker-watchdog-failures <n>', 'failed pings in a row before the watchdog restarts dockerd', '3')
    .option('--docker-watchdog-interval <duration>', 'time between the watchdog\'s pings', '5s')
    .option('--no-docker-watchdog', 'do not probe or restart the Docker daemon')
    .option('--allow-no-live-restore', 'run even when dockerd has live-restore off (every dockerd restart then stops all containers)');

/** The watchdog options of `kiver up` / `kiver agent`. */
function watchdogOptions(o: { dockerWatchdog: boolean; dockerRestartCmd: string; dockerWatchdogFailures: string; dockerWatchdogInterval: string }) {
  if (o.dockerWatchdog === false) return false as const;
  const failures = Number(o.dockerWatchdogFailures);
  if (!Number.isInteger(failures) || failures < 1) throw new InputError('--docker-watchdog-failures: expected a whole number >= 1', 'docker-watchdog-failures');
  let restartCommand: string[] | false;
  try {
    restartCommand = parseRestartCommand(o.dockerRestartCmd);
  } catch (err) {
    throw new InputError((err as Error).message, 'docker-restart-cmd');
  }
  return { restartCommand, failuresBeforeRestart: failures, intervalMs: parseDuration(o.dockerWatchdogInterval, 'docker-watchdog-interval') * 1000 };
}

export function registerUp(program: Command): void {
  agentOptions(machineServerOptions(
    program.command('up')
      .description('run Kiver on this machine: server + agent in one process, embedded store')
      .option('--data-dir <dir>', 'where the store and tokens live', defaultDataDir())
      .option('--listen <host:port>', 'API address', '127.0.0.1:7700')
      .option('--node-grace <duration>', 'a node without heartbeats for this long is NotReady', '30s'),
  )).action(async (o) => {
    const log = createLogger('kiver');
    const node = checkNodeName(o.node);
    // Check Docker before anything else: without it there is nothing to run.
    await new DockerRuntime(dockerFromEnv(), node).ping();
    await ensureRoot(o.dataRoot, '--data-root');
    await ensureRoot(o.logRoot, '--log-root');
    const server = await KiverServer.start({ dataDir: o.dataDir, listen: o.listen, log, nodeLeaseTtl: parseDuration(o.nodeGrace, 'node-grace'), machines: machineOptionsFrom(o) });
    const clientFile = writeClientFile({ servers: [server.url], tokenFile: server.tokens.adminTokenFile });
    const agent = new Agent({
      servers: [server.url], token: server.tokens.join, node, address: o.address ?? '127.0.0.1',
      dataRoot: o.dataRoot, logRoot: o.logRoot, log, guardOut: o.guard === false ? false : o.guardOut,
      dockerWatchdog: watchdogOptions(o), allowNoLiveRestore: true, // the quick start warns, it does not refuse
    });
    await agent.start();
    onSignal(async () => {
      await agent.stop();
      await server.close();
    });
    process.stdout.write(
      [
        `Kiver is up.`,
        `  API:          ${server.url}  (OpenAPI at ${server.url}/v1/openapi.json)`,
        `  admin token:  ${server.tokens.adminTokenFile}`,
        `  join token:   ${server.tokens.joinTokenFile}`,
        `  client file:  ${clientFile} (the kiver CLI on this machine uses it)`,
        `  node:         ${node}, data in ${o.dataRoot}, logs in ${o.logRoot}`,
        `Try: kiver image build busybox && kiver service create hello --image kiver/busybox --cmd 'while true; do date >> /data/hello; sleep 5; done'`,
        `Ctrl-C stops Kiver; service containers keep running and are adopted at the next start.`,
        '',
      ].join('\n'),
    );
  });

  machineServerOptions(program.command('server')
    .description('run the control plane (API, scheduler, controllers)')
    .option('--data-dir <dir>', 'where tokens (and the sqlite store) live', defaultDataDir())
    .option('--store <url>', 'sqlite:PATH (default: <data-dir>/kiver.db) or etcd://h1:2379,h2:2379[?ca=F&cert=F&key=F]')
    .option('--listen <host:port>', 'API address', '127.0.0.1:7700')
    .option('--node-grace <duration>', 'a node without heartbeats for this long is NotReady', '30s')
    .option('--secret-key-file <file>', 'key for service secrets; every server of a cluster needs the same one (default <data-dir>/service-secrets.key)')
    .option('--leader-ttl <duration>', 'leader lease TTL: a dead leader is replaced after at most this long', '10s'))
    .action(async (o) => {
      const server = await KiverServer.start({
        dataDir: o.dataDir, listen: o.listen, store: o.store, nodeLeaseTtl: parseDuration(o.nodeGrace, 'node-grace'),
        secretKeyFile: o.secretKeyFile, leaderTtl: parseDuration(o.leaderTtl, 'leader-ttl'), machines: machineOptionsFrom(o),
      });
      onSignal(() => server.close());
      process.stdout.write(`Kiver server at ${server.url}\n  admin token: ${server.tokens.adminTokenFile}\n  join token:  ${server.tokens.joinTokenFile}\n`);
    });

  agentOptions(
    program.command('agent')
      .description('run the node agent: joins a server and runs its replicas in Docker')
      .requiredOption('--server <urls>', 'server URL(s), comma-separated')
      .option('--join-token-file <file>', 'file holding the join token (or set KIVER_JOIN_TOKEN)'),
  ).action(async (o) => {
    const token = process.env.KIVER_JOIN_TOKEN ?? (o.joinTokenFile ? (await readFile(o.joinTokenFile, 'utf8')).trim() : undefined);
    if (!token) throw new InputError('no join token: pass --join-token-file FILE or set KIVER_JOIN_TOKEN', 'join-token');
    await ensureRoot(o.dataRoot, '--data-root');
    await ensureRoot(o.logRoot, '--log-root');
    const agent = new Agent({
      servers: String(o.server).split(','), token, node: checkNodeName(o.node), address: o.address ?? '127.0.0.1',
      dataRoot: o.dataRoot, logRoot: o.logRoot, guardOut: o.guard === false ? false : o.guardOut,
      dockerWatchdog: watchdogOptions(o), allowNoLiveRestore: o.allowNoLiveRestore === true,
    });
    await agent.start();
    onSignal(() => agent.stop());
    process.stdout.write(`Kiver agent ${o.node} joined ${o.server}\n`);
  });
}
