import { Type } from '@sinclair/typebox';

export const SESSION_ID_EXAMPLE = '7c9e6679-7425-40de-944b-e07fc1f90ae7';

/** One of a user's sessions, as GET /auth/sessions lists it. */
export const SessionSchema = Type.Object(
  {
    id: Type.String({ format: 'uuid' }),
    userAgent: Type.Union([Type.String(), Type.Null()]),
    ip: Type.Union([Type.String(), Type.Null()]),
    createdAt: Type.String({ format: 'date-time' }),
    lastUsedAt: Type.String({ format: 'date-time' }),
    current: Type.Boolean({ description: 'The session of the access token that asked' }),
  },
  { $id: 'Session', title: 'Session' },
);
