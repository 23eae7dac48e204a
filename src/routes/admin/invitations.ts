import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { createInvitation, listInvitations, revokeInvitation } from '../../domain/invitations.js';
import { invitationMessage, linkTo } from '../../mail/messages.js';
import {
  CREATED_INVITATION_EXAMPLE,
  CreateInvitationBody,
  CreatedInvitationSchema,
  INVITATION_EXAMPLE,
  INVITATION_ID_EXAMPLE,
  InvitationSchema,
  toInvitationView,
} from '../../schemas/invitations.js';
import { BODY_PROBLEMS, problemResponses } from '../../schemas/problem.js';
import { jsonResponse } from '../../schemas/responses.js';
import type { Gatehouse } from '../../services.js';
import { normalizeEmailFields } from '../body-hooks.js';
import { grantorOf } from '../grantor.js';
import { auditContext } from '../request-context.js';

const InvitationParams = Type.Object({ id: Type.String({ format: 'uuid', examples: [INVITATION_ID_EXAMPLE] }) });

export const adminInvitationRoutes: FastifyPluginAsyncTypebox<{ gatehouse: Gatehouse }> = async (app, { gatehouse }) => {
  const { db, config } = gatehouse;

  app.post(
    '/invitations',
    {
      config: { permissionsRequired: ['users:write'] },
      preValidation: normalizeEmailFields('email'),
      schema: {
        operationId: 'createInvitation',
        summary: 'Invite someone to sign up, with roles',
        description:
          'Mails a link APP_URL/accept-invite#token=... valid for INVITE_TTL; the token is in the mail only. You must hold every permission the roles grant (403 exceeds_own_permissions). ' +
          'A newer invitation to the same address revokes the pending ones. 409 email_taken when an account has the address.',
        tags: ['admin'],
        body: CreateInvitationBody,
        response: {
          201: jsonResponse(CreatedInvitationSchema, 'Invited: the link is on its way', CREATED_INVITATION_EXAMPLE),
          ...problemResponses(...BODY_PROBLEMS, 401, 403, 409),
        },
      },
    },
    async (request, reply) => {
      const { invitation, token } = await createInvitation(db, grantorOf(request), { ...request.body, ttlSeconds: config.inviteTtl });
      gatehouse.mailer.send(invitationMessage(invitation.email, linkTo(config.appUrl, 'accept-invite', token), Math.round(config.inviteTtl / 3600)));
      gatehouse.audit({ type: 'invitation_created', ...auditContext(request), detail: { invitationId: invitation.id, email: invitation.email, roles: invitation.roles } });
      const { id, email, roles, expiresAt } = toInvitationView(invitation);
      return reply.code(201).send({ id, email, roles, expiresAt });
    },
  );

  app.get(
    '/invitations',
    {
      config: { permissionsRequired: ['users:read'] },
      schema: {
        operationId: 'listInvitations',
        summary: 'Invitations, newest first',
        description: 'Every invitation (at most 1000) with its status; never a token.',
        tags: ['admin'],
        response: {
          200: jsonResponse(Type.Object({ items: Type.Array(InvitationSchema) }), 'The invitations', { items: [INVITATION_EXAMPLE] }),
          ...problemResponses(401, 403),
        },
      },
    },
    async () => ({ items: (await listInvitations(db)).map((row) => toInvitationView(row)) }),
  );

  app.delete(
    '/invitations/:id',
    {
      config: { permissionsRequired: ['users:write'] },
      schema: {
        operationId: 'revokeInvitation',
        summary: 'Revoke an invitation',
        description: 'Its link answers 410 invitation_invalid from now on. Idempotent; an accepted invitation stays as it is.',
        tags: ['admin'],
        params: InvitationParams,
        response: { 204: Type.Null({ description: 'Revoked' }), ...problemResponses(400, 401, 403, 404) },
      },
    },
    async (request, reply) => {
      const { revoked, invitation } = await revokeInvitation(db, request.params.id);
      if (revoked) gatehouse.audit({ type: 'invitation_revoked', ...auditContext(request), detail: { invitationId: invitation.id, email: invitation.email } });
      return reply.code(204).send(null);
    },
  );
};
