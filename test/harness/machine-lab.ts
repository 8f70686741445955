// The provisioning lab: a network namespace with a bridge + tap, dnsmasq configured and
// supervised by `kiver pxe serve` (DHCP + TFTP + RA), OpenIPMI's ipmi_sim as the BMC of a
// QEMU (TCG) machine with an empty disk, an HTTP server for the boot assets (a bare
// fastify on a unix socket, reached from the namespace through a forwarder) and a second
// forwarded port for a Kiver server running in the test process (connectKiver). Nothing
// leaves the namespace or loopback. Everything is torn down on stop(), on failure, on
// process exit and on SIGTERM/SIGINT.
//
// The BMC's chassis_control program only appends the request to a file and answers
// `get power` from a state file, so it returns at once (ipmitool resends when the BMC
// is slower than ~1 s); the lab applies requests in order, driving QEMU over QMP:
// power on = start qemu, off = quit, reset = system_reset; a pending one-time PXE boot
// moves the NIC to bootindex 0 for exactly one reset (like a real BMC's boot override).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, createReadStream, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, statSync, writeFileSync, writeSync, fstatSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Fastify, { type FastifyInstance } from 'fastify';
import { buildInitramfs, buildOsImage, ensureKernel, ensureLabPackages, fruWithMac } from './machine-lab-assets.js';

export const LAB_SUBNET = { bridge: '10.77.0.1', prefix: 24, start: '10.77.0.100', end: '10.77.0.199', netmask: '255.255.255.0', ra: 'fd77::' };
export const LAB_HTTP_PORT = 8080;
/** Where the namespace reaches the Kiver server (forwarded to the test process). */
export const LAB_KIVER_PORT = 7700;
const KIVER_BIN = fileURLToPath(new URL('../../../bin/kiver.js', import.meta.url));

export interface LabEvent {
  at: number;
  line: string;
}

/** Appends every line printed to a file to `sink` with the time it was seen. */
class FileFollower {
  private offset = 0;
  private timer?: NodeJS.Timeout;
  private partial = '';
  constructor(private readonly path: string, private readonly sink: (line: string) => void, private readonly everyMs = 100) {}
  start(): void {
    this.timer = setInterval(() => this.poll(), this.everyMs);
  }
  poll(): void {
    if (!existsSync(this.path)) return;
    const fd = openSync(this.path, 'r');
    try {
      const size = fstatSync(fd).size;
      if (size < this.offset) this.offset = 0;
      if (size === this.offset) return;
      const buf = Buffer.alloc(size - this.offset);
      readSync(fd, buf, 0, buf.length, this.offset);
      this.offset = size;
      const text = this.partial + buf.toString('latin1');
      const lines = text.split(/\r?\n/);
      this.partial = lines.pop() ?? '';
      for (const l of lines) this.sink(l.replace(/\x1b\[[0-9;?]*[a-zA-Z]|\x1bc/g, ''));
    } finally {
      closeSync(fd);
    }
  }
  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }
}

/** Minimal QMP client: commands in order, events to a callback. */
class Qmp {
  private sock?: net.Socket;
  private buf = '';
  private pending: { resolve: (v: unknown) => void; reject: (e: Error) => void }[] = [];
  onEvent: (ev: { event: string; data?: unknown }) => void = () => undefined;

