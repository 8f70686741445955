import type { Command } from 'commander';
import { readFile } from 'node:fs/promises';
import { Agent } from '../agent/agent.js';
import { InputError } from '../errors.js';
import { parseLabels, parseListen } from '../cli/flags.js';
import { agentOptions, checkNodeName, ensureRoot, nodeCredentialFile, onSignal, watchdogOptions } from './process.js';
import { logOptions, loggerFrom } from './log-options.js';
import { kiverHome } from '../cli/config.js';
import { readSecretFile } from '../secret-file.js';

/** `kiver agent`: the node agent, joined to one or more servers. */
export function registerAgent(program: Command): void {
  logOptions(agentOptions(
    program.command('agent')
      .description('run the node agent: joins a server and runs its replicas in Docker')
      .requiredOption('--server <urls>', 'server URL(s), comma-separated')
      .option('--join-token-file <file>', 'file holding the join token (or set KIVER_JOIN_TOKEN); needed only to join')
      .option('--credential-file <file>', 'where the node credential is kept, mode 0600 (default <KIVER_HOME>/node-<node>.credential)')
      .option('--shipper-config <file>', "the log shipper's settings (kiver node init writes them): the agent keeps that container running")
      .option('--metrics-listen <host:port>', "serve this agent's /metrics (container metrics under cAdvisor's names) here; Prometheus finds it through /v1/monitoring/targets"),
  )).action(async (o) => {
    const log = loggerFrom(o, 'kiver-agent');
    const node = checkNodeName(o.node);
    const credentialFile = o.credentialFile ?? nodeCredentialFile(kiverHome(), node);
    const token = process.env.KIVER_JOIN_TOKEN ?? (o.joinTokenFile ? (await readFile(o.joinTokenFile, 'utf8')).trim() : undefined);
    if (!token && !(await readSecretFile(credentialFile))) {
      throw new InputError(`no node credential at ${credentialFile} and no join token: pass --join-token-file FILE or set KIVER_JOIN_TOKEN to join`, 'join-token');
    }
    const labels = parseLabels(o.label, 'label');
    await ensureRoot(o.dataRoot, '--data-root');
    await ensureRoot(o.logRoot, '--log-root');
    const agent = new Agent({
      servers: String(o.server).split(','), joinToken: token, credentialFile, log, node, address: o.address ?? '127.0.0.1', labels,
      dataRoot: o.dataRoot, logRoot: o.logRoot, guardOut: o.guard === false ? false : o.guardOut,
      dockerWatchdog: watchdogOptions(o), allowNoLiveRestore: o.allowNoLiveRestore === true, shipperConfig: o.shipperConfig,
      ...(o.metricsListen ? { metricsListen: parseListen(o.metricsListen, 'metrics-listen') } : {}),
    });
    await agent.start();
    onSignal(() => agent.stop());
    process.stdout.write(`Kiver agent ${node} joined ${o.server}\n`);
  });
}
