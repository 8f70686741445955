import type { Command } from 'commander';
import { clientFromEnv } from './config.js';
import { age, print, table } from './output.js';
import { writeSecretFile } from '../secret-file.js';

interface TokenInfo { id: string; role: string; node?: string; createdAt: string; revoked?: boolean }
interface NewToken { id: string; role: string; token: string }

/** Shows a new secret once: into a 0600 file with --out, else on stdout (never in a log). */
async function deliver(cmd: Command, t: NewToken, out: string | undefined): Promise<void> {
  if (out) {
    await writeSecretFile(out, t.token);
    return print(cmd, { id: t.id, role: t.role, file: out }, () => `token ${t.id} (${t.role}) written to ${out}`);
  }
  print(cmd, t, () => t.token);
}

/** `kiver admin token ls|create|revoke|rotate`: API tokens, their roles, and the join token's rotation. */
export function registerToken(admin: Command): void {
  const token = admin.command('token').description('API tokens (admin, viewer), the join token and node credentials');
  token.command('ls').alias('list').description('list tokens (never their secrets)').action(async (_o, cmd: Command) => {
    const ts = await clientFromEnv().get<TokenInfo[]>('/v1/tokens');
    print(cmd, ts, () => table(ts.map((t) => [t.id, t.role, t.node ?? '-', t.revoked ? 'rekeyed' : 'active', age(t.createdAt)]), ['ID', 'ROLE', 'NODE', 'STATE', 'AGE']));
  });
  token.command('create').description('create a token; its secret is shown once')
    .requiredOption('--role <role>', 'admin or viewer (read-only: every GET, no secrets)')
    .option('--id <id>', 'a name for it (default <role>-<random>)')
    .option('--out <file>', 'write the secret to this file (mode 0600) instead of stdout')
    .action(async (o, cmd: Command) => {
      await deliver(cmd, await clientFromEnv().post<NewToken>('/v1/tokens', { role: o.role, ...(o.id ? { id: o.id } : {}) }), o.out);
    });
  token.command('revoke <id>').description('revoke a token at once (node credentials: kiver node rekey)').action(async (id: string, _o, cmd: Command) => {
    const r = await clientFromEnv().delete<{ id: string }>(`/v1/tokens/${encodeURIComponent(id)}`);
    print(cmd, r, () => `token ${id} revoked`);
  });
  token.command('rotate <id>').description('replace a token\'s secret; "join" rotates the join token (agents that joined keep their credentials)')
    .option('--out <file>', 'write the new secret to this file (mode 0600) instead of stdout')
    .action(async (id: string, o, cmd: Command) => {
      await deliver(cmd, await clientFromEnv().post<NewToken>(`/v1/tokens/${encodeURIComponent(id)}/rotate`), o.out);
    });
}
