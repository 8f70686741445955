/**
 * The Docker network of an IP pool on this node, created on first use: macvlan or ipvlan
 * (L2) on the pool's parent interface — `<parent>.<vlan>` with a VLAN, which Docker creates
 * as an 802.1Q sub-interface — or a bridge for a single machine. Same name on every node
 * (kiver-<pool>), so a replica moved to another node finds its network there.
 */
import type Docker from 'dockerode';
import type { ReplicaNetwork } from '../../model/pool.js';
import { KiverError } from '../../errors.js';

export class NetworkMismatchError extends KiverError {
  override readonly status: number = 409;
  override readonly code: string = 'conflict';
}

function parentOf(n: ReplicaNetwork): string | undefined {
  return n.parent && n.vlan ? `${n.parent}.${n.vlan}` : n.parent;
}

export async function ensurePoolNetwork(docker: Docker, n: ReplicaNetwork): Promise<void> {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const info = await docker.getNetwork(n.network).inspect() as { Driver: string; IPAM?: { Config?: { Subnet?: string }[] }; Options?: Record<string, string> };
      const subnets = (info.IPAM?.Config ?? []).map((c) => c.Subnet);
      // A network of that name made for something else would put the replica on the wrong segment.
      if (info.Driver !== n.driver || !subnets.includes(n.cidr) || (info.Options?.parent ?? undefined) !== parentOf(n)) {
        throw new NetworkMismatchError(`Docker network ${n.network} exists as ${info.Driver} ${subnets.join(',')}${info.Options?.parent ? ` on ${info.Options.parent}` : ''}, not ${n.driver} ${n.cidr}${parentOf(n) ? ` on ${parentOf(n)}` : ''}; remove it (docker network rm ${n.network}) and Kiver recreates it`);
      }
      return;
    } catch (err) {
      if ((err as { statusCode?: number }).statusCode !== 404) throw err;
    }
    const parent = parentOf(n);
    try {
      await docker.createNetwork({
        Name: n.network,
        Driver: n.driver,
        CheckDuplicate: true,
        EnableIPv6: n.family === 6,
        IPAM: { Driver: 'default', Config: [{ Subnet: n.cidr, ...(n.gateway ? { Gateway: n.gateway } : {}) }] },
        Options: parent ? { parent, ...(n.driver === 'ipvlan' ? { ipvlan_mode: 'l2' } : {}) } : {},
        Labels: { 'kiver.managed': 'true', 'kiver.pool': n.pool },
      });
      return;
    } catch (err) {
      // Created meanwhile (another replica's create): inspect it again.
      if ((err as { statusCode?: number }).statusCode !== 409) throw err;
    }
  }
}
