import { Type, type Static } from '@sinclair/typebox';

/** Every error response of the /v1 API; the client rebuilds the typed error from `code`. */
export const ErrorBody = Type.Object(
  {
    error: Type.Object({
      code: Type.String({ description: 'machine-readable class: invalid, unauthenticated, forbidden, not_found, conflict, unavailable, internal, …' }),
      message: Type.String(),
      field: Type.Optional(Type.String({ description: 'path of the bad input, for code invalid' })),
      details: Type.Optional(Type.Array(Type.Unknown(), { description: 'e.g. every bad line of an import' })),
    }),
  },
);
export type ErrorBody = Static<typeof ErrorBody>;
