import type { AuthenticationResponseJSON, RegistrationResponseJSON } from '@simplewebauthn/server';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type, type Static } from '@sinclair/typebox';
import { authenticate } from '../../domain/authentication.js';
import { findLiveChallenge } from '../../domain/mfa-challenges.js';
import { finishPasskeyRegistration, listPasskeys, removePasskey, renamePasskey, startPasskeyAuthentication, startPasskeyRegistration } from '../../domain/passkeys.js';
import { findUserById } from '../../domain/users.js';
import { problem } from '../../errors.js';
import { perIp } from '../../plugins/rate-limit.js';
import {
  AUTHENTICATION_VERIFY_EXAMPLE,
  AuthenticationResponse,
  CREATION_CEREMONY_EXAMPLE,
  ChallengeId,
  CreationOptionsSchema,
  PASSKEY_EXAMPLE,
  PasskeyName,
  PasskeySchema,
  REGISTRATION_VERIFY_EXAMPLE,
  REQUEST_CEREMONY_EXAMPLE,
  RegistrationResponse,
  RequestOptionsSchema,
  toPasskeyView,
} from '../../schemas/passkeys.js';
import { BODY_PROBLEMS, problemResponses } from '../../schemas/problem.js';
import { jsonResponse } from '../../schemas/responses.js';
import { TOKEN_RESPONSE_EXAMPLE, TokenResponseSchema } from '../../schemas/tokens.js';
import type { Gatehouse } from '../../services.js';
import { absentBodyAsEmpty } from '../body-hooks.js';
import { auditContext } from '../request-context.js';
import { issueTokens } from './tokens.js';

/** The body's credential as the WebAuthn library types it: the route schema checked its shape. */
export const asAssertion = (response: Static<typeof AuthenticationResponse>) => response as unknown as AuthenticationResponseJSON;
const asAttestation = (response: Static<typeof RegistrationResponse>) => response as unknown as RegistrationResponseJSON;

const PasskeyParams = Type.Object({ id: Type.String({ format: 'uuid', examples: [PASSKEY_EXAMPLE.id] }) });
const Ceremony = <T extends typeof CreationOptionsSchema | typeof RequestOptionsSchema>(options: T) =>
  Type.Object({ challengeId: Type.String({ format: 'uuid', description: 'Send it back with the credential: single use' }), options });

