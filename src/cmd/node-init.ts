/**
 * `kiver node init | leave | supervise`: turn this host into a node and back
 * (the engine is in src/bootstrap/).
 */
import type { Command } from 'commander';
import { createInterface } from 'node:readline/promises';
import { readFile } from 'node:fs/promises';
import { ConflictError, InputError } from '../errors.js';
import { parseBytes, parseDockerSize, parseDuration, parseInteger, parseListen, parseNumber } from '../cli/flags.js';
import { clientFromEnv } from '../cli/config.js';
import { followDrain } from '../cli/node.js';
import { nodeInit, ROLES } from '../bootstrap/init.js';
import { nodeLeave } from '../bootstrap/leave.js';
import { NodeHost } from '../bootstrap/node-host.js';
import { restartProgram, runSupervisor } from '../bootstrap/supervisor.js';
import { checkNodeName, defaultNodeName } from './process.js';

const out = (l: string) => process.stdout.write(`${l}\n`);

/** y/N on a terminal; undefined without one (the caller then needs --yes). */
export function terminalConfirm(): ((q: string) => Promise<boolean>) | undefined {
  if (!process.stdin.isTTY || !process.stdout.isTTY) return undefined;
  return async (q) => {
    const rl = createInterface({ input: process.stdin, output: process.stdout });
    try {
      return /^y(es)?$/i.test((await rl.question(q)).trim());
    } finally {
      rl.close();
    }
  };
}