  async connect(path: string, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        await new Promise<void>((resolve, reject) => {
          const s = net.connect(path);
          s.once('connect', () => { this.sock = s; resolve(); });
          s.once('error', reject);
        });
        break;
      } catch (err) {
        if (Date.now() > deadline) throw err;
        await sleep(50);
      }
    }
    this.sock!.setEncoding('utf8');
    const greeting = new Promise<void>((resolve) => {
      const first = (d: string) => {
        this.buf += d;
        if (this.buf.includes('\n')) {
          this.sock!.off('data', first);
          this.buf = this.buf.slice(this.buf.indexOf('\n') + 1);
          this.sock!.on('data', (x: string) => this.data(x));
          resolve();
        }
      };
      this.sock!.on('data', first);
    });
    this.sock!.on('error', () => undefined);
    this.sock!.on('close', () => {
      for (const p of this.pending.splice(0)) p.reject(new Error('QMP closed'));
    });
    await greeting;
    await this.cmd('qmp_capabilities');
  }

  private data(d: string): void {
    this.buf += d;
    let i: number;
    while ((i = this.buf.indexOf('\n')) >= 0) {
      const line = this.buf.slice(0, i).trim();
      this.buf = this.buf.slice(i + 1);
      if (!line) continue;
      const msg = JSON.parse(line) as { event?: string; data?: unknown; return?: unknown; error?: { desc: string } };
      if (msg.event) this.onEvent({ event: msg.event, data: msg.data });
      else if ('return' in msg || msg.error) {
        const p = this.pending.shift();
        if (msg.error) p?.reject(new Error(msg.error.desc));
        else p?.resolve(msg.return);
      }
    }
  }

  cmd(execute: string, args?: Record<string, unknown>): Promise<unknown> {
    return new Promise((resolve, reject) => {
      if (!this.sock || this.sock.destroyed) return reject(new Error('QMP not connected'));
      this.pending.push({ resolve, reject });
      this.sock.write(JSON.stringify(args ? { execute, arguments: args } : { execute }) + '\n');
    });
  }

  close(): void {
    this.sock?.destroy();
  }
}

export interface BmcSimOptions {
  /** Work directory: config, FRU, chassis request log and power state go here. */
  dir: string;
  address: string;
  port: number;
  user: string;
  password: string;
  /** The NIC MAC the BMC reports in its FRU data. */
  mac: string;
  /**
   * Apply power requests to the power state at once (no machine behind the BMC).
   * Otherwise the requests are only appended to `chassis.requests` for the lab to act on.
   */
  selfPower?: boolean;
}

/**
 * OpenIPMI ipmi_sim as a BMC: LAN config (one admin user), an MC with FRU data holding
 * the MAC, and a chassis_control program that answers at once (ipmitool resends when a
 * BMC is slower than ~1 s). Returns the argv to run it with and where it records the
 * chassis requests ("power 1", "reset 1", "boot pxe", one per line).
 */
