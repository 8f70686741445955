/** The provisioning options (`--tftp-root`, `--machine-url`, reaper, OS profiles, BMC namespace) of `kiver up` and `kiver server`. */
import type { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { InputError } from '../errors.js';
import { parseDuration } from '../cli/flags.js';
import { parseProfiles } from '../machine/profiles/index.js';
import type { ProvisioningOptions } from '../machine/provisioning.js';


/** Adds the provisioning options to `kiver up` / `kiver server`. */
export function machineServerOptions(cmd: Command): Command {
  return cmd
    .option('--tftp-root <dir>', 'where per-MAC boot files are written (the dnsmasq/TFTP root; default <data-dir>/tftp)')
    .option('--machine-url <url>', 'URL installing machines reach this server at (default: the API URL)')
    .option('--os-profiles <file>', 'YAML/JSON list of OS profiles machines can be installed with')
    .option('--reap-interval <duration>', 'how often the leader deletes stale boot files', '5m')
    .option('--boot-file-max-age <duration>', 'boot files (and install tokens) older than this are deleted', '2h')
    .option('--bmc-netns <name>', 'run ipmitool in this network namespace (a management network)');
}

/** The parsed provisioning options for KiverServer.start({machines}). */
export function machineOptionsFrom(o: Record<string, string | undefined>): ProvisioningOptions {
  const out: ProvisioningOptions = {
    reapIntervalMs: parseDuration(o.reapInterval ?? '5m', 'reap-interval') * 1000,
    bootFileMaxAgeMs: parseDuration(o.bootFileMaxAge ?? '2h', 'boot-file-max-age') * 1000,
  };
  if (out.reapIntervalMs! < 1000) throw new InputError('--reap-interval: at least 1s', 'reap-interval');
  if (o.tftpRoot) out.tftpRoot = o.tftpRoot;
  if (o.machineUrl) {
    if (!/^https?:\/\/[^\s/]+(\/[^\s]*)?$/.test(o.machineUrl)) throw new InputError(`--machine-url: expected http(s)://HOST[:PORT], got "${o.machineUrl}"`, 'machine-url');
    out.serverUrl = o.machineUrl.replace(/\/$/, '');
  }
  if (o.osProfiles) {
    let text: string;
    try {
      text = readFileSync(o.osProfiles, 'utf8');
    } catch (err) {
      throw new InputError(`--os-profiles: cannot read ${o.osProfiles} (${(err as NodeJS.ErrnoException).code})`, 'os-profiles');
    }
    out.profiles = parseProfiles(text, o.osProfiles);
  }
  if (o.bmcNetns) {
    if (!/^[A-Za-z0-9_.-]{1,64}$/.test(o.bmcNetns)) throw new InputError(`--bmc-netns: "${o.bmcNetns}" is not a namespace name`, 'bmc-netns');
    out.bmc = { ipmi: { commandPrefix: ['ip', 'netns', 'exec', o.bmcNetns] } };
  }
  return out;
}