export function registerNodeInit(node: Command): void {
  node.command('init')
    .description('turn this host into a Kiver node: preflight, a plan of every change, then apply (idempotent)')
    .requiredOption('--role <role>', `${ROLES.join(' or ')}`)
    .option('--server <urls>', 'compute: Kiver server URL(s), comma-separated')
    .option('--join-token <token>', 'the cluster join token (or KIVER_JOIN_TOKEN, or --join-token-file)')
    .option('--join-token-file <file>', 'file holding the join token')
    .option('--plan', 'show the preflight and the plan, change nothing')
    .option('--yes', 'apply without asking')
    .option('--node <name>', 'node name', defaultNodeName())
    .option('--address <addr>', 'address clients use to reach published ports')
    .option('--data-root <dir>', 'replica data', '/app/data')
    .option('--log-root <dir>', 'replica logs; should be a partition of its own', '/app/log')
    .option('--allow-shared-log-root', 'accept a log root on the same filesystem as /')
    .option('--docker-root <dir>', "Docker's storage root (daemon.json data-root)", '/var/lib/docker')
    .option('--docker-package <name>', 'the Debian package that provides dockerd', 'docker.io')
    .option('--docker-log-max-size <size>', "json-file log rotation size of containers' stdout", '50m')
    .option('--docker-log-max-file <n>', 'json-file log files kept per container', '3')
    .option('--ship-logs-to <host:port>', 'TCP syslog endpoint for the log shipper (no shipper without it)')
    .option('--shipper-cpu <cpus>', "the log shipper's CPU quota", '0.2')
    .option('--shipper-memory <size>', "the log shipper's memory limit", '128m')
    .option('--min-free-disk <size>', "free space needed under Docker's storage root", '2g')
    .option('--etcd-join <url>', 'control: https://HOST:2379 of a member of the cluster to join (default: start a new cluster)')
    .option('--join-from <dir>', 'control: directory with ca.crt, ca.key, admin.token, join.token, service-secrets.key copied from a control node')
    .option('--etcd-client-port <port>', "control: etcd's client port", '2379')
    .option('--etcd-peer-port <port>', "control: etcd's peer port", '2380')
    .option('--api-port <port>', "control: the Kiver API's port", '7700')
    .option('--snapshot-every <duration>', 'control: time between control-plane snapshots', '1h')
    .option('--snapshot-keep <n>', 'control: snapshots kept', '24')
    .option('--with-monitoring', 'control: also run the monitoring pair (kiver monitoring up)')
    .option('--root <dir>', 'work on a root directory instead of / (tests: files under DIR, processes on this machine)', '/')
    .action(async (o) => {
      const token = o.joinToken ?? process.env.KIVER_JOIN_TOKEN ?? (o.joinTokenFile ? (await readFile(o.joinTokenFile, 'utf8')).trim() : undefined);
      const shipperMemory = parseBytes(o.shipperMemory, 'shipper-memory');
      const shipperCpu = parseNumber(o.shipperCpu, 'shipper-cpu');
      if (shipperCpu <= 0) throw new InputError('--shipper-cpu must be > 0', 'shipper-cpu');
      const outcome = await nodeInit({
        role: o.role, root: o.root, plan: !!o.plan, yes: !!o.yes, confirm: terminalConfirm(),
        servers: o.server ? String(o.server).split(',').map((s: string) => s.trim()).filter(Boolean) : undefined,
        joinToken: token, node: checkNodeName(o.node), address: o.address,
        dataRoot: o.dataRoot, logRoot: o.logRoot, dockerRoot: o.dockerRoot, allowSharedLogRoot: !!o.allowSharedLogRoot,
        dockerPackage: o.dockerPackage, logMaxSize: parseDockerSize(o.dockerLogMaxSize, 'docker-log-max-size'), logMaxFile: parseInteger(o.dockerLogMaxFile, 'docker-log-max-file', 1, 100),
        shipTo: o.shipLogsTo ? parseListen(o.shipLogsTo, 'ship-logs-to') : undefined, shipperCpu, shipperMemory,
        minFreeBytes: parseBytes(o.minFreeDisk, 'min-free-disk'),
        etcdJoin: o.etcdJoin, joinFrom: o.joinFrom, withMonitoring: !!o.withMonitoring,
        etcdClientPort: parseInteger(o.etcdClientPort, 'etcd-client-port', 1, 65535), etcdPeerPort: parseInteger(o.etcdPeerPort, 'etcd-peer-port', 1, 65535),
        apiPort: parseInteger(o.apiPort, 'api-port', 1, 65535), snapshotEverySeconds: parseDuration(o.snapshotEvery, 'snapshot-every'),
        snapshotKeep: parseInteger(o.snapshotKeep, 'snapshot-keep', 1, 100_000),
      }, out);
      if (outcome === 'declined') process.exitCode = 1;
    });

  node.command('leave')
    .description("leave the cluster: drain, stop and remove the agent and log shipper; data stays unless --purge")
    .option('--purge', 'also delete replica data and logs')
    .option('--no-drain', 'do not drain first (no admin credentials needed)')
    .option('--drain-timeout <duration>', 'give up draining after this', '30m')
    .option('--root <dir>', 'work on a root directory instead of / (tests)', '/')
    .action(async (o) => {
      const timeout = parseDuration(o.drainTimeout, 'drain-timeout') * 1000;
      await nodeLeave({
        root: o.root, purge: !!o.purge,
        remove: o.drain === false ? undefined : async (name) => {
          try {
            await clientFromEnv().delete(`/v1/nodes/${encodeURIComponent(name)}`);
            return `node ${name} removed from the cluster`;
          } catch (err) {
            // Replicas that own local data stay after a drain: the node stays too, cordoned.
            if (err instanceof ConflictError) return `node ${name} stays registered, cordoned: ${err.message}`;
            throw err;
          }
        },
        drain: o.drain === false ? undefined : async (name, print) => {
          const client = clientFromEnv();
          await client.post(`/v1/nodes/${encodeURIComponent(name)}/drain`, { deadlineSeconds: 0 });
          await followDrain(client, name, timeout, (l) => print(`  ${l}`));
        },
      }, out);
    });

  node.command('supervise')
    .description('run dockerd and the agent where systemd is absent (started by kiver node init)')
    .option('--root <dir>', 'the root node init worked on', '/')
    .option('--restart <program>', 'restart one supervised program (e.g. dockerd) and exit')
    .action(async (o) => {
      const host = new NodeHost(o.root);
      if (o.restart) {
        if (!/^[a-z0-9-]+$/.test(o.restart)) throw new InputError(`--restart: "${o.restart}" is not a program name`, 'restart');
        out(`restarted ${o.restart} (pid ${await restartProgram(host, o.restart)})`);
        return;
      }
      await runSupervisor(host);
      process.exit(0);
    });
}
