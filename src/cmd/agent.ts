import type { Command } from 'commander';
import { readFile } from 'node:fs/promises';
import { Agent } from '../agent/agent.js';
import { InputError } from '../errors.js';
import { parseLabels } from '../cli/flags.js';
import { agentOptions, checkNodeName, ensureRoot, onSignal, watchdogOptions } from './process.js';
import { logOptions, loggerFrom } from './log-options.js';

/** `kiver agent`: the node agent, joined to one or more servers. */
export function registerAgent(program: Command): void {
  logOptions(agentOptions(
    program.command('agent')
      .description('run the node agent: joins a server and runs its replicas in Docker')
      .requiredOption('--server <urls>', 'server URL(s), comma-separated')
      .option('--join-token-file <file>', 'file holding the join token (or set KIVER_JOIN_TOKEN)'),
  )).action(async (o) => {
    const log = loggerFrom(o, 'kiver-agent');
    const token = process.env.KIVER_JOIN_TOKEN ?? (o.joinTokenFile ? (await readFile(o.joinTokenFile, 'utf8')).trim() : undefined);
    if (!token) throw new InputError('no join token: pass --join-token-file FILE or set KIVER_JOIN_TOKEN', 'join-token');
    const labels = parseLabels(o.label, 'label');
    await ensureRoot(o.dataRoot, '--data-root');
    await ensureRoot(o.logRoot, '--log-root');
    const agent = new Agent({
      servers: String(o.server).split(','), token, log, node: checkNodeName(o.node), address: o.address ?? '127.0.0.1', labels,
      dataRoot: o.dataRoot, logRoot: o.logRoot, guardOut: o.guard === false ? false : o.guardOut,
      dockerWatchdog: watchdogOptions(o), allowNoLiveRestore: o.allowNoLiveRestore === true,
    });
    await agent.start();
    onSignal(() => agent.stop());
    process.stdout.write(`Kiver agent ${o.node} joined ${o.server}\n`);
  });
}
