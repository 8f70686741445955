/**
 * Typed errors, mapped to HTTP status in one place (api/errors.ts), rebuilt from the
 * response's `code` by the client (client/api-client.ts), and to a one-line message
 * and an exit code by the CLI (cli/exit-codes.ts). `field` is a JSON-pointer-like path
 * of the bad input; `details` are extra fields of the error body (e.g. every bad line
 * of an import). The one class in src/ that extends Error.
 */
export class KiverError extends Error {
  readonly status: number = 500;
  readonly code: string = 'internal';
  constructor(message: string, readonly field?: string, readonly details?: Record<string, unknown>) {
    super(message);
    this.name = new.target.name;
  }
}

/** Bad input: which field, what was expected. Nothing was stored. */
export class InputError extends KiverError {
  override readonly status: number = 400;
  override readonly code: string = 'invalid';
}
export class UnauthenticatedError extends KiverError {
  override readonly status: number = 401;
  override readonly code: string = 'unauthenticated';
}
export class ForbiddenError extends KiverError {
  override readonly status: number = 403;
  override readonly code: string = 'forbidden';
}
export class NotFoundError extends KiverError {
  override readonly status: number = 404;
  override readonly code: string = 'not_found';
}
/** The object changed or exists already; re-read and retry. */
export class ConflictError extends KiverError {
  override readonly status: number = 409;
  override readonly code: string = 'conflict';
}
/** A watch asked for a revision the store no longer keeps; re-list and watch again. */
export class CompactedError extends KiverError {
  override readonly status: number = 410;
  override readonly code: string = 'compacted';
  constructor(readonly compactRevision: number) {
    super(`revision compacted; oldest kept is ${compactRevision + 1}`);
  }
}
/** A dependency (Docker, the store, a BMC) did not answer or failed. */
export class UnavailableError extends KiverError {
  override readonly status: number = 503;
  override readonly code: string = 'unavailable';
}
