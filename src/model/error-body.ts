import { Type, type Static } from '@sinclair/typebox';

/** Every error response of the /v1 API (api/errors.ts); the client rebuilds the typed error from `code`. */
export const ErrorBody = Type.Object(
  {
    error: Type.Object({
      code: Type.String({ description: 'machine-readable class: invalid, unauthenticated, forbidden, not_found, conflict, unavailable, internal, …' }),
      message: Type.String(),
      field: Type.Optional(Type.String({ description: 'path of the bad input, for code invalid' })),
      problems: Type.Optional(Type.Array(Type.Object({ line: Type.Integer(), field: Type.String(), message: Type.String() }), {
        description: 'an inventory import: every bad line',
      })),
    }, { additionalProperties: true, description: 'plus the error class\'s details, e.g. problems' }),
  },
);
export type ErrorBody = Static<typeof ErrorBody>;
