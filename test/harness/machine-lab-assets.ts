// Assets of the provisioning lab: the Debian packages it needs, a Debian kernel for
// the test machine, the busybox initramfs that plays the installer (and, booted from
// disk, the installed OS), and the FAT "OS image" with syslinux that the installer
// writes to the machine's disk.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync, rmSync, copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';

export const LAB_PACKAGES = [
  'qemu-system-x86', 'ipxe', 'dnsmasq-base', 'openipmi', 'ipmitool', 'pxelinux', 'syslinux-common',
  'syslinux', 'mtools', 'dosfstools', 'busybox-static', 'iproute2',
];

const NEEDED: [string, string][] = [
  ['/usr/bin/qemu-system-x86_64', 'qemu-system-x86'],
  ['/usr/sbin/dnsmasq', 'dnsmasq-base'],
  ['/usr/bin/ipmi_sim', 'openipmi'],
  ['/usr/bin/ipmitool', 'ipmitool'],
  ['/usr/lib/PXELINUX/lpxelinux.0', 'pxelinux'],
  ['/usr/lib/syslinux/modules/bios/ldlinux.c32', 'syslinux-common'],
  ['/usr/bin/syslinux', 'syslinux'],
  ['/usr/bin/mcopy', 'mtools'],
  ['/usr/sbin/mkfs.vfat', 'dosfstools'],
  ['/usr/lib/ipxe/qemu/efi-e1000.rom', 'ipxe'],
  ['/bin/busybox', 'busybox-static'],
];

