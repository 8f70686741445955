/**
 * The HTTP client the CLI and the agent share. Server errors come back as typed
 * KiverErrors carrying the server's message; several server addresses may be
 * given and a request that cannot connect tries the next.
 */
import { KiverError, InputError, NotFoundError, ConflictError, UnauthenticatedError, ForbiddenError, UnavailableError } from '../errors.js';
import { BmcAuthError, BmcCommandError, BmcUnreachableError, BmcUnsupportedError } from '../machine/errors.js';
import type { ErrorBody } from '../model/error-body.js';

export interface ClientOptions {
  /** One or more base URLs, e.g. http://127.0.0.1:7700 */
  servers: string[];
  token: string;
  timeoutMs?: number;
}

type ErrorClass = new (message: string, field?: string, details?: Record<string, unknown>) => KiverError;
/** The server's error codes, back to the classes it threw (api/errors.ts is the other direction). */
const BY_CODE: Record<string, ErrorClass> = {
  invalid: InputError,
  unauthenticated: UnauthenticatedError,
  forbidden: ForbiddenError,
  not_found: NotFoundError,
  conflict: ConflictError,
  unavailable: UnavailableError,
  bmc_unreachable: BmcUnreachableError,
  bmc_auth_failed: BmcAuthError,
  bmc_unsupported: BmcUnsupportedError,
  bmc_error: BmcCommandError,
};
const BY_STATUS: Record<number, ErrorClass> = {
  400: InputError, 401: UnauthenticatedError, 403: ForbiddenError, 404: NotFoundError, 409: ConflictError,
};

/** A server error with a code this client does not know: keeps the server's code and status. */
export class ServerError extends KiverError {
  constructor(override readonly status: number, override readonly code: string, message: string, field?: string, details?: Record<string, unknown>) {
    super(message, field, details);
  }
}

export function toError(status: number, body: Partial<ErrorBody> | undefined, fallback: string): KiverError {
  const { code, message, field, ...details } = body?.error ?? ({} as Partial<ErrorBody['error']>);
  const msg = message ?? fallback;
  const extra = Object.keys(details).length > 0 ? details : undefined;
  const Known = (code && BY_CODE[code]) || (!code ? BY_STATUS[status] : undefined);
  if (Known) return new Known(msg, field, extra);
  if (code) return new ServerError(status, code, msg, field, extra);
  return status >= 500 ? new UnavailableError(`server error ${status}: ${msg}`) : new ServerError(status, 'unknown', msg);
}

export class ApiClient {
  private current = 0;

  constructor(private readonly opts: ClientOptions) {
    if (opts.servers.length === 0) throw new InputError('no server address given', 'server');
  }

  get server(): string {
    return this.opts.servers[this.current];
  }

  async request<T>(method: string, path: string, body?: unknown, opts: { timeoutMs?: number } = {}): Promise<T> {
    let lastErr: Error | undefined;
    for (let i = 0; i < this.opts.servers.length; i++) {
      const base = this.opts.servers[(this.current + i) % this.opts.servers.length];
      let res: Response;
      try {
        res = await fetch(`${base}${path}`, {
          method,
          headers: {
            authorization: `Bearer ${this.opts.token}`,
            ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
          },
          body: body !== undefined ? JSON.stringify(body) : undefined,
          signal: AbortSignal.timeout(opts.timeoutMs ?? this.opts.timeoutMs ?? 30_000),
        });
      } catch (err) {
        lastErr = err as Error;
        continue; // connection refused or timed out: try the next server
      }
      this.current = (this.current + i) % this.opts.servers.length;
      const text = await res.text();
      let json: unknown;
      try {
        json = text ? JSON.parse(text) : undefined;
      } catch {
        json = undefined;
      }
      if (!res.ok) throw toError(res.status, json as ErrorBody, text.slice(0, 200) || res.statusText);
      return json as T;
    }
    const cause = (lastErr as { cause?: { code?: string } })?.cause?.code ?? lastErr?.message;
    throw new UnavailableError(`cannot reach the Kiver server at ${this.opts.servers.join(', ')} (${cause}); is \`kiver up\` running?`);
  }

  get<T>(path: string, opts?: { timeoutMs?: number }) {
    return this.request<T>('GET', path, undefined, opts);
  }
  post<T>(path: string, body?: unknown) {
    return this.request<T>('POST', path, body ?? {});
  }
  put<T>(path: string, body: unknown) {
    return this.request<T>('PUT', path, body);
  }
  patch<T>(path: string, body: unknown) {
    return this.request<T>('PATCH', path, body);
  }
  delete<T>(path: string) {
    return this.request<T>('DELETE', path);
  }
}
