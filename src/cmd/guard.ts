import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Command } from 'commander';
import { Registry, collectDefaultMetrics } from 'prom-client';
import { InputError } from '../errors.js';
import { LogGuard } from '../guard/index.js';
import { parseInteger, parseListen, parseSecondsMs } from '../cli/flags.js';
import { logOptions, loggerFrom } from './log-options.js';

interface GuardFlags {
  root: string;
  out?: string;
  rescanInterval: string;
  pollInterval: string;
  maxWatches?: string;
  maxNameBytes: string;
  metricsListen?: string;
  logLevel?: string;
  logFormat: string;
  once?: boolean;
}

function listen(server: Server, host: string, port: number): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve(server.address() as AddressInfo);
    });
  });
}

/** `kiver guard`: link every log file under a tree into one flat directory for the log shipper. */
export function registerGuard(program: Command): void {
  logOptions(program
    .command('guard')
    .description(
      'link every log file under --root, at any depth, into the flat --out directory a log shipper watches (Flume Taildir, Fluent Bit, Filebeat); see docs/guard.md',
    )
    .option('--root <dir>', 'log tree to watch, laid out as <service>/<ordinal>/…', '/app/log')
    .option('--out <dir>', 'flat directory for the links; outside the root or directly under it (default: <root>/.shipper)')
    .option('--rescan-interval <seconds>', 'full reconcile period (0 = only at start)', '300')
    .option('--poll-interval <seconds>', 'scan period for directories left without an inotify watch', '2')
    .option('--max-watches <n>', 'most inotify watches to use (default: up to the kernel limit fs.inotify.max_user_watches)')
    .option('--max-name-bytes <n>', 'longest link name; longer names get a hash', '255')
    .option('--metrics-listen <host:port>', 'serve Prometheus metrics at http://HOST:PORT/metrics')
    .option('--once', 'reconcile the flat directory once and exit'))
    .action(async (flags: GuardFlags) => {
      const out = flags.out ?? `${flags.root.replace(/\/+$/, '') || ''}/.shipper`;
      const logger = loggerFrom(flags, 'kiver-guard');
      const registry = new Registry();
      const guard = new LogGuard({
        root: flags.root,
        out,
        registry,
        logger,
        rescanIntervalMs: parseSecondsMs(flags.rescanInterval, 'rescan-interval', 0),
        pollIntervalMs: parseSecondsMs(flags.pollInterval, 'poll-interval', 0.01),
        maxWatches: flags.maxWatches === undefined ? undefined : parseInteger(flags.maxWatches, 'max-watches', 1),
        maxNameBytes: parseInteger(flags.maxNameBytes, 'max-name-bytes', 64),
        keepAlive: !flags.once,
      });
      const listenAt = flags.metricsListen === undefined ? null : parseListen(flags.metricsListen, 'metrics-listen');

      if (flags.once) {
        await guard.start();
        const s = guard.status();
        await guard.stop();
        process.stdout.write(`${JSON.stringify({ links: s.links, directories: s.directories, foreignEntries: s.lastReconcile?.foreignEntries ?? 0 })}\n`);
        return;
      }

      let server: Server | null = null;
      if (listenAt) {
        collectDefaultMetrics({ register: registry, prefix: 'kiver_guard_process_' });
        server = createServer((req, res) => {
          if (req.method === 'GET' && (req.url === '/metrics' || req.url?.startsWith('/metrics?'))) {
            registry
              .metrics()
              .then((body) => {
                res.writeHead(200, { 'content-type': registry.contentType });
                res.end(body);
              })
              .catch((e: Error) => {
                res.writeHead(500).end(e.message);
              });
          } else if (req.url === '/healthz') {
            const st = guard.status();
            res.writeHead(st.state === 'running' ? 200 : 503, { 'content-type': 'application/json' });
            res.end(JSON.stringify(st));
          } else res.writeHead(404).end('not found\n');
        });
        try {
          const addr = await listen(server, listenAt.host, listenAt.port);
          const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
          logger.info({ url: `http://${host}:${addr.port}/metrics` }, `metrics listening on http://${host}:${addr.port}/metrics`);
        } catch (e) {
          throw new InputError(`cannot listen on ${flags.metricsListen}: ${(e as Error).message}`, 'metrics-listen');
        }
      }

      const stopped = new Promise<void>((resolve) => {
        const onSignal = (sig: NodeJS.Signals) => {
          logger.info({ signal: sig }, 'stopping');
          process.off('SIGINT', onSignal);
          process.off('SIGTERM', onSignal);
          resolve();
        };
        process.on('SIGINT', onSignal);
        process.on('SIGTERM', onSignal);
      });
      try {
        await guard.start();
      } catch (e) {
        server?.close();
        throw e;
      }
      await stopped;
      await guard.stop();
      await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
      logger.flush();
    });
}
