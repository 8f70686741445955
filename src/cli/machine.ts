/**
 * `kiver machine …`: the bare-metal inventory and installs, as a thin client of the
 * API (api/routes/machines.ts). The server's provisioning options are in
 * cmd/machine-options.ts.
 */
import type { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { clientFromEnv } from './config.js';
import { age, print, printErr, secs, table } from './output.js';
import { collect, parseDuration, parseInteger } from './flags.js';
import { InputError, KiverError } from '../errors.js';
import { escapeControls } from '../escape.js';
import { inventoryFormatOf, type InventoryFormat } from '../machine/inventory.js';
import type { MachineView } from '../model/machine.js';
import type { ApiClient } from '../client/api-client.js';


// -------------------------------------------------------------------------------------
// Helpers

/** `ipmi://admin@10.0.0.5[:623]` or `redfish://root@bmc1.example[:443]` → BMC fields (no password). */
export function parseBmcUrl(s: string): { driver: 'ipmi' | 'redfish'; address: string; port?: number; user: string } {
  let u: URL;
  try {
    u = new URL(s);
  } catch {
    throw new InputError(`--bmc: expected ipmi://USER@HOST[:PORT] or redfish://USER@HOST[:PORT], got "${s}"`, 'bmc');
  }
  const driver = u.protocol.replace(/:$/, '');
  if (driver !== 'ipmi' && driver !== 'redfish') throw new InputError(`--bmc: unknown driver "${driver}" (ipmi or redfish)`, 'bmc');
  if (u.password) throw new InputError('--bmc: do not put the password in the URL (it would show in the process list); use --bmc-password-file or KIVER_BMC_PASSWORD', 'bmc');
  if (!u.username) throw new InputError('--bmc: the user is missing (ipmi://USER@HOST)', 'bmc');
  if (!u.hostname) throw new InputError('--bmc: the host is missing', 'bmc');
  return {
    driver,
    address: u.hostname.replace(/^\[|\]$/g, ''),
    ...(u.port ? { port: Number(u.port) } : {}),
    user: decodeURIComponent(u.username),
  };
}

/** Reads a password without echo from the terminal. */
async function promptHidden(question: string): Promise<string> {
  const stdin = process.stdin;
  if (!stdin.isTTY) throw new InputError('no BMC password: pass --bmc-password-file FILE or set KIVER_BMC_PASSWORD', 'bmc-password');
  process.stderr.write(question);
  stdin.setRawMode(true);
  stdin.resume();
  stdin.setEncoding('utf8');
  return new Promise((resolve, reject) => {
    let pw = '';
    const done = (err?: Error) => {
      stdin.setRawMode(false);
      stdin.pause();
      stdin.off('data', onData);
      process.stderr.write('\n');
      if (err) reject(err);
      else resolve(pw);
    };
    const onData = (chunk: string) => {
      for (const c of chunk) {
        if (c === '\r' || c === '\n') return done();
        if (c === '\u0003') return done(new InputError('cancelled', 'bmc-password'));
        if (c === '\u007f' || c === '\b') pw = pw.slice(0, -1);
        else pw += c;
      }
    };
    stdin.on('data', onData);
  });
}

async function bmcPassword(file: string | undefined): Promise<string> {
  if (file) {
    try {
      return readFileSync(file, 'utf8').replace(/\r?\n$/, '');
    } catch (err) {
      throw new InputError(`--bmc-password-file: cannot read ${file} (${(err as NodeJS.ErrnoException).code})`, 'bmc-password-file');
    }
  }
  if (process.env.KIVER_BMC_PASSWORD) return process.env.KIVER_BMC_PASSWORD;
  return promptHidden('BMC password: ');
}

const mmss = (ms: number) => {
  const s = Math.max(0, Math.floor(ms / 1000));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
};

function machineTable(ms: MachineView[]): string {
  return table(
    ms.map((m) => [
      m.name, m.status.phase, age(m.status.since), `${m.bmc.driver}://${m.bmc.address}${m.bmc.port ? `:${m.bmc.port}` : ''}`,
      (m.macs.length ? m.macs : m.status.bmcMacs ?? []).join(',') || '-', m.osProfile, `${m.identity.ip}/${m.identity.prefix}`, m.identity.hostname,
      (m.status.reason ?? '').slice(0, 60),
    ]),
    ['NAME', 'PHASE', 'SINCE', 'BMC', 'MACS', 'OS', 'IP', 'HOSTNAME', 'REASON'],
  );
}

function machineDetail(m: MachineView): string {
  const id = m.identity;
  const lines = [
    `Name:        ${m.name}`,
    `Phase:       ${m.status.phase} (since ${m.status.since})${m.status.reason ? `\nReason:      ${escapeControls(m.status.reason)}` : ''}`,
    `BMC:         ${m.bmc.driver}://${m.bmc.user}@${m.bmc.address}${m.bmc.port ? `:${m.bmc.port}` : ''} (password ${m.bmc.password})`,
    `MACs:        ${m.macs.join(', ') || '-'}${m.status.bmcMacs ? ` (BMC reports ${m.status.bmcMacs.join(', ')})` : ''}`,
    `OS profile:  ${m.osProfile}`,
    `Identity:    ${id.hostname} ${id.ip}/${id.prefix}${id.gateway ? ` gw ${id.gateway}` : ''}${id.dns.length ? ` dns ${id.dns.join(',')}` : ''}${id.ntp.length ? ` ntp ${id.ntp.join(',')}` : ''}`,
  ];
  const inst = m.status.install;
  if (inst) {
    lines.push(`Install:     ${inst.osProfile} started ${inst.startedAt}, boot files expire ${inst.expiresAt}${inst.identityServedAt ? `, identity served ${inst.identityServedAt}` : ''}`);
    lines.push(`Boot files:  ${inst.bootFiles.join(' ') || '-'}`);
  }
  lines.push('', table(m.status.events.map((e) => [e.at, e.type, e.message]), ['TIME', 'EVENT', 'MESSAGE']));
  return lines.join('\n');
}

// -------------------------------------------------------------------------------------
// install: start, then follow with a progress display

interface Outcome {
  name: string;
  ok: boolean;
  started?: { machine: MachineView; macs: string[]; bootFiles: string[]; expiresAt: string; resetAt: string };
  error?: { code: string; status: number; message: string };
}

interface Follow {
  name: string;
  resetAt: number;
  step: string;
  done: boolean;
  failed: boolean;
  endedAt?: number;
  view?: MachineView;
}

/** Where an install is, in words, from the machine's state. */
function stepOf(m: MachineView | undefined, startedAt: string): { step: string; done: boolean; failed: boolean } {
  if (!m) return { step: 'machine removed', done: true, failed: true };
  const s = m.status;
  if (s.phase === 'installing') {
    if (s.install && s.install.startedAt !== startedAt) return { step: 'another install took over', done: true, failed: true };
    if (s.install?.identityServedAt) return { step: 'installer running (identity served)', done: false, failed: false };
    return { step: 'PXE boot, waiting for the installer', done: false, failed: false };
  }
  if (s.phase === 'installed' && (s.timestamps.installed ?? '') >= startedAt) return { step: 'installed', done: true, failed: false };
  if (s.phase === 'failed') return { step: `failed: ${s.reason ?? 'unknown reason'}`, done: true, failed: true };
  return { step: `${s.phase} (install no longer pending)`, done: true, failed: true };
}

class ProgressDisplay {
  private drawn = 0;
  private readonly tty = Boolean(process.stderr.isTTY);
  private last = new Map<string, string>();

  constructor(private readonly rows: Follow[]) {}

  private line(f: Follow, now: number): string {
    const w = Math.max(...this.rows.map((r) => r.name.length));
    const elapsed = mmss((f.endedAt ?? now) - f.resetAt);
    return escapeControls(`${f.name.padEnd(w)}  ${elapsed.padStart(5)}  ${f.step}`);
  }

  render(now = Date.now()): void {
    if (this.tty) {
      let out = this.drawn ? `\x1b[${this.drawn}A` : '';
      for (const f of this.rows) out += `\x1b[2K${this.line(f, now)}\n`;
      process.stderr.write(out);
      this.drawn = this.rows.length;
      return;
    }
    // Not a terminal (CI, logs): one line per change.
    for (const f of this.rows) {
      if (this.last.get(f.name) === f.step) continue;
      this.last.set(f.name, f.step);
      printErr(this.line(f, now));
    }
  }
}

async function follow(client: ApiClient, started: Outcome[], timeoutMs: number): Promise<Follow[]> {
  const startedAt = new Map(started.map((o) => [o.name, o.started!.machine.status.install?.startedAt ?? '']));
  const rows: Follow[] = started.map((o) => ({
    name: o.name, resetAt: Date.parse(o.started!.resetAt), step: stepOf(o.started!.machine, startedAt.get(o.name)!).step, done: false, failed: false,
  }));
  const display = new ProgressDisplay(rows);
  const deadline = Date.now() + timeoutMs;
  display.render();
  let lastError = '';
  while (rows.some((r) => !r.done)) {
    await new Promise((r) => setTimeout(r, 1000));
    try {
      const all = await client.get<MachineView[]>('/v1/machines');
      lastError = '';
      const now = Date.now();
      for (const r of rows) {
        if (r.done) continue;
        const view = all.find((m) => m.name === r.name);
        const s = stepOf(view, startedAt.get(r.name)!);
        r.step = s.step;
        r.view = view;
        if (s.done) {
          r.done = true;
          r.failed = s.failed;
          const t = view?.status.timestamps.installed ?? view?.status.timestamps.failed;
          r.endedAt = s.failed || !t ? now : Date.parse(t);
        }
      }
    } catch (err) {
      // The server may be restarting (or failing over); keep following until the deadline.
      const msg = (err as Error).message;
      if (msg !== lastError) printErr(`kiver: following installs: ${msg}`);
      lastError = msg;
    }
    if (Date.now() > deadline) {
      for (const r of rows) {
        if (r.done) continue;
        r.done = true;
        r.failed = true;
        r.endedAt = Date.now();
        r.step = `still ${r.step} after ${Math.round(timeoutMs / 1000)} s; stopped following (the install goes on)`;
      }
    }
    display.render();
  }
  return rows;
}

// -------------------------------------------------------------------------------------

export function registerMachine(program: Command): void {
  const machine = program.command('machine').description('bare-metal machines: inventory, OS installs over PXE, boot-file reaper');

  machine.command('add <name>')
    .description('add a machine (the BMC password is read from a file, KIVER_BMC_PASSWORD or a prompt — never from the command line)')
    .requiredOption('--bmc <url>', 'BMC: ipmi://USER@HOST[:PORT] or redfish://USER@HOST[:PORT]')
    .option('--bmc-password-file <file>', 'file holding the BMC password')
    .option('--mac <mac>', 'NIC MAC (repeatable; default: read from the BMC at install)', collect, [])
    .requiredOption('--os <profile>', 'OS profile')
    .requiredOption('--ip <addr/prefix>', 'address after install, e.g. 10.20.0.11/24')
    .requiredOption('--hostname <name>', 'host name after install')
    .option('--gateway <ip>', 'default gateway')
    .option('--dns <ip>', 'DNS server (repeatable)', collect, [])
    .option('--ntp <server>', 'NTP server (repeatable)', collect, [])
    .action(async (name: string, o, cmd: Command) => {
      const bmc = { ...parseBmcUrl(o.bmc), password: await bmcPassword(o.bmcPasswordFile) };
      const body = {
        name, bmc, macs: o.mac, osProfile: o.os,
        identity: { ip: o.ip, hostname: o.hostname, ...(o.gateway ? { gateway: o.gateway } : {}), dns: o.dns, ntp: o.ntp },
      };
      const m = await clientFromEnv().post<MachineView>('/v1/machines', body);
      print(cmd, m, () => `machine ${m.name} added (${m.status.phase})`);
    });

  machine.command('import <file>')
    .description('import a YAML or CSV inventory: every machine, or none if any row is bad (each bad row is reported with its line)')
    .option('--format <format>', 'yaml or csv (default: from the file name)')
    .action(async (file: string, o, cmd: Command) => {
      const format = (o.format ?? inventoryFormatOf(file)) as InventoryFormat;
      if (format !== 'yaml' && format !== 'csv') throw new InputError(`--format: expected yaml or csv, got "${o.format}"`, 'format');
      let text: string;
      try {
        text = readFileSync(file, 'utf8');
      } catch (err) {
        throw new InputError(`cannot read ${file} (${(err as NodeJS.ErrnoException).code})`, 'file');
      }
      // A JSON string body: the server takes it as the file's text.
      const r = await clientFromEnv().request<{ imported: number; machines: MachineView[] }>('POST', `/v1/machines/import?format=${format}`, text);
      print(cmd, r, () => `imported ${r.imported} machine${r.imported === 1 ? '' : 's'}: ${r.machines.map((m) => m.name).join(', ')}`);
    });

  machine.command('ls').alias('list').description('list machines').action(async (_o, cmd: Command) => {
    const ms = await clientFromEnv().get<MachineView[]>('/v1/machines');
    print(cmd, ms, () => machineTable(ms));
  });

  machine.command('get <name>').description('show a machine: state, install, recent events').action(async (name: string, _o, cmd: Command) => {
    const m = await clientFromEnv().get<MachineView>(`/v1/machines/${encodeURIComponent(name)}`);
    print(cmd, m, () => machineDetail(m));
  });

  machine.command('rm <name>')
    .description('remove a machine and its boot files')
    .option('--force', 'also while it is installing')
    .action(async (name: string, o, cmd: Command) => {
      await clientFromEnv().delete(`/v1/machines/${encodeURIComponent(name)}${o.force ? '?force=true' : ''}`);
      print(cmd, { removed: name }, () => `machine ${name} removed`);
    });

  machine.command('inspect <name>')
    .description("ask the machine's BMC for its power state and NIC MACs")
    .action(async (name: string, _o, cmd: Command) => {
      const r = await clientFromEnv().request<{ machine: MachineView; power: string; macs: string[] }>('POST', `/v1/machines/${encodeURIComponent(name)}/inspect`, {}, { timeoutMs: 120_000 });
      print(cmd, r, () => `${name}: power ${r.power}; MACs ${r.macs.join(', ')}; ${r.machine.status.phase}`);
    });

  machine.command('install <names...>')
    .description('install machines over PXE: MAC from the BMC, per-MAC boot file, one-time PXE boot, reset; then follow the progress')
    .option('--os <profile>', "OS profile (default: each machine's own)")
    .option('--detach', 'return once the machines are reset instead of following the installs')
    .option('--concurrency <n>', 'BMC conversations at once', '4')
    .option('--timeout <duration>', 'stop following after this', '30m')
    .action(async (names: string[], o, cmd: Command) => {
      const client = clientFromEnv();
      const concurrency = parseInteger(o.concurrency, 'concurrency', 1, 64);
      const timeoutMs = parseDuration(o.timeout, 'timeout') * 1000;
      const unique = [...new Set(names)];
      // Each BMC conversation takes seconds (an unreachable BMC up to ~30 s).
      const requestTimeout = Math.max(120_000, Math.ceil(unique.length / concurrency) * 90_000);
      const { results } = await client.request<{ results: Outcome[] }>(
        'POST', '/v1/machines/install', { names: unique, concurrency, ...(o.os ? { osProfile: o.os } : {}) }, { timeoutMs: requestTimeout },
      );
      for (const r of results) if (!r.ok) printErr(`kiver: ${r.name}: ${r.error?.message}`);
      const started = results.filter((r) => r.ok && r.started);
      const notStarted = results.filter((r) => !r.ok).map((r) => r.name);
      if (o.detach) {
        print(cmd, results, () => table(
          started.map((r) => [r.name, r.started!.macs.join(','), r.started!.resetAt, r.started!.expiresAt]),
          ['NAME', 'MACS', 'RESET AT', 'BOOT FILES EXPIRE'],
        ));
        if (notStarted.length) throw new KiverError(`${notStarted.length} of ${results.length} install(s) did not start: ${notStarted.join(', ')}`);
        return;
      }
      const rows = started.length ? await follow(client, started, timeoutMs) : [];
      const summary = rows.map((r) => ({
        name: r.name,
        result: r.failed ? 'failed' : 'installed',
        seconds: Math.round(((r.endedAt ?? Date.now()) - r.resetAt) / 100) / 10,
        detail: r.step,
        ...(r.view ? { machine: r.view } : {}),
      }));
      print(cmd, { results: summary, notStarted: results.filter((r) => !r.ok) }, () => table(
        [...summary.map((s) => [s.name, s.result, secs(s.seconds * 1000), s.detail]), ...notStarted.map((n) => [n, 'not started', '-', results.find((r) => r.name === n)!.error?.message ?? ''])],
        ['NAME', 'RESULT', 'TIME', 'DETAIL'],
      ));
      const failed = [...summary.filter((s) => s.result !== 'installed').map((s) => s.name), ...notStarted];
      if (failed.length) throw new KiverError(`${failed.length} of ${results.length} machine(s) not installed: ${failed.join(', ')}`);
    });

  machine.command('reap')
    .description('delete every Kiver-written boot file older than the max age now (the server does it every --reap-interval)')
    .option('--max-age <duration>', "default: the server's --boot-file-max-age (2h)")
    .action(async (o, cmd: Command) => {
      const body = o.maxAge !== undefined ? { maxAgeSeconds: parseDuration(o.maxAge, 'max-age') } : {};
      const r = await clientFromEnv().post<{ maxAgeSeconds: number; deleted: { path: string; machine: string; ageSeconds: number }[]; kept: number; expiredInstalls: string[] }>('/v1/machines/reap', body);
      print(cmd, r, () => [
        `deleted ${r.deleted.length} boot file(s) older than ${r.maxAgeSeconds}s; kept ${r.kept}`,
        ...r.deleted.map((f) => `  ${f.path} (${f.machine}, ${f.ageSeconds}s old)`),
        ...(r.expiredInstalls.length ? [`installs expired (machines now failed): ${r.expiredInstalls.join(', ')}`] : []),
      ].join('\n'));
    });

  machine.command('profiles').description('list the OS profiles the server can install').action(async (_o, cmd: Command) => {
    const ps = await clientFromEnv().get<{ name: string; kind: string; kernelUrl: string }[]>('/v1/os-profiles');
    print(cmd, ps, () => table(ps.map((p) => [p.name, p.kind, p.kernelUrl]), ['NAME', 'KIND', 'KERNEL']));
  });
}
