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
    impersonation: Type.Union(
      [
        Type.Object({
          adminId: Type.String({ format: 'uuid', description: 'The admin acting as you' }),
          reason: Type.String({ description: 'Why, as they gave it' }),
          expiresAt: Type.String({ format: 'date-time' }),
        }),
        Type.Null(),
      ],
      { description: 'Set when an admin opened this session to act as you (support): it ends by itself at expiresAt' },
    ),
  },
  { $id: 'Session', title: 'Session' },
);