export function writeBmcSim(o: BmcSimOptions): { argv: string[]; requestsFile: string; powerFile: string } {
  mkdirSync(o.dir, { recursive: true });
  const powerFile = join(o.dir, 'power');
  const requestsFile = join(o.dir, 'chassis.requests');
  writeFileSync(powerFile, '0\n');
  writeFileSync(requestsFile, '');
  const cc = join(o.dir, 'chassis-control.sh');
  const apply = o.selfPower
    ? `       case "$1 $2" in "power 1"|"reset 1") echo 1 > "$D/power";; "power 0") echo 0 > "$D/power";; esac\n`
    : '';
  writeFileSync(cc, `#!/bin/sh
# ipmi_sim chassis_control: <mc> get|set parm [val] ... — answer at once, let the lab act.
D='${o.dir}'
mc=$1; op=$2; shift 2
case "$op" in
  get) for p in "$@"; do case "$p" in
         power) echo "power:$(cat "$D/power")";;
         boot) echo "boot:$(cat "$D/boot" 2>/dev/null || echo default)";;
       esac; done;;
  set) echo "$*" >> "$D/chassis.requests"
${apply}       case "$1" in boot) echo "$2" > "$D/boot";; esac;;
  *) exit 1;;
esac
exit 0
`, { mode: 0o755 });
  writeFileSync(join(o.dir, 'lan.conf'), `name "kiverlab"
set_working_mc 0x20
  startlan 1
    addr ${o.address} ${o.port}
    priv_limit admin
    allowed_auths_callback none md2 md5 straight
    allowed_auths_user none md2 md5 straight
    allowed_auths_operator none md2 md5 straight
    allowed_auths_admin none md2 md5 straight
    guid a123456789abcdefa123456789abcdef
  endlan
  chassis_control "${cc} 0x20"
  user 2 true "${o.user}" "${o.password}" admin 10 none md2 md5 straight
`);
  const fru = fruWithMac(o.mac);
  writeFileSync(join(o.dir, 'sim.emu'), `mc_setbmc 0x20
mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02
mc_add_fru_data 0x20 0 ${fru.length} data ${fru.map((b) => `0x${b.toString(16).padStart(2, '0')}`).join(' ')}
mc_enable 0x20
`);
  mkdirSync(join(o.dir, 'ipmi-state'), { recursive: true });
  return {
    argv: ['ipmi_sim', '-c', join(o.dir, 'lan.conf'), '-f', join(o.dir, 'sim.emu'), '-s', join(o.dir, 'ipmi-state'), '-n'],
    requestsFile,
    powerFile,
  };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export interface MachineLabOptions {
  /** Registers routes (the config center plugin) on the lab's HTTP server before it listens. */
  setupHttp?: (app: FastifyInstance, lab: MachineLab) => Promise<void> | void;
  log?: (s: string) => void;
  /** Keep the work directory (KIVER_LAB_KEEP=1 does the same). */
  keep?: boolean;
}

export class MachineLab {
  readonly ns = `kvlab${process.pid}`;
  readonly dir: string;
  readonly tftpRoot: string;
  readonly assetsDir: string;
  readonly serialLog: string;
  readonly disk: string;
  readonly mac = '52:54:00:4b:56:01';
  readonly bmc = { address: '127.0.0.1', port: 623, user: 'admin', password: randomBytes(6).toString('hex') };
  /** The lab's own HTTP server (boot assets under /lab/, plus whatever setupHttp adds). */
  readonly serverUrl = `http://${LAB_SUBNET.bridge}:${LAB_HTTP_PORT}`;
  /** The Kiver server as the machine reaches it (see connectKiver). */
  readonly kiverUrl = `http://${LAB_SUBNET.bridge}:${LAB_KIVER_PORT}`;
  readonly nsExec: string[];
  readonly dnsmasqLog: LabEvent[] = [];
  readonly serial: LabEvent[] = [];
  readonly chassis: LabEvent[] = [];
  http!: FastifyInstance;
  private procs = new Set<ChildProcess>();
  private qemu?: ChildProcess;
  private qmp?: Qmp;
  private kiverBridge?: net.Server;
  private followers: FileFollower[] = [];
  private pxePending = false;
  private queue: Promise<void> = Promise.resolve();
  private exitHook = () => this.killAllSync();
  private signalHook = () => {
    this.killAllSync();
    process.exit(143);
  };
  private log: (s: string) => void;
  private stopped = false;

  private constructor(private readonly opts: MachineLabOptions) {
    this.dir = mkdtempSync(join(tmpdir(), 'kiver-machine-lab-'));
    chmodSync(this.dir, 0o755); // dnsmasq serves TFTP as "nobody"
    this.tftpRoot = join(this.dir, 'tftp');
    this.assetsDir = join(this.dir, 'assets');
    this.serialLog = join(this.dir, 'serial.log');
    this.disk = join(this.dir, 'disk.img');
    this.nsExec = ['ip', 'netns', 'exec', this.ns];
    this.log = opts.log ?? (() => undefined);
  }

  /** Why the lab cannot run on this machine, or undefined. */
  static unavailable(log?: (s: string) => void): string | undefined {
    return ensureLabPackages(log);
  }

  static async start(opts: MachineLabOptions = {}): Promise<MachineLab> {
    const lab = new MachineLab(opts);
    process.on('exit', lab.exitHook);
    process.once('SIGTERM', lab.signalHook);
    process.once('SIGINT', lab.signalHook);
    try {
      await lab.setUp();
      return lab;
    } catch (err) {
      await lab.stop();
      throw err;
    }
  }

  private sh(cmd: string[], what = cmd.join(' ')): string {
    const r = spawnSync(cmd[0], cmd.slice(1), { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`${what} failed: ${r.stderr || r.stdout}`);
    return r.stdout;
  }

  /**
   * Makes the Kiver server listening on 127.0.0.1:`port` (in this process, outside the
   * namespace) reachable from the namespace at `kiverUrl`: the forwarder there connects
   * to a unix socket, which this pipes to the server's TCP port.
   */
  async connectKiver(port: number): Promise<void> {
    const sock = join(this.dir, 'kiver.sock');
    rmSync(sock, { force: true });
    this.kiverBridge = net.createServer((c) => {
      const u = net.connect(port, '127.0.0.1');
      c.pipe(u);
      u.pipe(c);
      const abort = () => { c.destroy(); u.destroy(); };
      c.on('error', abort);
      u.on('error', abort);
    });
    await new Promise<void>((resolve) => this.kiverBridge!.listen(sock, resolve));
  }

  private spawnDaemon(name: string, cmd: string[], onLine?: (l: string) => void): ChildProcess {
    // Spawned directly (ip netns exec execs the program), so the pid is the daemon's.
    const child = spawn(cmd[0], cmd.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    this.procs.add(child);
    const out = (d: Buffer) => {
      for (const l of d.toString('utf8').split('\n')) if (l.trim()) onLine ? onLine(l) : this.log(`[${name}] ${l}`);
    };
    child.stdout!.on('data', out);
    child.stderr!.on('data', out);
    child.on('close', (code, sig) => {
      this.procs.delete(child);
      if (!this.stopped && name !== 'qemu') this.log(`[${name}] exited ${code ?? sig}`);
    });
    return child;
  }

  private async setUp(): Promise<void> {
    const t0 = Date.now();
    const cache = process.env.KIVER_LAB_CACHE ?? '/var/cache/kiver-machine-lab';
    const kernel = ensureKernel(cache, this.log);
    mkdirSync(this.assetsDir, { recursive: true });
    const initrd = join(this.assetsDir, 'initrd.img');
    buildInitramfs(kernel, initrd);
    writeFileSync(join(this.assetsDir, 'vmlinuz'), readFileSync(kernel.vmlinuz));
    buildOsImage(kernel, initrd, this.assetsDir);
    writeFileSync(this.disk, '');
    spawnSync('truncate', ['-s', '64M', this.disk]);
    this.log(`assets ready in ${Date.now() - t0} ms (initrd ${statSync(initrd).size} B, os image ${statSync(join(this.assetsDir, 'os.img.gz')).size} B)`);

    // Network: namespace, loopback (the BMC listens there), bridge with IPv4 + IPv6 (nodad), tap.
    this.sh(['ip', 'netns', 'add', this.ns]);
    const n = (...a: string[]) => this.sh(['ip', '-n', this.ns, ...a]);
    n('link', 'set', 'lo', 'up');
    n('link', 'add', 'br0', 'type', 'bridge');
    n('addr', 'add', `${LAB_SUBNET.bridge}/${LAB_SUBNET.prefix}`, 'dev', 'br0');
    n('addr', 'add', `${LAB_SUBNET.ra}1/64`, 'dev', 'br0', 'nodad');
    n('tuntap', 'add', 'tap0', 'mode', 'tap');
    n('link', 'set', 'tap0', 'master', 'br0');
    n('link', 'set', 'tap0', 'up');
    n('link', 'set', 'br0', 'up');

    // dnsmasq: `kiver pxe serve` prepares the TFTP root, writes the config and supervises it.
    const pxe = this.spawnDaemon('pxe', [
      ...this.nsExec, process.execPath, KIVER_BIN, 'pxe', 'serve', '--interface', 'br0',
      '--dhcp-range', `${LAB_SUBNET.start},${LAB_SUBNET.end},${LAB_SUBNET.netmask}`, '--ra-prefix', LAB_SUBNET.ra,
      '--tftp-root', this.tftpRoot, '--data-dir', join(this.dir, 'pxe'), '--mode', 'pxelinux',
    ], (line) => {
      if (line.startsWith('kiver:')) this.log(`[pxe] ${line}`);
      else this.dnsmasqLog.push({ at: Date.now(), line });
    });
    await this.waitFor(this.dnsmasqLog, /started, version/, 0, 20_000, 'dnsmasq (kiver pxe serve) to start').catch((err) => {
      throw pxe.exitCode !== null ? new Error(`kiver pxe serve exited ${pxe.exitCode}`) : err;
    });

    // HTTP: config center + boot assets on a unix socket; a forwarder in the namespace.
    const sock = join(this.dir, 'http.sock');
    this.http = Fastify({ logger: false });
    this.http.get<{ Params: { file: string } }>('/lab/:file', async (req, reply) => {
      const f = join(this.assetsDir, req.params.file);
      if (!/^[a-z0-9.]+$/.test(req.params.file) || !existsSync(f)) return reply.status(404).send();
      return reply.header('content-length', statSync(f).size).type('application/octet-stream').send(createReadStream(f));
    });
    await this.opts.setupHttp?.(this.http, this);
    await this.http.listen({ path: sock });
    const here = dirname(fileURLToPath(import.meta.url));
    const forward = (port: number, socket: string) => {
      const f = this.spawnDaemon('forward', [...this.nsExec, process.execPath, join(here, 'machine-lab-forward.js'), LAB_SUBNET.bridge, String(port), socket]);
      return new Promise<void>((resolve, reject) => {
        f.stdout!.once('data', () => resolve());
        f.once('close', () => reject(new Error('forwarder died')));
      });
    };
    await Promise.all([forward(LAB_HTTP_PORT, sock), forward(LAB_KIVER_PORT, join(this.dir, 'kiver.sock'))]);

    // The BMC: ipmi_sim on the namespace's loopback, FRU with the NIC MAC, chassis control.
    const sim = writeBmcSim({ dir: this.dir, ...this.bmc, mac: this.mac });
    this.spawnDaemon('ipmi_sim', [...this.nsExec, ...sim.argv]);
    const chassisFollower = new FileFollower(join(this.dir, 'chassis.requests'), (line) => {
      if (!line.trim()) return;
      this.chassis.push({ at: Date.now(), line });
      this.queue = this.queue.then(() => this.chassisRequest(line)).catch((err) => this.log(`[chassis] ${line}: ${(err as Error).message}`));
    }, 50);
    const serialFollower = new FileFollower(this.serialLog, (line) => {
      if (line.trim()) this.serial.push({ at: Date.now(), line });
    }, 100);
    chassisFollower.start();
    serialFollower.start();
    this.followers.push(chassisFollower, serialFollower);
    await sleep(300);
    this.log(`lab up in ${Date.now() - t0} ms (namespace ${this.ns}, dir ${this.dir})`);
  }

  /** Applies one chassis_control `set` request ("power 1", "reset 1", "boot pxe"). */
  private async chassisRequest(line: string): Promise<void> {
    const words = line.trim().split(/\s+/);
    for (let i = 0; i + 1 < words.length; i += 2) {
      const [parm, val] = [words[i], words[i + 1]];
      if (parm === 'boot') this.pxePending = val === 'pxe';
      else if (parm === 'power' && val === '1') await this.powerOn();
      else if (parm === 'power' && val === '0') await this.powerOff();
      else if (parm === 'reset' && val === '1') await this.reset();
    }
  }

  get running(): boolean {
    const q = this.qemu;
    return !!q && q.exitCode === null && q.signalCode === null;
  }

  private setPower(on: boolean): void {
    writeFileSync(join(this.dir, 'power'), on ? '1\n' : '0\n');
  }

  async powerOn(): Promise<void> {
    if (this.running) return;
    const pxe = this.pxePending;
    this.pxePending = false;
    rmSync(join(this.dir, 'boot'), { force: true });
    const qmpPath = join(this.dir, 'qmp.sock');
    rmSync(qmpPath, { force: true });
    const q = this.spawnDaemon('qemu', [
      ...this.nsExec, 'qemu-system-x86_64',
      '-accel', 'tcg', '-m', '256', '-smp', '1',
      '-nographic', '-monitor', 'none',
      '-chardev', `file,id=ser0,path=${this.serialLog},append=on`, '-serial', 'chardev:ser0',
      '-qmp', `unix:${qmpPath},server=on,wait=off`,
      '-drive', `file=${this.disk},if=none,id=d0,format=raw`,
      '-device', 'virtio-blk-pci,drive=d0,bootindex=1',
      '-netdev', 'tap,id=n0,ifname=tap0,script=no,downscript=no',
      '-device', `e1000,netdev=n0,mac=${this.mac},id=nic0,bootindex=${pxe ? 0 : 2}`,
    ]);
    this.qemu = q;
    q.on('close', () => {
      if (this.qemu === q) {
        this.qemu = undefined;
        this.setPower(false);
      }
    });
    this.setPower(true);
    this.qmp = new Qmp();
    await this.qmp.connect(qmpPath);
    // The boot order was fixed at start; the override is for this boot only.
    if (pxe) await this.qmp.cmd('qom-set', { path: '/machine/peripheral/nic0', property: 'bootindex', value: 2 });
  }

  async powerOff(): Promise<void> {
    const q = this.qemu;
    if (!q || !this.running) return;
    const closed = new Promise<void>((r) => q.once('close', () => r()));
    await this.qmp?.cmd('quit').catch(() => undefined);
    const t = setTimeout(() => q.kill('SIGKILL'), 5000);
    await closed;
    clearTimeout(t);
    this.qmp?.close();
    this.setPower(false);
  }

  async reset(): Promise<void> {
    if (!this.running || !this.qmp) return; // like real BMCs: reset of a powered-off machine does nothing
    const pxe = this.pxePending;
    this.pxePending = false;
    rmSync(join(this.dir, 'boot'), { force: true });
    if (pxe) await this.qmp.cmd('qom-set', { path: '/machine/peripheral/nic0', property: 'bootindex', value: 0 });
    const resetSeen = new Promise<void>((resolve) => {
      const prev = this.qmp!.onEvent;
      this.qmp!.onEvent = (ev) => {
        if (ev.event === 'RESET') {
          this.qmp!.onEvent = prev;
          resolve();
        }
      };
    });
    await this.qmp.cmd('system_reset');
    await Promise.race([resetSeen, sleep(2000)]);
    if (pxe) await this.qmp.cmd('qom-set', { path: '/machine/peripheral/nic0', property: 'bootindex', value: 2 });
  }

  /** Breaks the disk's boot partition: zeroes sector 0 (the FAT boot sector with syslinux). */
  zeroBootSector(): void {
    const fd = openSync(this.disk, 'r+');
    try {
      writeSync(fd, Buffer.alloc(512), 0, 512, 0);
    } finally {
      closeSync(fd);
    }
  }

  bootSectorIsZero(): boolean {
    const fd = openSync(this.disk, 'r');
    try {
      const b = Buffer.alloc(512);
      readSync(fd, b, 0, 512, 0);
      return b.every((x) => x === 0);
    } finally {
      closeSync(fd);
    }
  }

  /** Waits for a line matching `re` in a log, seen at or after `since`; returns its time. */
  async waitFor(log: LabEvent[], re: RegExp, since: number, timeoutMs: number, what: string): Promise<LabEvent> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      for (const f of this.followers) f.poll();
      const hit = log.find((e) => e.at >= since && re.test(e.line));
      if (hit) return hit;
      if (Date.now() > deadline) {
        const tail = this.serial.slice(-15).map((e) => `  serial| ${e.line}`).join('\n');
        const dns = this.dnsmasqLog.slice(-8).map((e) => `  dnsmasq| ${e.line}`).join('\n');
        throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}\n${tail}\n${dns}`);
      }
      await sleep(100);
    }
  }

  /** ping from the namespace (the lab's "network") to an address; retries while the link comes up. */
  async ping(ip: string, timeoutMs = 15_000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (spawnSync('ip', ['netns', 'exec', this.ns, '/bin/busybox', 'ping', '-c', '1', '-W', '1', ip]).status === 0) return true;
      await sleep(500);
    }
    return false;
  }

  /** Every process in the lab's namespace (ours: dnsmasq under kiver pxe serve, qemu, ...). */
  private nsPids(): number[] {
    const r = spawnSync('ip', ['netns', 'pids', this.ns], { encoding: 'utf8' });
    return (r.stdout ?? '').split('\n').map(Number).filter((n) => Number.isInteger(n) && n > 0);
  }

  private killAllSync(): void {
    for (const p of this.procs) {
      try { p.kill('SIGKILL'); } catch { /* gone */ }
    }
    for (const pid of this.nsPids()) {
      try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
    }
    spawnSync('ip', ['netns', 'del', this.ns]);
    if (!(this.opts.keep || process.env.KIVER_LAB_KEEP)) rmSync(this.dir, { recursive: true, force: true });
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const f of this.followers) f.stop();
    this.qmp?.close();
    this.kiverBridge?.close();
    const waits = [...this.procs].map((p) => new Promise<void>((r) => {
      if (p.exitCode !== null || p.signalCode !== null) return r();
      p.once('close', () => r());
      p.kill('SIGTERM');
      setTimeout(() => { try { p.kill('SIGKILL'); } catch { /* gone */ } }, 2000).unref();
    }));
    await Promise.all(waits);
    for (const pid of this.nsPids()) {
      try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
    }
    await this.http?.close().catch(() => undefined);
    spawnSync('ip', ['netns', 'del', this.ns]);
    if (!(this.opts.keep || process.env.KIVER_LAB_KEEP)) rmSync(this.dir, { recursive: true, force: true });
    process.off('exit', this.exitHook);
    process.off('SIGTERM', this.signalHook);
    process.off('SIGINT', this.signalHook);
  }
}
