import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { OPTIONAL_BODY } from '../../plugins/openapi.js';
import { BODY_PROBLEMS, problemResponses } from '../../schemas/problem.js';
import { jsonResponse } from '../../schemas/responses.js';
import { SIGNING_KEY_EXAMPLE, SigningAlgSchema, SigningKeySchema, toSigningKeyView } from '../../schemas/signing-keys.js';
import { absentBodyAsEmpty } from '../body-hooks.js';
import { auditContext } from '../request-context.js';
import type { Gatehouse } from '../../services.js';

// The example matters beyond the docs: a parameter without one is faked by the Postman converter,
// at random (test/postman.test.ts found "strin" one run in twenty).
const KidParams = Type.Object({ kid: Type.String({ minLength: 1, maxLength: 100, examples: ['G5MEjZnoooBbaLcitEqyDxlbctyQpo8U_DqfBGDFsRA'] }) });
const CreateBody = Type.Object(
  { alg: Type.Optional(SigningAlgSchema) },
  { additionalProperties: false, examples: [{ alg: 'ES256' }], description: 'alg: JWT_ALG when omitted (ES256 under HS256)' },
);
const ActivateBody = Type.Object(
  { force: Type.Optional(Type.Boolean({ description: 'activate before the key has been published for JWKS_MAX_AGE' })) },
  { additionalProperties: false, examples: [{ force: false }] },
);
const RevokeBody = Type.Object(
  { reason: Type.Optional(Type.String({ maxLength: 200, description: 'kept in the audit log' })) },
  { additionalProperties: false, examples: [{ reason: 'private key exposed in a backup' }] },
);
/** Rotating keys decides which tokens every service trusts: a recent factor, like other account-wide powers. */
const RULE = { permissionsRequired: ['keys:manage'], fresh: true };
const CURRENT_EXAMPLE = { ...SIGNING_KEY_EXAMPLE, status: 'current' as const, activatedAt: '2026-01-15T09:10:00.000Z' };

export const adminSigningKeyRoutes: FastifyPluginAsyncTypebox<{ gatehouse: Gatehouse }> = async (app, { gatehouse }) => {
  const { signingKeys } = gatehouse;

  app.get(
    '/signing-keys',
    {
      config: RULE,
      schema: {
        operationId: 'listSigningKeys',
        summary: 'List signing keys',
        description: 'Every key of signing_keys, revoked ones included, with its public JWK only (under JWT_PRIVATE_KEYS: the configured keys; under HS256: none).',
        tags: ['admin'],
        response: {
          200: jsonResponse(Type.Object({ items: Type.Array(SigningKeySchema) }), 'The keys, oldest first', { items: [CURRENT_EXAMPLE, SIGNING_KEY_EXAMPLE] }),
          ...problemResponses(401, 403),
        },
      },
    },
    async () => ({ items: (await signingKeys.list()).map(toSigningKeyView) }),
  );

  app.post(
    '/signing-keys',
    {
      config: RULE,
      preValidation: absentBodyAsEmpty,
      schema: {
        operationId: 'createSigningKey',
        summary: 'Create a signing key (next: published, not signing yet)',
        tags: ['admin'],
        [OPTIONAL_BODY]: true,
        body: CreateBody,
        response: { 201: jsonResponse(SigningKeySchema, 'Created', SIGNING_KEY_EXAMPLE), ...problemResponses(...BODY_PROBLEMS, 401, 403, 409) },
      },
    },
    async (request, reply) => {
      const key = await signingKeys.create(request.body.alg);
      gatehouse.audit({ type: 'signing_key_created', ...auditContext(request), detail: { kid: key.kid, alg: key.alg } });
      return reply.code(201).send(toSigningKeyView(key));
    },
  );

  app.post(
    '/signing-keys/:kid/activate',
    {
      config: RULE,
      preValidation: absentBodyAsEmpty,
      schema: {
        operationId: 'activateSigningKey',
        summary: 'Make a key current: it signs from now on, the previous current key is retired (still verifies)',
        description: '409 key_not_published_long_enough while the key has been published for less than JWKS_MAX_AGE, unless force is true.',
        tags: ['admin'],
        params: KidParams,
        [OPTIONAL_BODY]: true,
        body: ActivateBody,
        response: { 200: jsonResponse(SigningKeySchema, 'The key, now current', CURRENT_EXAMPLE), ...problemResponses(...BODY_PROBLEMS, 401, 403, 404, 409) },
      },
    },
    async (request) => {
      const force = request.body.force === true;
      const key = await signingKeys.activate(request.params.kid, { force });
      gatehouse.audit({ type: 'signing_key_activated', ...auditContext(request), detail: { kid: key.kid, alg: key.alg, force } });
      return toSigningKeyView(key);
    },
  );

  app.post(
    '/signing-keys/:kid/revoke',
    {
      config: RULE,
      preValidation: absentBodyAsEmpty,
      schema: {
        operationId: 'revokeSigningKey',
        summary: 'Revoke a key: no longer published nor accepted, at once on every instance',
        description: 'Tokens it signed are refused from the next request on. 409 signing_key_current for the current key.',
        tags: ['admin'],
        params: KidParams,
        [OPTIONAL_BODY]: true,
        body: RevokeBody,
        response: {
          200: jsonResponse(SigningKeySchema, 'The key, now revoked', { ...SIGNING_KEY_EXAMPLE, status: 'revoked', revokedAt: '2026-01-16T09:00:00.000Z' }),
          ...problemResponses(...BODY_PROBLEMS, 401, 403, 404, 409),
        },
      },
    },
    async (request) => {
      const key = await signingKeys.revoke(request.params.kid);
      const { reason } = request.body;
      gatehouse.audit({ type: 'signing_key_revoked', ...auditContext(request), detail: { kid: key.kid, alg: key.alg, ...(reason ? { reason } : {}) } });
      return toSigningKeyView(key);
    },
  );
};
