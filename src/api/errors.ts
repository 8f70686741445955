/** One mapping from errors to HTTP responses (DESIGN principle 6). */
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { KiverError } from '../errors.js';
import type { Logger } from '../log.js';

import type { ErrorBody } from '../model/error-body.js';

export type { ErrorBody };

/** Turns ajv's instancePath (/spec/replicas) and params into a field path and a message. */
function validationBody(err: FastifyError): ErrorBody {
  const v = (err.validation ?? [])[0] as
    | { instancePath?: string; keyword?: string; message?: string; params?: Record<string, unknown> }
    | undefined;
  const part = err.validationContext ?? 'body';
  let field = `${part}${v?.instancePath ?? ''}`.replace(/^body\//, '').replace(/^body$/, 'body');
  let message = v?.message ?? err.message;
  if (v?.keyword === 'additionalProperties') {
    const extra = String(v.params?.additionalProperty ?? '');
    field = field === 'body' ? extra : `${field}/${extra}`;
    message = 'unknown field';
  } else if (v?.keyword === 'required') {
    const missing = String(v.params?.missingProperty ?? '');
    field = field === 'body' ? missing : `${field}/${missing}`;
    message = 'is required';
  } else if (v?.keyword === 'pattern') {
    message = `has an invalid format (expected to match ${String(v.params?.pattern)})`;
  }
  return { error: { code: 'invalid', message: `${field}: ${message}`, field } };
}

export function errorHandler(log: Pick<Logger, 'error'>) {
  return (err: FastifyError, req: FastifyRequest, reply: FastifyReply) => {
    if (err.validation) return reply.status(400).send(validationBody(err));
    if (err instanceof KiverError) {
      // details never override the four fields every error has
      const body: ErrorBody = { error: { ...err.details, code: err.code, message: err.message } };
      if (err.field) body.error.field = err.field;
      return reply.status(err.status).send(body);
    }
    if (err.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || (err.statusCode === 400 && /JSON/i.test(err.message))) {
      return reply.status(400).send({ error: { code: 'invalid', message: `body: malformed JSON (${err.message})`, field: 'body' } });
    }
    if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500) {
      return reply.status(err.statusCode).send({ error: { code: 'invalid', message: err.message } });
    }
    // The route pattern, not the URL: some URLs carry one-time tokens (config center).
    log.error({ err, method: req.method, route: req.routeOptions?.url ?? 'unknown' }, 'internal error');
    return reply.status(500).send({ error: { code: 'internal', message: 'internal error; see the server log' } });
  };
}
