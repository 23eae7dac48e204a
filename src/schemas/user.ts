import { Type, type Static } from '@sinclair/typebox';
import type { GatehouseUser } from '../types.js';

export const Email = Type.String({ format: 'email', maxLength: 254, description: 'Trimmed and lower-cased before it is checked' });
// Only bounded here: the policy (domain/password-policy.ts) answers weak_password with its reason.
export const Password = Type.String({
  minLength: 1,
  maxLength: 1024,
  description: 'A new password: 8 to 256 characters (Unicode code points after NFKC), not a commonly used password, not containing the email',
});
export const Name = Type.String({ minLength: 1, maxLength: 200 });
/**
 * A string or null, as `type: ["string", "null"]` (OpenAPI 3.1) rather than an anyOf: the same
 * schema, but fast-json-stringify writes it directly instead of running a validator on every value
 * to pick the branch, which was a third of the admin user list's serialization.
 */
const NullableString = (options: { format?: string } = {}) => Type.Unsafe<string | null>({ type: ['string', 'null'], ...options });

/** What a user sees of themselves at /auth/me; the admin API shows the same plus `active`. */
export const UserSchema = Type.Object(
  {
    id: Type.String({ format: 'uuid' }),
    email: Type.String(),
    name: NullableString(),
    roles: Type.Array(Type.String()),
    permissions: Type.Array(Type.String()),
    emailConfirmedAt: NullableString({ format: 'date-time' }),
    createdAt: Type.String({ format: 'date-time' }),
    lastLoginAt: NullableString({ format: 'date-time' }),
    lastLoginIp: NullableString(),
    previousLoginAt: NullableString({ format: 'date-time' }),
    previousLoginIp: NullableString(),
    loginCount: Type.Integer(),
    mfaEnrolled: Type.Boolean({ description: 'Whether the user has a confirmed second factor (TOTP)' }),
    aal: Type.Optional(
      Type.Union([Type.Literal('aal1'), Type.Literal('aal2')], {
        description: "The calling session's assurance level (aal2: a second factor was proved), at /auth/me and in token responses",
      }),
    ),
  },
  { $id: 'User', title: 'User' },
);
export type UserView = Static<typeof UserSchema>;

/** How a user looks in the OpenAPI document's examples: just registered, logged in once. */
export const USER_EXAMPLE: UserView = {
  id: '0f8fad5b-d9cb-469f-a165-70867728950e',
  email: 'ann@example.com',
  name: 'Ann',
  roles: ['user'],
  permissions: ['read'],
  emailConfirmedAt: null,
  createdAt: '2026-01-15T09:30:00.000Z',
  lastLoginAt: '2026-01-15T09:30:00.000Z',
  lastLoginIp: '203.0.113.7',
  previousLoginAt: null,
  previousLoginIp: null,
  loginCount: 1,
  mfaEnrolled: false,
};

/** The public view of a user. Built field by field: nothing else (password hash!) can slip out. */
export function toUserView(access: { user: GatehouseUser; roles: Iterable<string>; permissions: Iterable<string>; mfaEnrolled: boolean }): UserView {
  const { user } = access;
  return {
    id: user.id,
    email: user.email,
    name: user.name,
    roles: [...access.roles].sort(),
    permissions: [...access.permissions].sort(),
    emailConfirmedAt: user.emailConfirmedAt?.toISOString() ?? null,
    createdAt: user.createdAt.toISOString(),
    lastLoginAt: user.lastLoginAt?.toISOString() ?? null,
    lastLoginIp: user.lastLoginIp,
    previousLoginAt: user.previousLoginAt?.toISOString() ?? null,
    previousLoginIp: user.previousLoginIp,
    loginCount: user.loginCount,
    mfaEnrolled: access.mfaEnrolled,
  };
}
