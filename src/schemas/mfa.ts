import { Type, type Static } from '@sinclair/typebox';
import { CODE_METHODS, SECOND_FACTOR_METHODS } from '../domain/authentication.js';
import { AuthenticationResponse, ChallengeId } from './passkeys.js';
import { TOKEN_RESPONSE_EXAMPLE, TokenResponseSchema } from './tokens.js';
import { USER_EXAMPLE } from './user.js';

const Method = Type.Union(
  SECOND_FACTOR_METHODS.map((method) => Type.Literal(method)),
  {
    description:
      'totp: a code of the authenticator app; recovery_code: one of the recovery codes (both with POST /auth/mfa/verify); passkey: a passkey (POST /auth/passkeys/authentication/options with the mfaToken, then /verify)',
  },
);
const CodeMethod = Type.Union(
  CODE_METHODS.map((method) => Type.Literal(method)),
  { description: 'totp: a code of the authenticator app; recovery_code: one of the recovery codes' },
);

/** Login's answer for a user with a second factor: no tokens yet, a step to take. */
export const MfaRequiredSchema = Type.Object(
  {
    mfaRequired: Type.Literal(true),
    mfaToken: Type.String({ description: 'Single use: send it with the code to POST /auth/mfa/verify' }),
    methods: Type.Array(Method),
    expiresIn: Type.Integer({ description: 'Seconds the mfaToken stays valid' }),
  },
  { $id: 'MfaRequired', title: 'MfaRequired' },
);
export type MfaRequired = Static<typeof MfaRequiredSchema>;

export const MFA_REQUIRED_EXAMPLE: MfaRequired = {
  mfaRequired: true,
  mfaToken: 'Qm9yKJt0cq3Yl1kC2Jb0bQm4l2Hq3s0YyR3o1m8Jg5d',
  methods: ['totp', 'recovery_code'],
  expiresIn: 300,
};

/** A code as typed: six digits of the app, or a recovery code (case, spaces and dashes do not matter). */
export const Code = Type.String({ minLength: 1, maxLength: 64, examples: ['123456'] });

export const MfaVerifyBody = Type.Object(
  {
    mfaToken: Type.String({ minLength: 1, maxLength: 256 }),
    method: CodeMethod,
    code: Code,
    useCookie: Type.Optional(Type.Boolean({ description: 'Put the refresh token in an httpOnly cookie (SPAs)' })),
  },
  { additionalProperties: false, examples: [{ mfaToken: MFA_REQUIRED_EXAMPLE.mfaToken, method: 'totp', code: '123456' }] },
);

export const EnrolmentSchema = Type.Object({
  secret: Type.String({ description: 'Base32: for typing into an app that cannot read the QR code' }),
  otpauthUri: Type.String({ description: 'otpauth://totp/ISSUER:EMAIL?secret=...&issuer=ISSUER (SHA-1, 6 digits, 30 s: the defaults every app assumes): show it as a QR code' }),
});
export const ENROLMENT_EXAMPLE: Static<typeof EnrolmentSchema> = {
  secret: 'JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP',
  otpauthUri: 'otpauth://totp/Gatehouse:ann%40example.com?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=Gatehouse',
};

const RecoveryCodeList = Type.Array(Type.String(), {
  minItems: 10,
  maxItems: 10,
  description: 'Shown this once and never again: each works once, in place of a code, if the authenticator is lost',
});
const RECOVERY_CODES_EXAMPLE = ['7QKXM2RZ4N5TBW3D', 'H6JPL4VC2XQ7MZ5R', 'W3F7KD2NQX6BRT4J', 'M5ZQ2L7XKD3WN6VC', 'R4TB6XJ2QM7ZK3PD', 'C2WN5K7XQD4MZ6LT', 'J7QX3ZL5MK2DW4RB', 'P6KD2XW4NZ7QM3TC', 'X5BR7QJ3LK6ZD2MW', 'T3MZ6KQ2XW5DJ7NB'];

export const RecoveryCodesSchema = Type.Object({ recoveryCodes: RecoveryCodeList });
export const RECOVERY_CODES_RESPONSE_EXAMPLE: Static<typeof RecoveryCodesSchema> = { recoveryCodes: RECOVERY_CODES_EXAMPLE };

/**
 * Confirming an authenticator: the recovery codes, and tokens for the confirming session, now at
 * aal2. The refresh token is not renewed: the session's own keeps working and carries aal2 too.
 */
export const ConfirmedSchema = Type.Composite([Type.Omit(TokenResponseSchema, ['refreshToken', 'csrfToken']), RecoveryCodesSchema]);
export const CONFIRMED_EXAMPLE: Static<typeof ConfirmedSchema> = {
  accessToken: TOKEN_RESPONSE_EXAMPLE.accessToken,
  tokenType: 'Bearer',
  expiresIn: 900,
  user: { ...USER_EXAMPLE, mfaEnrolled: true, aal: 'aal2' },
  recoveryCodes: RECOVERY_CODES_EXAMPLE,
};

/** A step-up: a new access token for the same session; its refresh token stays as it was. */
export const ReauthenticatedSchema = Type.Omit(TokenResponseSchema, ['refreshToken', 'csrfToken']);
export const REAUTHENTICATED_EXAMPLE: Static<typeof ReauthenticatedSchema> = {
  accessToken: TOKEN_RESPONSE_EXAMPLE.accessToken,
  tokenType: 'Bearer',
  expiresIn: 900,
  user: { ...USER_EXAMPLE, mfaEnrolled: true, aal: 'aal2' },
};

export const MfaStatusSchema = Type.Object({
  factors: Type.Array(Type.Object({ type: Type.Literal('totp'), confirmedAt: Type.String({ format: 'date-time' }) }), {
    description: 'The confirmed second factors (an enrolment not yet confirmed is not one)',
  }),
  recoveryCodesLeft: Type.Integer({ description: 'Unused recovery codes' }),
});
export const MFA_STATUS_EXAMPLE: Static<typeof MfaStatusSchema> = {
  factors: [{ type: 'totp', confirmedAt: '2026-01-15T09:40:00.000Z' }],
  recoveryCodesLeft: 9,
};

export const ReauthenticateBody = Type.Union(
  [
    Type.Object({ password: Type.String({ minLength: 1, maxLength: 1024 }) }, { additionalProperties: false, title: 'With the password' }),
    Type.Object({ method: Type.Literal('totp'), code: Code }, { additionalProperties: false, title: 'With an authenticator code' }),
    Type.Object(
      { method: Type.Literal('passkey'), challengeId: ChallengeId, response: AuthenticationResponse },
      { additionalProperties: false, title: 'With a passkey (options from POST /auth/passkeys/authentication/options)' },
    ),
  ],
  { examples: [{ password: 'correct horse battery staple' }, { method: 'totp', code: '123456' }] },
);
