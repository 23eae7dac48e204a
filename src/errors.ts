/**
 * The one error vocabulary of Gatehouse. Every error that leaves the server is one of these codes,
 * rendered as RFC 9457 problem+json by plugins/errors.ts. Codes are a public contract: add, never rename.
 */
export const PROBLEMS = {
  validation_failed: { status: 400, title: 'Request validation failed' },
  invalid_json: { status: 400, title: 'Malformed JSON body' },
  token_missing: { status: 401, title: 'Authentication required' },
  // 401 for access tokens; 400 (status given where raised) for the single-use tokens of mailed links.
  token_invalid: { status: 401, title: 'Invalid token' },
  token_expired: { status: 401, title: 'Token expired' },
  session_revoked: { status: 401, title: 'Session revoked' },
  invalid_credentials: { status: 401, title: 'Invalid credentials' },
  invalid_refresh_token: { status: 401, title: 'Invalid refresh token' },
  refresh_token_expired: { status: 401, title: 'Refresh token expired' },
  refresh_token_reused: { status: 401, title: 'Refresh token reused' },
  // An API key that is unknown, wrong, expired or revoked, or whose owner is disabled: one answer for all.
  api_key_invalid: { status: 401, title: 'Invalid API key' },
  // API keys never reach fresh or aal2 routes, nor those that manage keys, passwords, email or second factors.
  api_key_not_allowed: { status: 403, title: 'Not allowed with an API key' },
  // While an admin impersonates a user: fresh/aal2 routes and those that manage credentials (keys, nested impersonation).
  impersonation_restricted: { status: 403, title: 'Not allowed while impersonating' },
  account_disabled: { status: 403, title: 'Account disabled' },
  email_not_confirmed: { status: 403, title: 'Email not confirmed' },
  weak_password: { status: 400, title: 'Password too weak' },
  csrf_failed: { status: 403, title: 'CSRF check failed' },
  permission_denied: { status: 403, title: 'Permission denied' },
  exceeds_own_permissions: { status: 403, title: 'Exceeds your own permissions' },
  // The route needs a second factor proved in this session (aal2).
  insufficient_aal: { status: 403, title: 'Second factor required' },
  // The route needs a factor proved recently: POST /auth/reauthenticate, then retry.
  reauthentication_required: { status: 403, title: 'Re-authentication required' },
  // The caller's role requires two-factor authentication, and they have not enrolled yet.
  mfa_enrollment_required: { status: 403, title: 'Two-factor enrollment required' },
  // The mfaToken of a login's second step is unknown, expired, used, or out of tries: log in again.
  mfa_token_invalid: { status: 401, title: 'Invalid MFA token' },
  // A wrong second-factor code, or one whose time step was used already (400 where an enrolment is confirmed).
  mfa_code_invalid: { status: 401, title: 'Invalid code' },
  mfa_already_enrolled: { status: 409, title: 'Authenticator already enrolled' },
  mfa_not_enrolled: { status: 409, title: 'No authenticator enrolled' },
  // A WebAuthn challenge that is unknown, expired or used (each works once): ask for new options.
  webauthn_challenge_invalid: { status: 400, title: 'Invalid WebAuthn challenge' },
  // A registration the server cannot accept: wrong origin or RP ID, bad signature, no user verification.
  webauthn_verification_failed: { status: 400, title: 'WebAuthn verification failed' },
  // A passkey sign-in refused: unknown credential, disabled user, wrong origin, bad signature or counter.
  passkey_invalid: { status: 401, title: 'Invalid passkey' },
  passkey_limit_reached: { status: 409, title: 'Too many passkeys' },
  passkey_exists: { status: 409, title: 'Passkey already registered' },
  not_found: { status: 404, title: 'Not found' },
  method_not_allowed: { status: 405, title: 'Method not allowed' },
  email_taken: { status: 409, title: 'Email already registered' },
  // An invitation that is unknown, expired, used or revoked: one answer for all.
  invitation_invalid: { status: 410, title: 'Invitation no longer valid' },
  // REGISTRATION=invite-only: accounts come from invitations.
  registration_closed: { status: 403, title: 'Registration closed' },
  role_exists: { status: 409, title: 'Role already exists' },
  permission_exists: { status: 409, title: 'Permission already exists' },
  role_in_use: { status: 409, title: 'Role still assigned' },
  built_in_role: { status: 409, title: 'Built-in role' },
  last_admin: { status: 409, title: 'Last active admin' },
  // A parallel request changed the same roles, permissions or user first; retrying is safe.
  concurrent_change: { status: 409, title: 'Changed concurrently' },
  // A `next` signing key published for less than JWKS_MAX_AGE: verifiers may not know it yet.
  key_not_published_long_enough: { status: 409, title: 'Signing key not published long enough' },
  signing_key_current: { status: 409, title: 'Current signing key' },
  signing_key_revoked: { status: 409, title: 'Signing key revoked' },
  // JWT_ALG=HS256, or keys from JWT_PRIVATE_KEYS: nothing to rotate through the API.
  signing_keys_unmanaged: { status: 409, title: 'Signing keys not managed here' },
  payload_too_large: { status: 413, title: 'Payload too large' },
  unsupported_media_type: { status: 415, title: 'Unsupported media type' },
  // A host app's own 4xx error, its status kept (given where raised): not one of ours to name.
  http_error: { status: 400, title: 'Request failed' },
  rate_limited: { status: 429, title: 'Too many requests' },
  login_locked: { status: 429, title: 'Too many failed logins' },
  mfa_locked: { status: 429, title: 'Too many wrong codes' },
  internal_error: { status: 500, title: 'Internal server error' },
  service_unavailable: { status: 503, title: 'Service unavailable' },
  // The server is shutting down: the request was not handled, and is safe to send again elsewhere.
  shutting_down: { status: 503, title: 'Shutting down' },
} as const satisfies Record<string, { status: number; title: string }>;

export type ProblemCode = keyof typeof PROBLEMS;

export interface FieldError {
  path: string;
  message: string;
}

export class ProblemError extends Error {
  override name = 'ProblemError';
  readonly status: number;
  readonly title: string;

  constructor(
    readonly code: ProblemCode,
    readonly detail: string,
    readonly extra: {
      errors?: FieldError[];
      headers?: Record<string, string>;
      status?: number;
      /** Seconds until a retry can succeed (a lockout's end): sent as Retry-After. */
      retryAfter?: number;
      /** Extension members of the problem+json body (RFC 9457 section 3.2), declared in ProblemSchema. */
      extensions?: { maxAge?: number; methods?: string[] };
      /** Facts about the refusal for the audit log; never rendered in the response. */
      data?: Record<string, unknown>;
    } = {},
  ) {
    super(detail);
    this.status = extra.status ?? PROBLEMS[code].status;
    this.title = PROBLEMS[code].title;
  }

  /** Fastify reads `statusCode` when an error reaches a handler that is not ours. */
  get statusCode(): number {
    return this.status;
  }
}

export function problem(code: ProblemCode, detail: string, extra?: ProblemError['extra']): ProblemError {
  return new ProblemError(code, detail, extra);
}

/** 401s tell the client how to authenticate (RFC 6750). */
export function unauthorized(code: Extract<ProblemCode, `token_${string}` | 'session_revoked'>, detail: string): ProblemError {
  // RFC 6750 section 3.1: no error attribute when the request carried no credentials at all.
  const challenge = code === 'token_missing' ? 'Bearer' : 'Bearer error="invalid_token"';
  return new ProblemError(code, detail, { headers: { 'www-authenticate': challenge } });
}