function run(cmd: string, args: string[], opts: { cwd?: string; input?: Buffer } = {}): string {
  const r = spawnSync(cmd, args, { cwd: opts.cwd, input: opts.input, encoding: 'buffer', maxBuffer: 256 * 1024 * 1024 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr?.toString().slice(-800)}`);
  return r.stdout.toString();
}

function busyboxIsStatic(): boolean {
  const r = spawnSync('ldd', ['/bin/busybox'], { encoding: 'utf8' });
  return /not a dynamic executable/.test(r.stdout + r.stderr);
}

/** What is missing to run the lab, as Debian package names. */
export function missingLabPackages(): string[] {
  const miss = new Set<string>();
  for (const [path, pkg] of NEEDED) if (!existsSync(path)) miss.add(pkg);
  if (existsSync('/bin/busybox') && !busyboxIsStatic()) miss.add('busybox-static');
  return [...miss];
}

/**
 * Installs the lab's packages when missing (root only; CI and fresh machines). Returns
 * a reason string when the lab cannot run here, undefined when ready.
 */
export function ensureLabPackages(log: (s: string) => void = () => undefined): string | undefined {
  if (process.getuid?.() !== 0) return 'the machine lab needs root (network namespaces, tap devices)';
  let miss = missingLabPackages();
  if (miss.length === 0) return undefined;
  if (process.env.KIVER_LAB_NO_INSTALL) return `missing packages: ${miss.join(' ')}`;
  log(`installing ${miss.join(' ')} ...`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const install = () => spawnSync('apt-get', ['install', '-y', '--no-install-recommends', ...miss], { env, encoding: 'utf8' });
  let r = install();
  if (r.status !== 0) {
    spawnSync('apt-get', ['update'], { env, encoding: 'utf8' });
    r = install();
  }
  miss = missingLabPackages();
  return miss.length ? `could not install ${miss.join(' ')}: ${r.stderr?.slice(-400)}` : undefined;
}

export const KERNEL_MODULES = [
  'kernel/drivers/virtio/virtio.ko',
  'kernel/drivers/virtio/virtio_ring.ko',
  'kernel/drivers/virtio/virtio_pci_modern_dev.ko',
  'kernel/drivers/virtio/virtio_pci_legacy_dev.ko',
  'kernel/drivers/virtio/virtio_pci.ko',
  'kernel/drivers/block/virtio_blk.ko',
  'kernel/drivers/net/ethernet/intel/e1000/e1000.ko',
  'kernel/fs/fat/fat.ko',
  'kernel/fs/fat/vfat.ko',
  'kernel/fs/nls/nls_cp437.ko',
  'kernel/fs/nls/nls_ascii.ko',
];

export interface Kernel {
  vmlinuz: string;
  /** Module files in load order. */
  modules: string[];
}

/**
 * A Debian kernel for the test machine: `apt-get download` the package that
 * linux-image-amd64 depends on, unpack vmlinuz and the few modules needed. Cached.
 */
export function ensureKernel(cacheDir: string, log: (s: string) => void = () => undefined): Kernel {
  mkdirSync(cacheDir, { recursive: true });
  const done = join(cacheDir, 'kernel', 'READY');
  if (!existsSync(done)) {
    const deps = run('apt-cache', ['depends', 'linux-image-amd64']);
    const m = /Depends: (linux-image-[0-9][^\s]*)/.exec(deps);
    if (!m) throw new Error(`cannot find the kernel package behind linux-image-amd64: ${deps}`);
    const debDir = join(cacheDir, 'deb');
    rmSync(debDir, { recursive: true, force: true });
    mkdirSync(debDir, { recursive: true });
    log(`downloading ${m[1]} ...`);
    run('apt-get', ['download', m[1]], { cwd: debDir });
    const deb = readdirSync(debDir).find((f) => f.endsWith('.deb'));
    if (!deb) throw new Error('apt-get download produced no .deb');
    const out = join(cacheDir, 'kernel');
    rmSync(out, { recursive: true, force: true });
    mkdirSync(out, { recursive: true });
    const tar = spawnSync('sh', ['-c', `dpkg --fsys-tarfile "$1" | tar -x -C "$2" --wildcards './boot/vmlinuz-*' ${KERNEL_MODULES.map((k) => `'./lib/modules/*/${k}'`).join(' ')}`, 'sh', join(debDir, deb), out], { encoding: 'utf8' });
    if (tar.status !== 0) throw new Error(`unpacking the kernel failed: ${tar.stderr}`);
    rmSync(debDir, { recursive: true, force: true });
    writeFileSync(done, m[1] + '\n');
  }
  const out = join(cacheDir, 'kernel');
  const vmlinuz = readdirSync(join(out, 'boot')).find((f) => f.startsWith('vmlinuz-'));
  const ver = readdirSync(join(out, 'lib', 'modules'))[0];
  if (!vmlinuz || !ver) throw new Error(`incomplete kernel cache in ${out}; delete it`);
  return { vmlinuz: join(out, 'boot', vmlinuz), modules: KERNEL_MODULES.map((k) => join(out, 'lib', 'modules', ver, k)) };
}

// -----------------------------------------------------------------------------------
// cpio (newc) writer: enough for an initramfs of directories, files and symlinks.

interface CpioEntry {
  name: string;
  mode: number;
  data?: Buffer;
}

function cpio(entries: CpioEntry[]): Buffer {
  const parts: Buffer[] = [];
  let ino = 1;
  const pad4 = (n: number) => Buffer.alloc((4 - (n % 4)) % 4);
  const push = (e: CpioEntry) => {
    const data = e.data ?? Buffer.alloc(0);
    const name = Buffer.from(e.name + '\0');
    const hex = (n: number) => n.toString(16).padStart(8, '0');
    const hdr = '070701' + [ino++, e.mode, 0, 0, 1, 0, data.length, 0, 0, 0, 0, name.length, 0].map(hex).join('');
    parts.push(Buffer.from(hdr), name, pad4(110 + name.length), data, pad4(data.length));
  };
  for (const e of entries) push(e);
  push({ name: 'TRAILER!!!', mode: 0 });
  return Buffer.concat(parts);
}

/**
 * The busybox /init. With `kiver.token` on the command line it is the installer:
 * DHCP, GET the config center with its MAC and token, write the OS image to the disk,
 * apply the identity (on the disk's syslinux.cfg), report installed, reboot. With
 * `kiver.os=1` it is the installed OS: apply hostname and address, say so, idle.
 */
export const INIT_SCRIPT = `#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
# Load the modules, retrying until no more load (no modules.dep: order by trial).
left="virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_blk e1000 fat vfat nls_cp437 nls_ascii"
for round in 1 2 3 4; do
  again=""
  for m in $left; do insmod /lib/modules/$m.ko 2>/dev/null || again="$again $m"; done
  left="$again"
done
[ -z "$left" ] || echo "kiver-init: could not load:$left"
arg() { for a in $(cat /proc/cmdline); do case "$a" in "$1="*) echo "\${a#*=}";; esac; done; }
say() { echo "kiver-$MODE: $*"; }
idle() { while true; do sleep 3600; done; }
fail() { say "FAILED: $*"; idle; }
iface_of() { for i in 1 2 3 4 5 6 7 8 9 10; do for d in /sys/class/net/*; do [ "$(cat $d/address 2>/dev/null)" = "$1" ] && { basename $d; return; }; done; sleep 0.5; done; }
MAC=$(arg kiver.mac)
if [ -n "$(arg kiver.token)" ]; then
  MODE=installer
  TOKEN=$(arg kiver.token); URL=$(arg kiver.url); IMAGE=$(arg kiver.image)
  say "started for $MAC"
  IFACE=$(iface_of "$MAC"); [ -n "$IFACE" ] || fail "no NIC with MAC $MAC"
  ip link set lo up; ip link set "$IFACE" up
  udhcpc -i "$IFACE" -s /etc/udhcpc.sh -q -n -t 20 -T 1 >/dev/null 2>&1 || fail "no DHCP lease"
  say "dhcp ok on $IFACE"
  wget -q -O /tmp/identity --header "X-Kiver-Install-Token: $TOKEN" "$URL/$MAC?format=shell" || fail "config center refused"
  . /tmp/identity
  say "identity $KIVER_HOSTNAME $KIVER_IP/$KIVER_PREFIX gw $KIVER_GATEWAY"
  for i in 1 2 3 4 5 6 7 8 9 10; do [ -b /dev/vda ] && break; sleep 0.3; done
  [ -b /dev/vda ] || fail "no disk /dev/vda"
  wget -q -O /tmp/os.img.gz "$IMAGE" || fail "downloading the OS image"
  gunzip -t /tmp/os.img.gz || fail "the OS image is corrupt"
  gunzip -c /tmp/os.img.gz | dd of=/dev/vda bs=1M conv=fsync 2>/dev/null || fail "writing the disk"
  rm -f /tmp/os.img.gz
  mkdir -p /mnt; mount -t vfat /dev/vda /mnt || fail "mounting the new disk"
  cat > /mnt/syslinux.cfg <<EOT
DEFAULT os
PROMPT 0
TIMEOUT 0
LABEL os
  KERNEL vmlinuz
  APPEND initrd=initrd.img console=ttyS0 quiet kiver.os=1 kiver.mac=$MAC kiver.hostname=$KIVER_HOSTNAME kiver.ip=$KIVER_IP/$KIVER_PREFIX kiver.gw=$KIVER_GATEWAY
EOT
  cp /tmp/identity /mnt/identity.txt
  umount /mnt; sync
  say "disk written"
  wget -q -O /dev/null --header "X-Kiver-Install-Token: $TOKEN" --post-data "" "$URL/$MAC/installed" || fail "reporting installed"
  say "reported installed; rebooting"
  sleep 1
  reboot -f
elif [ -n "$(arg kiver.os)" ]; then
  MODE=os
  H=$(arg kiver.hostname); IP=$(arg kiver.ip); GW=$(arg kiver.gw)
  hostname "$H"
  IFACE=$(iface_of "$MAC")
  ip link set lo up
  if [ -n "$IFACE" ]; then ip link set "$IFACE" up; ip addr add "$IP" dev "$IFACE"; [ -n "$GW" ] && ip route add default via "$GW"; fi
  say "booted from disk: hostname=$(hostname) ip=$IP iface=$IFACE"
  idle
else
  MODE=init
  say "no kiver arguments; idle"
  idle
fi
`;

export const UDHCPC_SCRIPT = `#!/bin/sh
case "$1" in
  bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/\${mask:-24}" dev "$interface"
    [ -n "$router" ] && ip route add default via "\${router%% *}" 2>/dev/null
    ;;
esac
exit 0
`;

/** Builds the gzip'd initramfs (busybox + /init + modules). */
export function buildInitramfs(kernel: Kernel, out: string): void {
  const entries: CpioEntry[] = [];
  for (const d of ['bin', 'dev', 'proc', 'sys', 'tmp', 'mnt', 'etc', 'lib', 'lib/modules']) entries.push({ name: d, mode: 0o040755 });
  entries.push({ name: 'bin/busybox', mode: 0o100755, data: readFileSync('/bin/busybox') });
  entries.push({ name: 'init', mode: 0o100755, data: Buffer.from(INIT_SCRIPT) });
  entries.push({ name: 'etc/udhcpc.sh', mode: 0o100755, data: Buffer.from(UDHCPC_SCRIPT) });
  for (const m of kernel.modules) entries.push({ name: `lib/modules/${m.split('/').pop()}`, mode: 0o100644, data: readFileSync(m) });
  writeFileSync(out, gzipSync(cpio(entries), { level: 6 }));
}

/**
 * The "OS image": a 24 MiB FAT file system with syslinux in its boot sector, the
 * kernel and initramfs, and a placeholder syslinux.cfg the installer rewrites with the
 * machine's identity. Written gzip'd (`os.img.gz`).
 */
export function buildOsImage(kernel: Kernel, initrd: string, workDir: string): string {
  const img = join(workDir, 'os.img');
  rmSync(img, { force: true });
  run('mkfs.vfat', ['-n', 'KIVEROS', '-C', img, String(24 * 1024)]);
  const cfg = join(workDir, 'syslinux.cfg');
  writeFileSync(cfg, 'DEFAULT os\nPROMPT 0\nTIMEOUT 0\nLABEL os\n  KERNEL vmlinuz\n  APPEND initrd=initrd.img console=ttyS0 quiet\n');
  const env = ['-i', img];
  run('mcopy', [...env, kernel.vmlinuz, '::/vmlinuz']);
  run('mcopy', [...env, initrd, '::/initrd.img']);
  run('mcopy', [...env, cfg, '::/syslinux.cfg']);
  run('syslinux', ['--install', img]);
  const gz = `${img}.gz`;
  writeFileSync(gz, gzipSync(readFileSync(img), { level: 1 }));
  rmSync(img, { force: true });
  return gz;
}

/** FRU data (IPMI FRU spec 1.0) with a Product Info area whose custom field says MAC0=…. */
export function fruWithMac(mac: string): number[] {
  const tl = (s: string) => [0xc0 | Buffer.byteLength(s), ...Buffer.from(s)];
  const area = [1, 0, 0, ...tl('Kiver Lab'), ...tl('QEMU PC'), ...tl('KV-1'), ...tl('1'), ...tl('SN0001'), ...tl(''), ...tl(''), ...tl(`MAC0=${mac}`), 0xc1];
  while ((area.length + 1) % 8) area.push(0);
  area[1] = (area.length + 1) / 8;
  area.push((256 - (area.reduce((a, b) => a + b, 0) % 256)) % 256);
  const hdr = [1, 0, 0, 0, 1, 0, 0];
  hdr.push((256 - (hdr.reduce((a, b) => a + b, 0) % 256)) % 256);
  return [...hdr, ...area];
}

export function hashOf(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex').slice(0, 12);
}

export function copyInto(src: string, dst: string): void {
  copyFileSync(src, dst);
  statSync(dst);
}
