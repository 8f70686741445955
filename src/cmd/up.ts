import type { Command } from 'commander';
import { KiverServer } from '../server/server.js';
import { Agent } from '../agent/agent.js';
import { DockerRuntime, dockerFromEnv } from '../agent/runtime/docker.js';
import { defaultDataDir, writeClientFile } from '../cli/config.js';
import { parseDuration, parseLabels } from '../cli/flags.js';
import { machineOptionsFrom, machineServerOptions } from './machine-options.js';
import { ensureDockerForUp } from '../bootstrap/docker-for-up.js';
import { terminalConfirm } from './node-init.js';
import { agentOptions, checkNodeName, ensureRoot, onSignal, watchdogOptions } from './process.js';
import { logOptions, loggerFrom } from './log-options.js';

/** `kiver up`: server + agent in one process on this machine. */
export function registerUp(program: Command): void {
  logOptions(agentOptions(machineServerOptions(
    program.command('up')
      .description('run Kiver on this machine: server + agent in one process, embedded store')
      .option('--data-dir <dir>', 'where the store and tokens live', defaultDataDir())
      .option('--listen <host:port>', 'API address', '127.0.0.1:7700')
      .option('--node-grace <duration>', 'a node without heartbeats for this long is NotReady', '30s')
      .option('--yes', 'when Docker is missing, install and start it without asking (root; Debian docker.io)'),
  ))).action(async (o) => {
    const log = loggerFrom(o, 'kiver');
    const node = checkNodeName(o.node);
    const labels = parseLabels(o.label, 'label');
    // Check Docker before anything else: without it there is nothing to run. A fresh
    // Debian has none: offer (or with --yes run) the compute role's Docker steps.
    try {
      await new DockerRuntime(dockerFromEnv(), node).ping();
    } catch (err) {
      if (process.env.DOCKER_HOST) throw err; // pointed at another daemon: not ours to install
      await ensureDockerForUp({ yes: !!o.yes, confirm: terminalConfirm(), why: (err as Error).message.replace(/^Docker daemon not reachable \((.*?)\)\..*$/s, '$1') }, (l) => process.stderr.write(`${l}\n`));
      await new DockerRuntime(dockerFromEnv(), node).ping();
    }
    await ensureRoot(o.dataRoot, '--data-root');
    await ensureRoot(o.logRoot, '--log-root');
    const server = await KiverServer.start({ dataDir: o.dataDir, listen: o.listen, log, nodeLeaseTtl: parseDuration(o.nodeGrace, 'node-grace'), machines: machineOptionsFrom(o) });
    const clientFile = writeClientFile({ servers: [server.url], tokenFile: server.tokens.adminTokenFile });
    const agent = new Agent({
      servers: [server.url], token: server.tokens.join, node, address: o.address ?? '127.0.0.1', labels,
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
}
