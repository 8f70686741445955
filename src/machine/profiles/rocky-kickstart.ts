/** Rocky Linux / CentOS kickstart: unattended install, ends with Kiver's post-install call. */
import type { InstallContext, OsProfile } from './index.js';
import { postInstallScript } from './post-install.js';

export function renderRockyKickstart(profile: OsProfile, ctx: InstallContext): string {
  const p = profile.params ?? {};
  const disk = (p.disk ?? '/dev/sda').replace(/^\/dev\//, '');
  return `# Kiver kickstart for ${ctx.machine} (${ctx.mac}), profile ${profile.name}
text
${p.repo ? `url --url=${p.repo}` : ''}
lang en_US.UTF-8
keyboard us
timezone Etc/UTC --utc
network --bootproto=dhcp --hostname=${ctx.identity.hostname}
${p.rootPasswordHash ? `rootpw --iscrypted ${p.rootPasswordHash}` : 'rootpw --lock'}
${p.sshKey ? `sshkey --username=root "${p.sshKey}"` : ''}
ignoredisk --only-use=${disk}
zerombr
clearpart --all --initlabel --drives=${disk}
autopart --type=plain
bootloader --location=mbr --boot-drive=${disk}
reboot

%packages
@^minimal-environment
curl
%end

# Kiver post-install: pull identity from the config center, apply it, report installed.
%post --log=/root/kiver-post-install.log
${postInstallScript(ctx, 'networkmanager', '')}%end
`;
}
