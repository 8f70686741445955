/** `kiver service credentials|endpoints|switchover`: what managed (catalog) services add. */
import type { Command } from 'commander';
import { clientFromEnv } from './config.js';
import { print, table } from './output.js';
import { parseInteger } from './flags.js';
import type { ServiceRoles } from '../model/service-roles.js';

interface Endpoints {
  service: string;
  type: string;
  write: { host: string; port: number };
  read: { host: string; port: number };
  primary?: { ordinal: number; node: string; host: string; port: number };
  replicas: { ordinal: number; node: string; host: string; port: number; role: string }[];
}

/** The ROLE and LAG cells of a replica row in `kiver service get`. */
export function roleCells(roles: ServiceRoles | undefined, ordinal: number): string[] {
  const r = roles?.replicas.find((x) => x.ordinal === ordinal);
  const role = roles?.primary === ordinal ? 'primary' : r?.role ?? (roles ? 'unknown' : '-');
  return [role, r?.lagSeconds !== undefined ? `${r.lagSeconds}s` : '-'];
}

export function registerServiceCatalog(svc: Command): void {
  svc.command('credentials <name>')
    .description("a managed service's generated credentials (admin token only; -o json for all of them)")
    .action(async (name: string, _o, cmd: Command) => {
      const c = await clientFromEnv().get<{ user: string; password: string; database?: string; all: Record<string, string> }>(`/v1/services/${encodeURIComponent(name)}/credentials`);
      print(cmd, c, () => [`User:      ${c.user}`, `Password:  ${c.password}`, c.database ? `Database:  ${c.database}` : ''].filter(Boolean).join('\n'));
    });

  svc.command('endpoints <name>')
    .description('the write endpoint (follows the primary) and the read endpoint (spread over replicas)')
    .action(async (name: string, _o, cmd: Command) => {
      const e = await clientFromEnv().get<Endpoints>(`/v1/services/${encodeURIComponent(name)}/endpoints`);
      print(cmd, e, () => [
        `Write:  ${e.write.host}:${e.write.port}   (always the primary${e.primary ? `, now replica ${e.primary.ordinal} on ${e.primary.node}` : ', none now'})`,
        `Read:   ${e.read.host}:${e.read.port}   (replicas in turn)`,
        '',
        table(e.replicas.map((r) => [`${e.service}/${r.ordinal}`, r.role, r.node, `${r.host}:${r.port}`]), ['REPLICA', 'ROLE', 'NODE', 'ADDRESS']),
      ].join('\n'));
    });

  svc.command('switchover <name>')
    .description('planned switchover: the primary hands over to a replica (the most advanced, or --to ORDINAL) without losing a write')
    .option('--to <ordinal>', 'the replica to promote')
    .action(async (name: string, o, cmd: Command) => {
      const body = o.to !== undefined ? { to: parseInteger(o.to, 'to', 0) } : {};
      const r = await clientFromEnv().post<ServiceRoles>(`/v1/services/${encodeURIComponent(name)}/switchover`, body);
      print(cmd, r, () => `switchover of ${name} requested${o.to !== undefined ? ` to replica ${o.to}` : ''}; see kiver service get ${name}`);
    });
}
