/**
 * The post-install step every profile ends with, as a POSIX sh script: fetch this
 * machine's identity from the config center with the one-time token, apply it
 * (host name, address, gateway, DNS, NTP), then report `installed` — after which Kiver
 * deletes the boot file at once, so a later network boot cannot reinstall the machine.
 */
import { configCenterUrl, type InstallContext } from './index.js';

export type NetworkStyle = 'ifupdown' | 'networkmanager' | 'netplan';

/** `root` is where the installed system is mounted ('' when run inside it). */
export function postInstallScript(ctx: InstallContext, style: NetworkStyle, root = ''): string {
  const url = `${configCenterUrl(ctx.serverUrl)}/${ctx.mac}`;
  const lines = [
    'set -eu',
    `KIVER_URL='${url}'`,
    `KIVER_TOKEN='${ctx.token}'`,
    `R='${root}'`,
    'fetch() { if command -v curl >/dev/null 2>&1; then curl -fsS -H "X-Kiver-Install-Token: $KIVER_TOKEN" "$@"; else wget -q -O- --header "X-Kiver-Install-Token: $KIVER_TOKEN" "$@"; fi; }',
    'report() { if command -v curl >/dev/null 2>&1; then curl -fsS -X POST -H "X-Kiver-Install-Token: $KIVER_TOKEN" "$KIVER_URL/installed"; else wget -q -O- --header "X-Kiver-Install-Token: $KIVER_TOKEN" --post-data "" "$KIVER_URL/installed"; fi; }',
    'fetch "$KIVER_URL?format=shell" > /tmp/kiver-identity',
    '. /tmp/kiver-identity',
    'IFACE=$(for d in /sys/class/net/*; do [ "$(cat $d/address 2>/dev/null)" = "$KIVER_MAC" ] && basename $d; done | head -n1)',
    '[ -n "$IFACE" ] || IFACE=$(ls /sys/class/net | grep -v ^lo | head -n1)',
    'echo "$KIVER_HOSTNAME" > "$R/etc/hostname"',
    'printf "127.0.0.1 localhost\\n%s %s %s\\n" "$KIVER_IP" "$KIVER_HOSTNAME" "${KIVER_HOSTNAME%%.*}" > "$R/etc/hosts"',
    'cp /tmp/kiver-identity "$R/etc/kiver-identity"',
  ];
  if (style === 'ifupdown') {
    lines.push(
      'cat > "$R/etc/network/interfaces" <<EOT',
      'auto lo',
      'iface lo inet loopback',
      'auto $IFACE',
      'iface $IFACE inet static',
      '  address $KIVER_IP/$KIVER_PREFIX',
      '${KIVER_GATEWAY:+  gateway $KIVER_GATEWAY}',
      'EOT',
    );
  } else if (style === 'networkmanager') {
    lines.push(
      'mkdir -p "$R/etc/NetworkManager/system-connections"',
      'cat > "$R/etc/NetworkManager/system-connections/kiver.nmconnection" <<EOT',
      '[connection]',
      'id=kiver',
      'type=ethernet',
      'interface-name=$IFACE',
      '[ipv4]',
      'method=manual',
      'address1=$KIVER_IP/$KIVER_PREFIX${KIVER_GATEWAY:+,$KIVER_GATEWAY}',
      'dns=$(echo $KIVER_DNS | tr " " ";")',
      'EOT',
      'chmod 600 "$R/etc/NetworkManager/system-connections/kiver.nmconnection"',
    );
  } else {
    lines.push(
      'rm -f "$R"/etc/netplan/*.yaml',
      'cat > "$R/etc/netplan/50-kiver.yaml" <<EOT',
      'network:',
      '  version: 2',
      '  ethernets:',
      '    $IFACE:',
      '      addresses: [$KIVER_IP/$KIVER_PREFIX]',
      '${KIVER_GATEWAY:+      routes: [{to: default, via: $KIVER_GATEWAY}]}',
      '      nameservers: {addresses: [$(echo $KIVER_DNS | tr " " ",")]}',
      'EOT',
      'chmod 600 "$R/etc/netplan/50-kiver.yaml"',
    );
  }
  lines.push(
    'if [ -n "$KIVER_DNS" ]; then : > "$R/etc/resolv.conf.kiver"; for d in $KIVER_DNS; do echo "nameserver $d" >> "$R/etc/resolv.conf.kiver"; done; mv "$R/etc/resolv.conf.kiver" "$R/etc/resolv.conf" || true; fi',
    'if [ -n "$KIVER_NTP" ] && [ -d "$R/etc/systemd" ]; then mkdir -p "$R/etc/systemd/timesyncd.conf.d"; printf "[Time]\\nNTP=%s\\n" "$KIVER_NTP" > "$R/etc/systemd/timesyncd.conf.d/kiver.conf"; fi',
    'report',
  );
  return lines.join('\n') + '\n';
}
