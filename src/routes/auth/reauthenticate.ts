import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { reauthenticate, type StepUpCredential } from '../../domain/authentication.js';
import { perIp } from '../../plugins/rate-limit.js';
import { REAUTHENTICATED_EXAMPLE, ReauthenticateBody, ReauthenticatedSchema } from '../../schemas/mfa.js';
import { BODY_PROBLEMS, problemResponses } from '../../schemas/problem.js';
import { jsonResponse } from '../../schemas/responses.js';
import type { Gatehouse } from '../../services.js';
import { auditContext } from '../request-context.js';
import { asAssertion } from './passkeys.js';
import { issueAccessToken } from './tokens.js';

export const reauthenticateRoute: FastifyPluginAsyncTypebox<{ gatehouse: Gatehouse }> = async (app, { gatehouse }) => {
  app.post(
    '/reauthenticate',
    {
      config: { authenticated: true, ownCredentials: true, rateLimit: perIp(gatehouse.config.rateLimits.login) },
      schema: {
        operationId: 'reauthenticate',
        summary: 'Prove it is you again (step-up)',
        description:
          'For routes that need a recently proved factor (403 reauthentication_required): with the password, with a code of the authenticator, which also raises the session to aal2, or with a passkey (options from POST /auth/passkeys/authentication/options), which raises it to aal2 when PASSKEY_COUNTS_AS_MFA. Answers a new access token for the same session with auth_time now; the refresh token stays as it is and carries the new assurance. A wrong password counts toward the login lockout (429 login_locked), a wrong code or passkey toward the code lockout (429 mfa_locked); a passkey that is not yours or does not verify is 401 passkey_invalid, a used or expired challenge 400 webauthn_challenge_invalid.',
        tags: ['mfa'],
        body: ReauthenticateBody,
        response: {
          200: jsonResponse(ReauthenticatedSchema, 'Re-authenticated: a new access token for this session', REAUTHENTICATED_EXAMPLE),
          ...problemResponses(...BODY_PROBLEMS, 401, 429),
        },
      },
    },
    async (request) => {
      const body = request.body;
      const credential: StepUpCredential =
        'password' in body
          ? { kind: 'password', password: body.password }
          : body.method === 'passkey'
            ? { kind: 'passkey', challengeId: body.challengeId, response: asAssertion(body.response) }
            : { kind: 'totp', code: body.code };
      const session = await reauthenticate(gatehouse, request.principal!, credential, auditContext(request));
      return issueAccessToken(gatehouse, request, session);
    },
  );
};
