import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { confirmEmail } from '../../domain/account.js';
import { findUserByEmail, findUserById } from '../../domain/users.js';
import { problem } from '../../errors.js';
import { perIp } from '../../plugins/rate-limit.js';
import { BODY_PROBLEMS, problemResponses } from '../../schemas/problem.js';
import { jsonResponse } from '../../schemas/responses.js';
import { Email, USER_EXAMPLE, UserSchema, toUserView } from '../../schemas/user.js';
import type { Gatehouse } from '../../services.js';
import { normalizeEmailFields } from '../body-hooks.js';
import { auditContext } from '../request-context.js';
import { assertCurrentPassword } from './current-password.js';
import { sendConfirmation, sendEmailChange, sendEmailChangedNotice } from './email-links.js';

/** What a mailed link carries after #token=, as the examples show it. */
export const LINK_TOKEN_EXAMPLE = 'mQ3pY8vTz2bKc6wR1nH5jL0sD4fG7aX9eU2iO6yB3tM';
export const TokenBody = Type.Object(
  { token: Type.String({ minLength: 1, maxLength: 512 }) },
  { additionalProperties: false, examples: [{ token: LINK_TOKEN_EXAMPLE }] },
);
export const Accepted = jsonResponse(
  Type.Object({ status: Type.Literal('accepted') }),
  'Accepted: a mail is on its way if there is anything to send',
  { status: 'accepted' },
);
const INVALID_CREDENTIALS = 'The password is wrong.';

export const emailRoutes: FastifyPluginAsyncTypebox<{ gatehouse: Gatehouse }> = async (app, { gatehouse }) => {
  const { db, access } = gatehouse;

  app.post(
    '/email/confirm',
    {
      config: { public: true },
      schema: {
        operationId: 'confirmEmail',
        summary: 'Confirm an email address with the token from the mailed link',
        description:
          'Confirms a sign-up address, or completes an email change (the answer shows the new address; the old address is told). Single use.',
        tags: ['account'],
        body: TokenBody,
        response: {
          200: jsonResponse(Type.Object({ user: Type.Ref(UserSchema) }), 'Confirmed', {
            user: { ...USER_EXAMPLE, emailConfirmedAt: '2026-01-15T09:35:00.000Z' },
          }),
          ...problemResponses(...BODY_PROBLEMS, 409),
        },
      },
    },
    async (request) => {
      const { userId, changedTo, previousEmail } = await confirmEmail(db, request.body.token);
      await access.changed(userId);
      if (changedTo) sendEmailChangedNotice(gatehouse, { previousEmail, newEmail: changedTo });
      gatehouse.audit({ type: 'email_confirmed', ...auditContext(request), userId, detail: changedTo ? { newEmail: changedTo, previousEmail } : {} });
      const current = await access.get(userId);
      if (!current) throw problem('token_invalid', 'This link is not valid, or has already been used.', { status: 400 });
      return { user: toUserView(current) };
    },
  );

  app.post(
    '/email/resend',
    {
      config: { public: true, rateLimit: perIp(gatehouse.config.rateLimits.resend) },
      preValidation: normalizeEmailFields('email'),
      schema: {
        operationId: 'resendConfirmation',
        summary: 'Mail the confirmation link again',
        description: 'Answers 202 whether or not the address belongs to an account, so it reveals nothing.',
        tags: ['account'],
        body: Type.Object({ email: Type.String({ minLength: 1, maxLength: 320 }) }, { additionalProperties: false, examples: [{ email: 'ann@example.com' }] }),
        response: { 202: Accepted, ...problemResponses(...BODY_PROBLEMS, 429) },
      },
    },
    async (request, reply) => {
      const { email } = request.body;
      gatehouse.background.run('resend-lookup', async () => {
        const user = await findUserByEmail(db, email);
        if (user && !user.emailConfirmedAt) sendConfirmation(gatehouse, { userId: user.id, email: user.email });
      });
      return reply.code(202).send({ status: 'accepted' as const });
    },
  );

  app.post(
    '/email/change',
    {
      config: { authenticated: true, fresh: true, rateLimit: perIp(gatehouse.config.rateLimits.login) },
      preValidation: normalizeEmailFields('newEmail'),
      schema: {
        operationId: 'changeEmail',
        summary: 'Change the email address',
        description:
          'Mails a confirmation link to the new address, and a notice to the current one; the email changes only when that link is used. ' +
          'An address another account has gets the same 202 and no mail (the link never comes), so the answer does not tell whether an address is registered. ' +
          'A wrong password counts toward the login lockout (429 login_locked).',
        tags: ['account'],
        body: Type.Object(
          { newEmail: Email, password: Type.String({ minLength: 1, maxLength: 1024 }) },
          { additionalProperties: false, examples: [{ newEmail: 'ann.smith@example.com', password: 'correct horse battery staple' }] },
        ),
        response: { 202: Accepted, ...problemResponses(...BODY_PROBLEMS, 401, 403, 429) },
      },
    },
    async (request, reply) => {
      const { newEmail, password } = request.body;
      const current = await findUserById(db, request.principal!.userId);
      if (!current) throw problem('invalid_credentials', INVALID_CREDENTIALS);
      await assertCurrentPassword(gatehouse, request, { user: current, password, action: 'email_change', wrongDetail: INVALID_CREDENTIALS });
      // Whether the address is taken is decided after the answer, so it cannot show in it.
      sendEmailChange(gatehouse, { userId: current.id, currentEmail: current.email, newEmail });
      gatehouse.audit({ type: 'email_change_requested', ...auditContext(request), userId: current.id, detail: { newEmail } });
      return reply.code(202).send({ status: 'accepted' as const });
    },
  );
};