export const passkeyRoutes: FastifyPluginAsyncTypebox<{ gatehouse: Gatehouse }> = async (app, { gatehouse }) => {
  const { db, access, config } = gatehouse;

  app.post(
    '/passkeys/registration/options',
    {
      config: { authenticated: true, fresh: true },
      schema: {
        operationId: 'startPasskeyRegistration',
        summary: 'Start registering a passkey',
        description:
          'Answers options for navigator.credentials.create() (a discoverable credential with user verification, attestation none, your passkeys excluded) and a challengeId for POST /auth/passkeys/registration/verify, valid once, for WEBAUTHN_CHALLENGE_TTL. 409 passkey_limit_reached at PASSKEYS_MAX_PER_USER.',
        tags: ['passkeys'],
        response: { 200: jsonResponse(Ceremony(CreationOptionsSchema), 'The ceremony', CREATION_CEREMONY_EXAMPLE), ...problemResponses(401, 403, 409) },
      },
    },
    async (request) => {
      const user = await findUserById(db, request.principal!.userId);
      if (!user) throw problem('session_revoked', 'This session has been revoked: log in again.');
      return startPasskeyRegistration(db, config, user);
    },
  );

  app.post(
    '/passkeys/registration/verify',
    {
      config: { authenticated: true },
      schema: {
        operationId: 'finishPasskeyRegistration',
        summary: 'Register the passkey the browser created',
        description:
          'Checks the credential against its challenge (single use: 400 webauthn_challenge_invalid when unknown, expired or used), the origins (WEBAUTHN_ORIGINS), the RP ID (WEBAUTHN_RP_ID) and user verification (400 webauthn_verification_failed), and stores it. With PASSKEY_COUNTS_AS_MFA, your password logins take a second step from now on.',
        tags: ['passkeys'],
        body: Type.Object(
          { challengeId: ChallengeId, response: RegistrationResponse, name: Type.Optional(PasskeyName) },
          { additionalProperties: false, examples: [REGISTRATION_VERIFY_EXAMPLE] },
        ),
        response: { 201: jsonResponse(Type.Ref(PasskeySchema), 'Registered', PASSKEY_EXAMPLE), ...problemResponses(...BODY_PROBLEMS, 401, 409) },
      },
    },
    async (request, reply) => {
      const { userId } = request.principal!;
      const { challengeId, response, name } = request.body;
      const passkey = await finishPasskeyRegistration(db, config, { userId, challengeId, response: asAttestation(response), name: name?.trim() });
      await access.changed(userId);
      gatehouse.audit({ type: 'passkey_registered', ...auditContext(request), userId, detail: { passkeyId: passkey.id } });
      return reply.code(201).send(toPasskeyView(passkey));
    },
  );

  app.get(
    '/passkeys',
    {
      config: { authenticated: true },
      schema: {
        operationId: 'listPasskeys',
        summary: 'Your passkeys',
        tags: ['passkeys'],
        response: {
          200: jsonResponse(Type.Object({ items: Type.Array(Type.Ref(PasskeySchema)) }), 'Oldest first', { items: [PASSKEY_EXAMPLE] }),
          ...problemResponses(401),
        },
      },
    },
    async (request) => ({ items: (await listPasskeys(db, request.principal!.userId)).map(toPasskeyView) }),
  );

  app.patch(
    '/passkeys/:id',
    {
      config: { authenticated: true },
      schema: {
        operationId: 'renamePasskey',
        summary: 'Rename a passkey',
        tags: ['passkeys'],
        params: PasskeyParams,
        body: Type.Object({ name: PasskeyName }, { additionalProperties: false, examples: [{ name: 'Work laptop' }] }),
        response: { 200: jsonResponse(Type.Ref(PasskeySchema), 'Renamed', { ...PASSKEY_EXAMPLE, name: 'Work laptop' }), ...problemResponses(...BODY_PROBLEMS, 401, 404) },
      },
    },
    async (request) => toPasskeyView(await renamePasskey(db, request.principal!.userId, request.params.id, request.body.name.trim())),
  );

  app.delete(
    '/passkeys/:id',
    {
      config: { authenticated: true, fresh: true },
      schema: {
        operationId: 'removePasskey',
        summary: 'Remove a passkey',
        description: 'It signs in no more. When it was your last second factor, your sessions are back to aal1.',
        tags: ['passkeys'],
        params: PasskeyParams,
        response: { 204: Type.Null({ description: 'Removed' }), ...problemResponses(400, 401, 403, 404) },
      },
    },
    async (request, reply) => {
      const { userId } = request.principal!;
      const removed = await db.transaction((tx) => removePasskey(tx, userId, request.params.id, { countsAsMfa: config.passkeyCountsAsMfa }));
      await access.changed(userId);
      gatehouse.audit({ type: 'passkey_removed', ...auditContext(request), userId, detail: { passkeyId: removed.id } });
      return reply.code(204).send(null);
    },
  );

  app.post(
    '/passkeys/authentication/options',
    {
      config: { public: true, rateLimit: perIp(config.rateLimits.login) },
      preValidation: absentBodyAsEmpty,
      schema: {
        operationId: 'startPasskeyAuthentication',
        summary: 'Start a passkey sign-in',
        description:
          'Without a body (or {}): options for a usernameless sign-in, allowCredentials empty, so the browser offers the passkeys it holds for this site (also as autofill: mediation "conditional"). With the mfaToken of a login that answered mfaRequired: that user’s passkeys, for the second step. Then POST /auth/passkeys/authentication/verify.',
        tags: ['passkeys'],
        body: Type.Object({ mfaToken: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })) }, { additionalProperties: false, examples: [{}] }),
        response: { 200: jsonResponse(Ceremony(RequestOptionsSchema), 'The ceremony', REQUEST_CEREMONY_EXAMPLE), ...problemResponses(...BODY_PROBLEMS, 401, 429) },
      },
    },
    async (request) => {
      const { mfaToken } = request.body;
      let userId: string | null = null;
      if (mfaToken !== undefined) {
        const challenge = await findLiveChallenge(db, mfaToken);
        if (!challenge) throw problem('mfa_token_invalid', 'This mfaToken is not valid: it expired, was used, or had too many wrong codes. Log in again.');
        userId = challenge.userId;
      }
      return startPasskeyAuthentication(db, config, userId);
    },
  );

  app.post(
    '/passkeys/authentication/verify',
    {
      config: { public: true, rateLimit: perIp(config.rateLimits.login) },
      schema: {
        operationId: 'verifyPasskey',
        summary: 'Sign in with a passkey',
        description:
          'Answers like a login. Alone, a usernameless sign-in: the session is aal2 (amr hwk, user) when PASSKEY_COUNTS_AS_MFA, else aal1. With the mfaToken of a login that answered mfaRequired, its second step (aal2). The signature counter must grow (authenticators that always report 0 excepted). 401 passkey_invalid for an unknown passkey, a disabled account, a wrong origin or signature, or a counter that did not grow; 400 webauthn_challenge_invalid for a challenge unknown, expired or used (each works once).',
        tags: ['passkeys'],
        body: Type.Object(
          {
            challengeId: ChallengeId,
            response: AuthenticationResponse,
            mfaToken: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
            useCookie: Type.Optional(Type.Boolean({ description: 'Put the refresh token in an httpOnly cookie (SPAs)' })),
          },
          { additionalProperties: false, examples: [AUTHENTICATION_VERIFY_EXAMPLE] },
        ),
        response: {
          200: jsonResponse(Type.Ref(TokenResponseSchema), 'Signed in: a new session', TOKEN_RESPONSE_EXAMPLE),
          ...problemResponses(...BODY_PROBLEMS, 401, 403, 429),
        },
      },
    },
    async (request, reply) => {
      const { challengeId, response, mfaToken, useCookie } = request.body;
      const opened = await authenticate(gatehouse, { kind: 'passkey', challengeId, response: asAssertion(response), mfaToken }, auditContext(request));
      return issueTokens(gatehouse, request, reply, { ...opened, useCookie: useCookie === true });
    },
  );
};
