/**
 * Partitions between one test host and some TCP ports elsewhere, with iptables in the
 * host's own network namespace (nothing changes in the root namespace): e.g. a server
 * in a test host cut off from etcd while its API stays reachable.
 */
import type { TestHost } from './hosts.js';

function rule(dest: string, ports: number[]): string[] {
  return ['OUTPUT', '-p', 'tcp', '-d', dest, '-m', 'multiport', '--dports', ports.join(','), '-j', 'DROP', '-m', 'comment', '--comment', 'kiver-test-partition'];
}

/** Drops everything the host sends to dest:ports (connections in flight hang, new ones time out). */
export async function cutOff(host: TestHost, dest: string, ports: number[]): Promise<void> {
  await host.exec(['iptables', '-I', ...rule(dest, ports)]);
}

/** Removes the rule cutOff added. */
export async function heal(host: TestHost, dest: string, ports: number[]): Promise<void> {
  await host.exec(['iptables', '-D', ...rule(dest, ports)], { allowFail: true });
}
