/**
 * `kiver pxe config|serve`: PXE services without a DHCP server of our own. `config`
 * prints the dnsmasq configuration (DHCP or proxy-DHCP, TFTP, pxelinux or iPXE
 * chain-loading); `serve` prepares the TFTP root, writes the configuration and runs
 * dnsmasq in the foreground under Kiver's supervisor (restarts with back-off), passing
 * its log on. Beside an existing DHCP/TFTP server, skip both and point the Kiver
 * server's --tftp-root at that server's TFTP root.
 */
import type { Command } from 'commander';
import type { Server } from 'node:http';
import { accessSync, constants, statSync, writeFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { defaultDataDir } from '../cli/config.js';
import { InputError } from '../errors.js';
import { escapeControls } from '../escape.js';
import { DnsmasqSupervisor, generateDnsmasqConfig, prepareTftpRoot, type DnsmasqConfigOptions, type PxeMode } from '../machine/dnsmasq.js';
import { mkdirReadable } from '../machine/bootfiles.js';
import { machineMetrics } from '../machine/metrics.js';
import { serveMetrics } from '../metrics.js';
import { collect, parseListen } from '../cli/flags.js';


function pxeOptions(c: Command): Command {
  return c
    .requiredOption('--interface <name>', 'interface dnsmasq serves (and binds to)')
    .requiredOption('--dhcp-range <range>', 'START,END[,NETMASK]; with --proxy: NETWORK[,NETMASK] of the existing DHCP server')
    .option('--proxy', 'proxy DHCP: an existing DHCP server hands out addresses, dnsmasq only adds the PXE answer')
    .option('--mode <mode>', 'pxelinux (pxelinux.cfg/01-<mac>) or ipxe (chain to ipxe/<mac>.ipxe)', 'pxelinux')
    .option('--tftp-root <dir>', 'TFTP root, the same as the server\'s --tftp-root (default <data-dir>/tftp)')
    .option('--data-dir <dir>', 'Kiver data directory', defaultDataDir())
    .option('--ra-prefix <prefix>', 'answer IPv6 router solicitations on this prefix (iPXE otherwise waits ~13 s), e.g. fd77::')
    .option('--router <ip>', 'default gateway handed out')
    .option('--dns <ip>', 'DNS server handed out (repeatable)', collect, [])
    .option('--lease-file <file>', 'DHCP lease file')
    .option('--log-dhcp', 'log DHCP transactions in detail');
}

function configFrom(o: Record<string, unknown>, leaseDefault?: string): DnsmasqConfigOptions {
  const mode = o.mode as PxeMode;
  if (mode !== 'pxelinux' && mode !== 'ipxe') throw new InputError(`--mode: expected pxelinux or ipxe, got "${String(o.mode)}"`, 'mode');
  const parts = String(o.dhcpRange).split(',').map((s) => s.trim());
  const dhcpRange = o.proxy
    ? { start: parts[0], ...(parts[1] ? { netmask: parts[1] } : {}) }
    : { start: parts[0], end: parts[1], ...(parts[2] ? { netmask: parts[2] } : {}) };
  if (!o.proxy && parts.length < 2) throw new InputError('--dhcp-range: expected START,END[,NETMASK] (or --proxy NETWORK)', 'dhcp-range');
  const leaseFile = (o.leaseFile as string | undefined) ?? leaseDefault;
  return {
    interface: String(o.interface),
    dhcpRange,
    proxy: Boolean(o.proxy),
    tftpRoot: resolve((o.tftpRoot as string | undefined) ?? join(String(o.dataDir), 'tftp')),
    mode,
    ...(o.raPrefix ? { raPrefix: String(o.raPrefix) } : {}),
    ...(o.router ? { router: String(o.router) } : {}),
    ...((o.dns as string[]).length ? { dnsServers: o.dns as string[] } : {}),
    ...(leaseFile ? { leaseFile: resolve(leaseFile) } : {}),
    ...(o.logDhcp ? { logDhcp: true } : {}),
  };
}

/** dnsmasq serves TFTP as "nobody": every directory up to the root must be searchable by others. */
export function tftpRootProblem(root: string): string | undefined {
  let d = resolve(root);
  for (;;) {
    try {
      const st = statSync(d);
      if ((st.mode & 0o001) === 0) return `${d} (mode ${(st.mode & 0o777).toString(8)}) is not searchable by others; dnsmasq serves TFTP as "nobody" and cannot read ${root}. Use a TFTP root outside the data directory, e.g. --tftp-root /srv/kiver/tftp (on the server too)`;
    } catch {
      /* created later */
    }
    const up = dirname(d);
    if (up === d) return undefined;
    d = up;
  }
}

export function registerPxe(program: Command): void {
  const pxe = program.command('pxe').description('PXE services: dnsmasq configuration (DHCP + TFTP) and a supervised dnsmasq');

  pxeOptions(pxe.command('config'))
    .description('print the dnsmasq configuration Kiver would run')
    .option('--out <file>', 'write it to this file instead of stdout')
    .action(async (o) => {
      const text = generateDnsmasqConfig(configFrom(o));
      if (o.out) {
        writeFileSync(o.out, text, { mode: 0o644 });
        process.stdout.write(`wrote ${o.out}\n`);
      } else {
        process.stdout.write(text);
      }
    });

  pxeOptions(pxe.command('serve'))
    .description('prepare the TFTP root (boot loaders, default "boot from disk" config) and run dnsmasq under supervision')
    .option('--config-file <file>', 'where to write the generated configuration (default <data-dir>/dnsmasq.conf)')
    .option('--dnsmasq <binary>', 'dnsmasq binary (package dnsmasq-base)', 'dnsmasq')
    .option('--metrics-listen <host:port>', 'serve Prometheus metrics (kiver_pxe_dnsmasq_restarts_total, ...) here')
    .action(async (o) => {
      const conf = configFrom(o, join(String(o.dataDir), 'dnsmasq.leases'));
      const configPath = resolve(o.configFile ?? join(String(o.dataDir), 'dnsmasq.conf'));
      await mkdir(dirname(configPath), { recursive: true, mode: 0o700 });
      await mkdirReadable(conf.tftpRoot);
      const copied = await prepareTftpRoot({ tftpRoot: conf.tftpRoot, mode: conf.mode });
      const problem = tftpRootProblem(conf.tftpRoot);
      if (problem) process.stderr.write(`kiver: warning: ${problem}\n`);
      writeFileSync(configPath, generateDnsmasqConfig(conf), { mode: 0o644 });
      try {
        accessSync(configPath, constants.R_OK);
      } catch {
        throw new InputError(`cannot read back ${configPath}`, 'config-file');
      }
      let metricsServer: Server | undefined;
      if (o.metricsListen) {
        const { host, port } = parseListen(o.metricsListen, 'metrics-listen');
        metricsServer = (await serveMetrics(host, port)).server;
      }
      const sup = new DnsmasqSupervisor({
        configPath,
        binary: o.dnsmasq,
        onLog: (line) => process.stdout.write(`${escapeControls(line)}\n`), // DHCP clients choose their host names
        onStart: (pid) => process.stderr.write(`kiver: dnsmasq running (pid ${pid})\n`),
        onExit: (code, signal, willRestart) => {
          if (willRestart) {
            machineMetrics.dnsmasqRestarts.inc();
            process.stderr.write(`kiver: dnsmasq exited (${code ?? signal}); restarting\n`);
          }
        },
      });
      process.stderr.write(`kiver: TFTP root ${conf.tftpRoot} (${copied.length} files prepared), config ${configPath}, ${conf.mode} mode on ${conf.interface}\n`);
      sup.start();
      await new Promise<void>((done) => {
        let stopping = false;
        const stop = (sig: string) => {
          if (stopping) return;
          stopping = true;
          process.stderr.write(`kiver: ${sig}: stopping dnsmasq\n`);
          void sup.stop().then(() => metricsServer?.close()).finally(done);
        };
        process.once('SIGINT', () => stop('SIGINT'));
        process.once('SIGTERM', () => stop('SIGTERM'));
      });
      process.exit(0);
    });
}
