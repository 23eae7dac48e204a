import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { authenticate } from '../../domain/authentication.js';
import { confirmTotpEnrolment, disableTotp, mfaStatus, regenerateRecoveryCodes, startTotpEnrolment } from '../../domain/mfa.js';
import { findUserById } from '../../domain/users.js';
import { ProblemError, problem } from '../../errors.js';
import { perIp } from '../../plugins/rate-limit.js';
import {
  CONFIRMED_EXAMPLE,
  Code,
  ConfirmedSchema,
  ENROLMENT_EXAMPLE,
  EnrolmentSchema,
  MFA_STATUS_EXAMPLE,
  MfaStatusSchema,
  MfaVerifyBody,
  RECOVERY_CODES_RESPONSE_EXAMPLE,
  RecoveryCodesSchema,
} from '../../schemas/mfa.js';
import { BODY_PROBLEMS, problemResponses } from '../../schemas/problem.js';
import { jsonResponse } from '../../schemas/responses.js';
import { TOKEN_RESPONSE_EXAMPLE, TokenResponseSchema } from '../../schemas/tokens.js';
import type { Gatehouse } from '../../services.js';
import { auditContext } from '../request-context.js';
import { issueAccessToken, issueTokens } from './tokens.js';

export const mfaRoutes: FastifyPluginAsyncTypebox<{ gatehouse: Gatehouse }> = async (app, { gatehouse }) => {
  const { db, access, config } = gatehouse;

  app.get(
    '/mfa',
    {
      config: { authenticated: true, ownCredentials: true },
      schema: {
        operationId: 'getMfaStatus',
        summary: 'Your second factors and recovery codes left',
        tags: ['mfa'],
        response: { 200: jsonResponse(MfaStatusSchema, 'The confirmed factors', MFA_STATUS_EXAMPLE), ...problemResponses(401) },
      },
    },
    async (request) => {
      const status = await mfaStatus(db, request.principal!.userId);
      return { ...status, factors: status.factors.map((f) => ({ type: f.type, confirmedAt: f.confirmedAt.toISOString() })) };
    },
  );

  app.post(
    '/mfa/totp/enroll',
    {
      config: { authenticated: true, fresh: true },
      schema: {
        operationId: 'enrollTotp',
        summary: 'Start enrolling an authenticator app',
        description:
          'Answers a new secret and its otpauth:// URI (show it as a QR code). Nothing changes for logins until POST /auth/mfa/totp/confirm proves the app shows the right codes, within 10 minutes. A new enroll replaces an unconfirmed one; a confirmed authenticator must be removed first (409 mfa_already_enrolled).',
        tags: ['mfa'],
        response: { 201: jsonResponse(EnrolmentSchema, 'The secret, shown this once', ENROLMENT_EXAMPLE), ...problemResponses(401, 403, 409) },
      },
    },
    async (request, reply) => {
      const user = await findUserById(db, request.principal!.userId);
      if (!user) throw problem('session_revoked', 'This session has been revoked: log in again.');
      const enrolment = await startTotpEnrolment(db, gatehouse.keyRing, user, config.totpIssuer);
      return reply.code(201).send(enrolment);
    },
  );

  app.post(
    '/mfa/totp/confirm',
    {
      config: { authenticated: true, ownCredentials: true },
      schema: {
        operationId: 'confirmTotp',
        summary: 'Confirm the authenticator with its current code',
        description:
          'From now on every login of the user takes a second step. Answers ten recovery codes, shown this once, and a new access token for this session, now at aal2 (keep the refresh token you have: it carries aal2 too). The user’s other sessions stay aal1 until they prove the factor (POST /auth/reauthenticate with a code).',
        tags: ['mfa'],
        body: Type.Object({ code: Code }, { additionalProperties: false, examples: [{ code: '123456' }] }),
        response: {
          200: jsonResponse(ConfirmedSchema, 'Enrolled: the recovery codes, and this session at aal2', CONFIRMED_EXAMPLE),
          ...problemResponses(...BODY_PROBLEMS, 401, 409),
        },
      },
    },
    async (request) => {
      const { userId, sessionId } = request.principal!;
      let confirmed;
      try {
        confirmed = await confirmTotpEnrolment(db, gatehouse, { userId, sessionId, code: request.body.code });
      } catch (err) {
        // A wrong code is a bad request here, not a failed login: the caller is signed in.
        if (err instanceof ProblemError && err.code === 'mfa_code_invalid') throw problem('mfa_code_invalid', err.detail, { status: 400 });
        throw err;
      }
      await access.changed(userId);
      gatehouse.audit({ type: 'mfa_enrolled', ...auditContext(request), userId, detail: { factor: 'totp', sessionId } });
      return { ...(await issueAccessToken(gatehouse, request, confirmed.session)), recoveryCodes: confirmed.recoveryCodes };
    },
  );

  app.delete(
    '/mfa/totp',
    {
      config: { authenticated: true, aal: 'aal2', fresh: true },
      schema: {
        operationId: 'removeTotp',
        summary: 'Remove the authenticator',
        description: 'Its recovery codes go too, and every session of the user is back to aal1 (their next refresh issues aal1 tokens), unless a passkey that counts as a second factor (PASSKEY_COUNTS_AS_MFA) remains.',
        tags: ['mfa'],
        response: { 204: Type.Null({ description: 'Removed' }), ...problemResponses(401, 403) },
      },
    },
    async (request, reply) => {
      const { userId } = request.principal!;
      if (await disableTotp(db, userId, { countsAsMfa: gatehouse.config.passkeyCountsAsMfa })) {
        await access.changed(userId);
        gatehouse.audit({ type: 'mfa_disabled', ...auditContext(request), userId, detail: { factor: 'totp' } });
      }
      return reply.code(204).send(null);
    },
  );

  app.post(
    '/mfa/recovery-codes',
    {
      config: { authenticated: true, aal: 'aal2', fresh: true },
      schema: {
        operationId: 'regenerateRecoveryCodes',
        summary: 'New recovery codes',
        description: 'Ten new codes, shown this once; the old ones, used or not, stop working.',
        tags: ['mfa'],
        response: { 200: jsonResponse(RecoveryCodesSchema, 'The new codes', RECOVERY_CODES_RESPONSE_EXAMPLE), ...problemResponses(401, 403, 409) },
      },
    },
    async (request) => {
      const { userId } = request.principal!;
      const recoveryCodes = await regenerateRecoveryCodes(db, gatehouse.recoveryCodeKey, userId);
      gatehouse.audit({ type: 'recovery_codes_regenerated', ...auditContext(request), userId });
      return { recoveryCodes };
    },
  );

  app.post(
    '/mfa/verify',
    {
      config: { public: true, rateLimit: perIp(config.rateLimits.login) },
      schema: {
        operationId: 'verifyMfa',
        summary: "A login's second step: the mfaToken and a code",
        description:
          'Finishes a login that answered mfaRequired, with a code of the authenticator (totp) or a recovery code, and answers like a login. Each mfaToken is single use and takes at most 5 codes; a time step whose code was used once is refused (replay). After 10 wrong codes for a user within 15 minutes, codes are refused for the rest of that time (429 mfa_locked with Retry-After).',
        tags: ['mfa'],
        body: MfaVerifyBody,
        response: {
          200: jsonResponse(Type.Ref(TokenResponseSchema), 'Logged in: a new session at aal2', TOKEN_RESPONSE_EXAMPLE),
          ...problemResponses(...BODY_PROBLEMS, 401, 403, 429),
        },
      },
    },
    async (request, reply) => {
      const { mfaToken, method, code, useCookie } = request.body;
      const opened = await authenticate(gatehouse, { kind: method, mfaToken, code }, auditContext(request));
      return issueTokens(gatehouse, request, reply, { ...opened, useCookie: useCookie === true });
    },
  );
};
