/**
 * Tokens and roles (admin only): list, create, revoke, rotate — the join token's
 * rotation included. A token's secret is shown once, in the answer that made it.
 */
import { randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { Type } from '@sinclair/typebox';
import type { ApiContext } from '../context.js';
import { newToken, nodeCredentialId, record, type Role } from '../auth.js';
import { writeSecretFile } from '../../secret-file.js';
import { K } from '../../model/keys.js';
import { NODE_NAME } from '../../model/names.js';
import { ConflictError, NotFoundError } from '../../errors.js';

export const TOKEN_ID = '^[a-z0-9][a-z0-9.-]{0,62}$';
const TokenParams = Type.Object({ id: Type.String({ pattern: TOKEN_ID }) }, { additionalProperties: false });
const TokenCreate = Type.Object(
  {
    role: Type.Union([Type.Literal('admin'), Type.Literal('viewer')]),
    id: Type.Optional(Type.String({ pattern: TOKEN_ID, description: 'default: <role>-<random>' })),
  },
  { additionalProperties: false },
);
const NodeParams = Type.Object({ name: Type.String({ pattern: NODE_NAME }) }, { additionalProperties: false });

export function tokenRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const { auth, store } = ctx;

  app.get('/v1/tokens', { schema: { tags: ['tokens'], summary: 'List tokens and node credentials (no secrets)' } }, async () => auth.list());

  app.post('/v1/tokens', { schema: { tags: ['tokens'], summary: 'Create an admin or viewer token', body: TokenCreate } }, async (req, reply) => {
    const body = req.body as { role: Role; id?: string };
    const id = body.id ?? `${body.role}-${randomBytes(4).toString('hex')}`;
    if (id.startsWith('node.') || id === 'join') throw new ConflictError(`token id ${id} is reserved`);
    const token = newToken(body.role);
    const rec = record(body.role, token);
    const res = await store.txn({ compare: [{ key: K.token(id), modRevision: 0 }], success: [{ type: 'put', key: K.token(id), value: JSON.stringify(rec) }] });
    if (!res.succeeded) throw new ConflictError(`token ${id} already exists`);
    auth.note(id, rec);
    return reply.status(201).send({ id, role: body.role, token });
  });

  app.delete('/v1/tokens/:id', { schema: { tags: ['tokens'], summary: 'Revoke a token', params: TokenParams } }, async (req) => {
    const { id } = req.params as { id: string };
    const cur = await auth.get(id);
    if (!cur) throw new NotFoundError(`token ${id} not found`);
    if (cur.record.role === 'admin') {
      const admins = (await auth.list()).filter((t) => t.role === 'admin');
      if (admins.length <= 1) throw new ConflictError(`token ${id} is the last admin token; create another before revoking it`);
    }
    await auth.remove(id);
    ctx.log.info({ id, role: cur.record.role }, 'token revoked');
    return { id, revoked: true };
  });

  app.post('/v1/tokens/:id/rotate', { schema: { tags: ['tokens'], summary: 'Replace a token\'s secret (e.g. the join token "join")', params: TokenParams } }, async (req) => {
    const { id } = req.params as { id: string };
    if (!(await auth.get(id))) throw new NotFoundError(`token ${id} not found`);
    if (id.startsWith('node.')) throw new ConflictError(`node credentials are replaced with \`kiver node rekey\`, not rotated`);
    const { role, token } = await auth.rotate(id);
    // The bootstrap tokens' files on this server follow (other servers of a cluster need the new file copied).
    const file = ctx.tokenFiles?.[id];
    if (file) await writeSecretFile(file, token);
    ctx.log.info({ id, role }, 'token rotated');
    return { id, role, token };
  });

  app.post('/v1/nodes/:name/rekey', {
    schema: { tags: ['nodes'], summary: "Revoke a node's credential; its next registration with the join token gets a new one", params: NodeParams },
  }, async (req) => {
    const { name } = req.params as { name: string };
    if (!(await store.get(K.node(name)))) throw new NotFoundError(`node ${name} not found`);
    const revoked = record('node', '', name);
    await store.put(K.token(nodeCredentialId(name)), JSON.stringify(revoked));
    auth.note(nodeCredentialId(name), revoked);
    await ctx.events.record(`node/${name}`, 'Warning', 'Rekeyed', `the credential of node ${name} was revoked; the node may join again with the join token`);
    return { node: name, rekeyed: true };
  });
}
