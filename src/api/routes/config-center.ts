/**
 * HTTP routes of the config center, as a fastify plugin the Kiver server registers:
 *
 *   await app.register(configCenterRoutes, { center });
 *
 * - `GET  /v1/config-center/:mac`            identity (JSON, or `?format=shell` for sh installers)
 * - `POST /v1/config-center/:mac/installed`  the installer is done: boot files deleted, machine installed
 * - `GET  /v1/config-center/:mac/seed/:token/:file`  installer answer file (preseed.cfg, ks.cfg, user-data, meta-data)
 *
 * The token comes in the `X-Kiver-Install-Token` header or the `token` query parameter
 * (the seed route has it in the path because cloud-init appends file names to a prefix).
 * These routes are NOT behind the API token: the installing machine only has its
 * one-time install token. Request logging is lowered to `warn` on them so tokens in
 * URLs never reach the access log.
 */
import type { FastifyPluginAsync } from 'fastify';
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { ErrorBody } from '../../model/error-body.js';
import { renderIdentityShell, type ConfigCenter } from '../../machine/config-center.js';
import { errorHandler } from '../errors.js';

export const INSTALL_TOKEN_HEADER = 'x-kiver-install-token';

export interface ConfigCenterRoutesOptions {
  center: ConfigCenter;
}


const MacParams = Type.Object({ mac: Type.String({ maxLength: 64 }) });
const TokenQuery = Type.Object({
  token: Type.Optional(Type.String({ maxLength: 256 })),
  format: Type.Optional(Type.Union([Type.Literal('json'), Type.Literal('shell')])),
});
const TokenHeaders = Type.Object({ [INSTALL_TOKEN_HEADER]: Type.Optional(Type.String({ maxLength: 256 })) });

export const IdentitySchema = Type.Object({
  name: Type.String(),
  mac: Type.String(),
  hostname: Type.String(),
  ip: Type.String(),
  prefix: Type.Integer(),
  netmask: Type.Optional(Type.String()),
  gateway: Type.Optional(Type.String()),
  dns: Type.Array(Type.String()),
  ntp: Type.Array(Type.String()),
});
export type IdentityBody = Static<typeof IdentitySchema>;

const InstalledBody = Type.Object({ status: Type.Literal('installed'), machine: Type.String() });
const SeedParams = Type.Object({
  mac: Type.String({ maxLength: 64 }),
  token: Type.String({ maxLength: 256 }),
  file: Type.String({ pattern: '^[a-z][a-z.-]{0,31}$' }),
});

/** Both routes take the one-time install token (header or query), not the API token. */
function installRoute(ok: TSchema) {
  return {
    logLevel: 'warn' as const,
    schema: {
      tags: ['config-center'],
      security: [],
      params: MacParams,
      querystring: TokenQuery,
      headers: TokenHeaders,
      response: { 200: ok, 403: ErrorBody, 404: ErrorBody },
    },
  };
}

function installToken(req: { headers: Record<string, unknown>; query: { token?: string } }): string | undefined {
  return (req.headers[INSTALL_TOKEN_HEADER] as string | undefined) ?? req.query.token;
}

export const configCenterRoutes: FastifyPluginAsync<ConfigCenterRoutesOptions> = async (app, opts) => {
  const { center } = opts;

  // Installers post with whatever content type their tool sends (busybox wget: form
  // encoded, curl -X POST: none); the body is ignored. Scoped to this plugin.
  app.addContentTypeParser('*', { parseAs: 'string', bodyLimit: 4096 }, (_req, body, done) => done(null, body));

  // The one error mapping, also when the plugin is mounted on its own (tests, a separate listener).
  app.setErrorHandler(errorHandler(app.log));

  app.get<{ Params: Static<typeof MacParams>; Querystring: Static<typeof TokenQuery> }>(
    '/v1/config-center/:mac',
    installRoute(IdentitySchema),
    async (req, reply) => {
      const doc = await center.lookup(req.params.mac, installToken(req));
      reply.header('cache-control', 'no-store');
      if (req.query.format === 'shell') {
        // Bypasses the JSON response schema on purpose: text for `. file` in sh.
        return reply.type('text/plain; charset=utf-8').serializer((x: unknown) => String(x)).send(renderIdentityShell(doc));
      }
      return doc;
    },
  );

  app.post<{ Params: Static<typeof MacParams>; Querystring: Static<typeof TokenQuery> }>(
    '/v1/config-center/:mac/installed',
    installRoute(InstalledBody),
    async (req) => {
      const r = await center.reportInstalled(req.params.mac, installToken(req));
      return { status: 'installed' as const, machine: r.machine };
    },
  );

  app.get<{ Params: Static<typeof SeedParams> }>(
    '/v1/config-center/:mac/seed/:token/:file',
    {
      logLevel: 'warn',
      schema: {
        tags: ['config-center'],
        security: [], // the one-time install token, not the API token
        params: SeedParams,
        response: { 403: ErrorBody, 404: ErrorBody },
      },
    },
    async (req, reply) => {
      const seed = await center.seed(req.params.mac, req.params.token, req.params.file);
      reply.header('cache-control', 'no-store');
      return reply.type(seed.contentType).send(seed.body);
    },
  );
};

export default configCenterRoutes;
