/** Ubuntu Server autoinstall (subiquity, cloud-init NoCloud user-data); ends with Kiver's post-install call. */
import type { InstallContext, OsProfile } from './index.js';
import { postInstallScript } from './post-install.js';

export function renderUbuntuAutoinstall(profile: OsProfile, ctx: InstallContext): string {
  const p = profile.params ?? {};
  const post = Buffer.from(postInstallScript(ctx, 'netplan', '/target')).toString('base64');
  const hostname = ctx.identity.hostname.split('.')[0];
  return `#cloud-config
# Kiver autoinstall for ${ctx.machine} (${ctx.mac}), profile ${profile.name}
autoinstall:
  version: 1
  locale: en_US.UTF-8
  keyboard: {layout: us}
  identity:
    hostname: ${hostname}
    username: kiver
    password: "${p.rootPasswordHash ?? '!'}"
  ssh:
    install-server: true
${p.sshKey ? `    authorized-keys: ["${p.sshKey}"]\n` : ''}  storage:
    layout: {name: direct${p.disk ? `, match: {path: ${p.disk}}` : ''}}
${p.mirror ? `  apt:\n    primary: [{arches: [default], uri: "${p.mirror}"}]\n` : ''}  packages: [curl]
  late-commands:
    # Kiver post-install: pull identity from the config center, apply it, report installed.
    - echo ${post} | base64 -d > /target/root/kiver-post-install.sh
    - sh /target/root/kiver-post-install.sh
`;
}
