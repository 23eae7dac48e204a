import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { acceptInvitation, usableInvitation } from '../../domain/invitations.js';
import { assertPasswordPolicy } from '../../domain/password-policy.js';
import { perIp } from '../../plugins/rate-limit.js';
import { AcceptInvitationBody } from '../../schemas/invitations.js';
import { BODY_PROBLEMS, problemResponses } from '../../schemas/problem.js';
import { jsonResponse } from '../../schemas/responses.js';
import { TOKEN_RESPONSE_EXAMPLE, TokenResponseSchema } from '../../schemas/tokens.js';
import type { Gatehouse } from '../../services.js';
import { auditContext } from '../request-context.js';
import { issueTokens, openLoginSession } from './tokens.js';

export const invitationRoutes: FastifyPluginAsyncTypebox<{ gatehouse: Gatehouse }> = async (app, { gatehouse }) => {
  app.post(
    '/invitations/accept',
    {
      // The token is the credential: as open as registration, and limited like it.
      config: { public: true, rateLimit: perIp(gatehouse.config.rateLimits.register) },
      schema: {
        operationId: 'acceptInvitation',
        summary: 'Create your account from an invitation',
        description:
          "Creates the account with the invitation's email (confirmed by this) and roles, and signs in. Works with REGISTRATION=invite-only. " +
          '410 invitation_invalid for a token that is unknown, expired, used or revoked; 409 email_taken when an account got the address meanwhile.',
        tags: ['account'],
        body: AcceptInvitationBody,
        response: {
          201: jsonResponse(Type.Ref(TokenResponseSchema), 'Signed up and signed in', TOKEN_RESPONSE_EXAMPLE),
          ...problemResponses(...BODY_PROBLEMS, 409, 410, 429),
        },
      },
    },
    async (request, reply) => {
      const { token, password, name, useCookie } = request.body;
      // Checked before the slow hash, and again (atomically) when the invitation is claimed.
      const pending = await usableInvitation(gatehouse.db, token);
      assertPasswordPolicy(password, pending.email);
      const passwordHash = await gatehouse.passwords.hash(password);
      const { user, invitation } = await acceptInvitation(gatehouse.db, { token, passwordHash, name });
      gatehouse.audit({
        type: 'invitation_accepted',
        ...auditContext(request),
        actorId: user.id,
        userId: user.id,
        detail: { invitationId: invitation.id, roles: invitation.roles, invitedBy: invitation.invitedBy },
      });
      const opened = await openLoginSession(gatehouse, request, user.id);
      reply.code(201);
      return issueTokens(gatehouse, request, reply, { ...opened, useCookie: useCookie === true });
    },
  );
};
