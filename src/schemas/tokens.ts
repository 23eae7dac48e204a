import { Type, type Static } from '@sinclair/typebox';
import { USER_EXAMPLE, UserSchema } from './user.js';

/**
 * One shape for login, register and refresh, so a generated client has one type. In cookie mode
 * the refresh token travels in an httpOnly cookie and `csrfToken` comes instead.
 */
export const TokenResponseSchema = Type.Object(
  {
    accessToken: Type.String(),
    tokenType: Type.Literal('Bearer'),
    expiresIn: Type.Integer({ description: 'Seconds until the access token expires' }),
    refreshToken: Type.Optional(Type.String({ description: 'Absent in cookie mode' })),
    csrfToken: Type.Optional(Type.String({ description: 'Cookie mode only: send it back as X-CSRF-Token' })),
    user: Type.Ref(UserSchema),
  },
  { $id: 'TokenResponse', title: 'TokenResponse' },
);
export type TokenResponse = Static<typeof TokenResponseSchema> & { user: Static<typeof UserSchema> };

/** The OpenAPI document's example of tokens in the body (not cookie mode). */
export const TOKEN_RESPONSE_EXAMPLE: TokenResponse = {
  accessToken:
    'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIwZjhmYWQ1Yi1kOWNiLTQ2OWYtYTE2NS03MDg2NzcyODk1MGUifQ.5mhBHqs5_DTLdINd9p5m7ZJ6XD0Xc55kIaCRY5r6HRA',
  tokenType: 'Bearer',
  expiresIn: 900,
  refreshToken: 'P2wqno1BS3qcNS4fCnttWAAAAAAuiYDklIKp7TIDn_VfXG23HLtXrnPHDhkUXCVz6mXwbw',
  user: USER_EXAMPLE,
};

/**
 * Register's answer: with REQUIRE_EMAIL_CONFIRMATION the account exists but no session is opened
 * until the address is confirmed, so every token field is optional.
 */
export const RegisterResponseSchema = Type.Composite(
  [Type.Partial(Type.Omit(TokenResponseSchema, ['user'])), Type.Object({ user: Type.Ref(UserSchema) })],
  { $id: 'RegisterResponse', title: 'RegisterResponse' },
);
