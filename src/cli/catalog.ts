import type { Command } from 'commander';
import { clientFromEnv } from './config.js';
import { print, table } from './output.js';
import type { CatalogEntry } from '../services/catalog.js';

function range(p: CatalogEntry['params'][number]): string {
  if (p.kind === 'integer') return `${p.min}..${p.max}${p.unit ? ` ${p.unit}` : ''}`;
  if (p.kind === 'enum') return p.values.join('|');
  return 'true|false';
}

/** `kiver catalog ls`: the service types, their versions and parameters. */
export function registerCatalog(program: Command): void {
  const cat = program.command('catalog').description('service types (app, mysql, redis) and their parameters');
  cat.command('ls').alias('list').description('list service types with versions and parameters').action(async (_o, cmd: Command) => {
    const entries = await clientFromEnv().get<CatalogEntry[]>('/v1/catalog');
    print(cmd, entries, () => [
      table(entries.map((e) => [e.type, e.version, e.image, e.replicas ? `${e.replicas.min}..${e.replicas.max} (default ${e.replicas.default})` : '-', e.description]),
        ['TYPE', 'VERSION', 'IMAGE', 'REPLICAS', 'DESCRIPTION']),
      '',
      table(entries.flatMap((e) => e.params.map((p) => [e.type, p.name, range(p), String(p.default), p.description])),
        ['TYPE', 'PARAMETER', 'RANGE', 'DEFAULT', 'DESCRIPTION']),
    ].join('\n'));
  });
}
