import type { Command } from 'commander';
import { clientFromEnv } from './config.js';
import { print, table } from './output.js';
import { collect, parseInteger, parsePoolScope } from './flags.js';
import type { AuditView, PoolView } from '../model/pool.js';

function scope(p: PoolView): string {
  return 'service' in p.scope ? `service ${p.scope.service}` : 'app' in p.scope ? `app ${p.scope.app}` : 'global';
}

function poolTable(ps: PoolView[]): string {
  return table(
    ps.map((p) => [p.name, p.cidr, scope(p), `${p.allocated}/${p.size}`, p.gateway ?? '-', p.driver + (p.parent ? ` ${p.parent}${p.vlan ? `.${p.vlan}` : ''}` : '')]),
    ['NAME', 'CIDR', 'SCOPE', 'ALLOCATED', 'GATEWAY', 'NETWORK'],
  );
}

export function registerPool(program: Command): void {
  const pool = program.command('pool').description('IP pools: fixed addresses for replicas (service → app → global)');

  pool.command('create <name>')
    .description('create a pool for one service, one app, or everyone (--global, the fallback)')
    .requiredOption('--cidr <cidr>', 'e.g. 10.1.0.0/24 or fd00:1::/64')
    .option('--range <first-last>', 'hand out only these addresses (repeatable; default the whole CIDR)', collect, [])
    .option('--exclude <first-last>', 'never hand out these (repeatable)', collect, [])
    .option('--gateway <ip>', "the segment's gateway (never handed out)")
    .option('--vlan <id>', '802.1Q VLAN id 1-4094 (the agent uses <parent>.<id>)')
    .option('--parent <iface>', "the nodes' interface on the pool's L2 segment (macvlan by default)")
    .option('--driver <driver>', 'bridge (one machine; default without --parent) | macvlan | ipvlan')
    .option('--service <name>', 'only this service draws from it')
    .option('--app <name>', 'the services of this app draw from it')
    .option('--global', 'every service falls back to it')
    .action(async (name: string, o, cmd: Command) => {
      const body: Record<string, unknown> = { name, cidr: o.cidr, scope: parsePoolScope(o) };
      if (o.range.length) body.ranges = o.range;
      if (o.exclude.length) body.excludes = o.exclude;
      if (o.gateway !== undefined) body.gateway = o.gateway;
      if (o.vlan !== undefined) body.vlan = parseInteger(o.vlan, 'vlan');
      if (o.parent !== undefined) body.parent = o.parent;
      if (o.driver !== undefined) body.driver = o.driver;
      const p = await clientFromEnv().post<PoolView>('/v1/pools', body);
      print(cmd, p, () => `pool ${p.name} created (${p.size} addresses, ${scope(p)})`);
    });

  pool.command('ls').alias('list').description('list pools').action(async (_o, cmd: Command) => {
    const ps = await clientFromEnv().get<PoolView[]>('/v1/pools');
    print(cmd, ps, () => poolTable(ps));
  });

  pool.command('get <name>').description('show a pool').action(async (name: string, _o, cmd: Command) => {
    const p = await clientFromEnv().get<PoolView>(`/v1/pools/${encodeURIComponent(name)}`);
    print(cmd, p, () => [poolTable([p]), p.ranges.length ? `ranges:   ${p.ranges.join(', ')}` : '', p.excludes.length ? `excludes: ${p.excludes.join(', ')}` : ''].filter(Boolean).join('\n'));
  });

  pool.command('delete <name>').alias('rm').description('delete a pool (refused while it has allocations)').action(async (name: string, _o, cmd: Command) => {
    await clientFromEnv().delete<unknown>(`/v1/pools/${encodeURIComponent(name)}`);
    print(cmd, { deleted: name }, () => `pool ${name} deleted`);
  });

  pool.command('audit [name]')
    .description('allocated / in use / leaked / conflicting addresses; --reclaim frees the leaked ones')
    .option('--reclaim', 'free leaked addresses now (owner gone past its grace, no node holds it)')
    .action(async (name: string | undefined, o, cmd: Command) => {
      const q = name ? `?pool=${encodeURIComponent(name)}` : '';
      const a = o.reclaim
        ? await clientFromEnv().post<AuditView>(`/v1/pool-audit/reclaim${q}`, {})
        : await clientFromEnv().get<AuditView>(`/v1/pool-audit${q}`);
      print(cmd, a, () => [
        `allocated ${a.allocated}, in use ${a.inUse}, leaked ${a.leaked}, conflicting ${a.conflicting}${o.reclaim ? `, reclaimed ${a.reclaimed}` : ''}`,
        table(a.rows.map((r) => [r.pool, r.ip, r.owner, r.state, r.holders.join(',') || '-', r.note ?? '']), ['POOL', 'ADDRESS', 'OWNER', 'STATE', 'HELD ON', 'NOTE']),
      ].join('\n'));
    });
}
