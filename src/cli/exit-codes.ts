/** The CLI's exit code for each error class (README "Exit codes", `kiver --help`). */
import { ConflictError, ForbiddenError, InputError, KiverError, NotFoundError, UnauthenticatedError, UnavailableError } from '../errors.js';

export const EXIT = { ok: 0, other: 1, input: 2, notFound: 3, conflict: 4, denied: 5, unavailable: 6 } as const;

export const EXIT_HELP = `Exit codes:
  0  success
  1  any other error
  2  usage or bad input (a flag, a field)
  3  not found
  4  conflict (exists already, changed meanwhile)
  5  unauthenticated or forbidden (token)
  6  unavailable (server, store, Docker or a BMC not answering)`;

export function exitCodeOf(err: unknown): number {
  if (!(err instanceof KiverError)) return EXIT.other;
  if (err instanceof InputError) return EXIT.input;
  if (err instanceof NotFoundError) return EXIT.notFound;
  if (err instanceof ConflictError) return EXIT.conflict;
  if (err instanceof UnauthenticatedError || err instanceof ForbiddenError) return EXIT.denied;
  if (err instanceof UnavailableError) return EXIT.unavailable;
  return EXIT.other;
}
