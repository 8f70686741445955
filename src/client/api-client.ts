/**
 * The HTTP client the CLI and the agent share. Server errors come back as typed
 * KiverErrors carrying the server's message.
 *
 * Several server addresses may be given. A server is skipped for the next one when it
 * cannot be reached, answers 5xx (503 = it cannot reach its store, or it is not ready),
 * or does not answer within the request's deadline; a server that failed is tried last
 * for a backoff (250 ms doubling to 5 s), so the client sticks to one that answers.
 * A timeout or 5xx other than 503 is retried elsewhere only for requests that are safe
 * to send twice (GET, PUT, DELETE, or `idempotent: true`): a create that timed out may
 * have landed.
 */
import { KiverError, InputError, NotFoundError, ConflictError, UnauthenticatedError, ForbiddenError, UnavailableError, TooManyRequestsError, NoSpaceError } from '../errors.js';
import { BmcAuthError, BmcCommandError, BmcUnreachableError, BmcUnsupportedError } from '../machine/errors.js';
import type { ErrorBody } from '../model/error-body.js';

export interface ClientOptions {
  /** One or more base URLs, e.g. http://127.0.0.1:7700 */
  servers: string[];
  token: string;
  timeoutMs?: number;
}

export interface RequestOptions {
  /** Deadline of one attempt at one server. */
  timeoutMs?: number;
  /** Safe to send again to another server after a timeout or a 5xx (default: GET, PUT, DELETE). */
  idempotent?: boolean;
  /** Aborts the request (no other server is tried then). */
  signal?: AbortSignal;
}

const BACKOFF_MIN_MS = 250;
const BACKOFF_MAX_MS = 5_000;

type ErrorClass = new (message: string, field?: string, details?: Record<string, unknown>) => KiverError;
/** The server's error codes, back to the classes it threw (api/errors.ts is the other direction). */
const BY_CODE: Record<string, ErrorClass> = {
  invalid: InputError,
  unauthenticated: UnauthenticatedError,
  forbidden: ForbiddenError,
  not_found: NotFoundError,
  conflict: ConflictError,
  unavailable: UnavailableError,
  too_many_requests: TooManyRequestsError,
  no_space: NoSpaceError,
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
  /** Per server index: consecutive failures and until when (performance.now()) it is tried last. */
  private readonly backoff = new Map<number, { failures: number; until: number }>();

  constructor(private readonly opts: ClientOptions) {
    if (opts.servers.length === 0) throw new InputError('no server address given', 'server');
  }

  get server(): string {
    return this.opts.servers[this.current];
  }

  /** Server indexes to try, the last one that answered first, servers in backoff last. */
  private order(): number[] {
    const n = this.opts.servers.length;
    const now = performance.now();
    const all = Array.from({ length: n }, (_, i) => (this.current + i) % n);
    const cooling = (i: number) => (this.backoff.get(i)?.until ?? 0) > now;
    return [...all.filter((i) => !cooling(i)), ...all.filter(cooling).sort((a, b) => this.backoff.get(a)!.until - this.backoff.get(b)!.until)];
  }

  private failed(i: number): void {
    const failures = (this.backoff.get(i)?.failures ?? 0) + 1;
    this.backoff.set(i, { failures, until: performance.now() + Math.min(BACKOFF_MIN_MS * 2 ** (failures - 1), BACKOFF_MAX_MS) });
  }

  async request<T>(method: string, path: string, body?: unknown, opts: RequestOptions = {}): Promise<T> {
    const idempotent = opts.idempotent ?? (method !== 'POST' && method !== 'PATCH');
    let lastErr: Error | undefined;
    let answered: KiverError | undefined; // the last 5xx, if any server answered at all
    for (const i of this.order()) {
      const base = this.opts.servers[i];
      let res: Response;
      try {
        res = await fetch(`${base}${path}`, {
          method,
          headers: {
            authorization: `Bearer ${this.opts.token}`,
            ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
          },
          body: body !== undefined ? JSON.stringify(body) : undefined,
          signal: AbortSignal.any([AbortSignal.timeout(opts.timeoutMs ?? this.opts.timeoutMs ?? 30_000), ...(opts.signal ? [opts.signal] : [])]),
        });
      } catch (err) {
        if (opts.signal?.aborted) throw err;
        lastErr = err as Error;
        this.failed(i);
        // Refused: never sent, always safe to try elsewhere. Timed out or reset: maybe applied.
        const code = (err as { cause?: { code?: string } }).cause?.code;
        if (code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'EHOSTUNREACH' || idempotent) continue;
        break;
      }
      const text = await res.text().catch(() => '');
      let json: unknown;
      try {
        json = text ? JSON.parse(text) : undefined;
      } catch {
        json = undefined;
      }
      const code = (json as Partial<ErrorBody> | undefined)?.error?.code;
      if (res.status >= 500 && (code === undefined || code === 'unavailable' || code === 'internal')) {
        // A sick server (no store, overloaded, crashed handler), not an answer about something
        // else (a BMC that does not answer): try another one.
        this.failed(i);
        answered = toError(res.status, json as ErrorBody, text.slice(0, 200) || res.statusText);
        if (res.status === 503 || idempotent) continue;
        throw answered;
      }
      this.backoff.delete(i);
      this.current = i;
      if (!res.ok) throw toError(res.status, json as ErrorBody, text.slice(0, 200) || res.statusText);
      return json as T;
    }
    if (answered) throw answered;
    const cause = (lastErr as { cause?: { code?: string } })?.cause?.code ?? lastErr?.message;
    throw new UnavailableError(`cannot reach the Kiver server at ${this.opts.servers.join(', ')} (${cause}); is \`kiver up\` running?`);
  }

  get<T>(path: string, opts?: RequestOptions) {
    return this.request<T>('GET', path, undefined, opts);
  }
  post<T>(path: string, body?: unknown, opts?: RequestOptions) {
    return this.request<T>('POST', path, body ?? {}, opts);
  }
  put<T>(path: string, body: unknown, opts?: RequestOptions) {
    return this.request<T>('PUT', path, body, opts);
  }
  patch<T>(path: string, body: unknown) {
    return this.request<T>('PATCH', path, body);
  }
  delete<T>(path: string) {
    return this.request<T>('DELETE', path);
  }
}
