/** Debian installer preseed (d-i): unattended install, ends with Kiver's post-install call. */
import type { InstallContext, OsProfile } from './index.js';
import { postInstallScript } from './post-install.js';

export function renderDebianPreseed(profile: OsProfile, ctx: InstallContext): string {
  const p = profile.params ?? {};
  const mirror = new URL(p.mirror ?? 'http://deb.debian.org/debian');
  const disk = p.disk ?? '/dev/sda';
  const post = Buffer.from(postInstallScript(ctx, 'ifupdown', '')).toString('base64');
  return `# Kiver preseed for ${ctx.machine} (${ctx.mac}), profile ${profile.name}
d-i debian-installer/locale string en_US.UTF-8
d-i keyboard-configuration/xkb-keymap select us
d-i netcfg/choose_interface select auto
d-i netcfg/get_hostname string ${ctx.identity.hostname.split('.')[0]}
d-i netcfg/get_domain string ${ctx.identity.hostname.split('.').slice(1).join('.')}
d-i mirror/country string manual
d-i mirror/http/hostname string ${mirror.host}
d-i mirror/http/directory string ${mirror.pathname}
d-i mirror/http/proxy string
d-i passwd/root-login boolean true
d-i passwd/make-user boolean false
${p.rootPasswordHash ? `d-i passwd/root-password-crypted password ${p.rootPasswordHash}` : 'd-i passwd/root-password-crypted password !'}
d-i clock-setup/utc boolean true
d-i time/zone string Etc/UTC
d-i partman-auto/disk string ${disk}
d-i partman-auto/method string regular
d-i partman-auto/choose_recipe select atomic
d-i partman-partitioning/confirm_write_new_label boolean true
d-i partman/choose_partition select finish
d-i partman/confirm boolean true
d-i partman/confirm_nooverwrite boolean true
tasksel tasksel/first multiselect standard, ssh-server
d-i pkgsel/include string openssh-server curl
popularity-contest popularity-contest/participate boolean false
d-i grub-installer/only_debian boolean true
d-i grub-installer/bootdev string ${disk}
d-i finish-install/reboot_in_progress note
# Kiver post-install: pull identity from the config center, apply it, report installed.
d-i preseed/late_command string echo ${post} | base64 -d > /target/root/kiver-post-install.sh; in-target sh /root/kiver-post-install.sh
`;
}
