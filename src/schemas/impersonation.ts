import { Type } from '@sinclair/typebox';
import { TOKEN_RESPONSE_EXAMPLE } from './tokens.js';

export const ImpersonateBody = Type.Object(
  { reason: Type.String({ minLength: 1, maxLength: 500, description: 'Why: kept in the audit log, and shown to the user beside the session' }) },
  { additionalProperties: false, examples: [{ reason: 'Ticket #4711: the user cannot see their invoices' }] },
);

/** An impersonation token: no refresh token, no user (the caller asks GET /auth/me with it, as the user). */
export const ImpersonationTokenSchema = Type.Object(
  {
    accessToken: Type.String({ description: 'Acts as the user, with an `act: { sub: <your id> }` claim; refused at fresh, aal2 and credential routes' }),
    expiresIn: Type.Integer({ description: 'Seconds until it expires (IMPERSONATION_TTL); it cannot be refreshed' }),
  },
  { title: 'ImpersonationToken' },
);

export const IMPERSONATION_TOKEN_EXAMPLE = { accessToken: TOKEN_RESPONSE_EXAMPLE.accessToken, expiresIn: 900 };
