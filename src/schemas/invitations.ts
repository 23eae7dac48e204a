import { Type, type Static } from '@sinclair/typebox';
import type { InvitationRow } from '../db/schema.js';
import { statusOf } from '../domain/invitations.js';
import { NameList } from './admin.js';
import { Email, Name, Password, USER_EXAMPLE } from './user.js';

export const INVITATION_ID_EXAMPLE = '5b2e8f14-3c6a-4d9e-8a17-2f4c6b8d0e31';
const LINK_TOKEN_EXAMPLE = 'mQ3pY8vTz2bKc6wR1nH5jL0sD4fG7aX9eU2iO6yB3tM';

export const CreateInvitationBody = Type.Object(
  {
    email: Email,
    roles: NameList('Roles granted on acceptance, besides the default role; you must hold every permission they grant (403 exceeds_own_permissions)'),
  },
  { additionalProperties: false, examples: [{ email: 'bob@example.com', roles: ['editor'] }] },
);

/** What the inviter sees at once: never the token, which only the mail carries. */
export const CreatedInvitationSchema = Type.Object({
  id: Type.String({ format: 'uuid' }),
  email: Type.String(),
  roles: Type.Array(Type.String()),
  expiresAt: Type.String({ format: 'date-time' }),
});

export const InvitationSchema = Type.Composite([
  CreatedInvitationSchema,
  Type.Object({
    status: Type.Union([Type.Literal('pending'), Type.Literal('accepted'), Type.Literal('revoked'), Type.Literal('expired')], {
      description: 'revoked also when a newer invitation to the same address superseded it',
    }),
    invitedBy: Type.Union([Type.String({ format: 'uuid' }), Type.Null()], { description: 'The admin who invited (null once deleted)' }),
    createdAt: Type.String({ format: 'date-time' }),
    acceptedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
    userId: Type.Union([Type.String({ format: 'uuid' }), Type.Null()], { description: 'The account the acceptance created' }),
  }),
]);
export type InvitationView = Static<typeof InvitationSchema>;

export const AcceptInvitationBody = Type.Object(
  {
    token: Type.String({ minLength: 1, maxLength: 512, description: 'From the mailed link: APP_URL/accept-invite#token=...' }),
    password: Password,
    name: Type.Optional(Type.String({ minLength: 1, maxLength: Name.maxLength })),
    useCookie: Type.Optional(Type.Boolean({ description: 'Put the refresh token in an httpOnly cookie (SPAs)' })),
  },
  { additionalProperties: false, examples: [{ token: LINK_TOKEN_EXAMPLE, password: 'correct horse battery staple', name: 'Bob' }] },
);

export const INVITATION_EXAMPLE: InvitationView = {
  id: INVITATION_ID_EXAMPLE,
  email: 'bob@example.com',
  roles: ['editor'],
  expiresAt: '2026-01-18T09:00:00.000Z',
  status: 'pending',
  invitedBy: USER_EXAMPLE.id,
  createdAt: '2026-01-15T09:00:00.000Z',
  acceptedAt: null,
  userId: null,
};
export const CREATED_INVITATION_EXAMPLE: Static<typeof CreatedInvitationSchema> = {
  id: INVITATION_ID_EXAMPLE,
  email: 'bob@example.com',
  roles: ['editor'],
  expiresAt: '2026-01-18T09:00:00.000Z',
};

export function toInvitationView(row: InvitationRow): InvitationView {
  return {
    id: row.id,
    email: row.email,
    roles: row.roles,
    expiresAt: row.expiresAt.toISOString(),
    status: statusOf(row),
    invitedBy: row.invitedBy,
    createdAt: row.createdAt.toISOString(),
    acceptedAt: row.acceptedAt && row.acceptedAt.toISOString(),
    userId: row.userId,
  };
}
