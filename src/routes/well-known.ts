import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { SIGNING_ALGS } from '../domain/signing-keys.js';
import { problemResponses } from '../schemas/problem.js';
import { jsonResponse } from '../schemas/responses.js';
import { JWK_EXAMPLE, PublicJwkSchema } from '../schemas/signing-keys.js';
import type { Gatehouse } from '../services.js';

const Jwks = Type.Object({ keys: Type.Array(PublicJwkSchema) });
const Discovery = Type.Object({
  issuer: Type.String(),
  jwks_uri: Type.String({ format: 'uri' }),
  id_token_signing_alg_values_supported: Type.Array(Type.String(), { description: 'How access tokens are signed: JWT_ALG first' }),
});

/**
 * What a resource server needs to verify Gatehouse's access tokens with no Gatehouse code: the
 * public keys (RFC 7517) and where to find them (OpenID Connect Discovery's fields that apply).
 */
export const wellKnownRoutes: FastifyPluginAsyncTypebox<{ gatehouse: Gatehouse; mountedAt: string }> = async (app, { gatehouse, mountedAt }) => {
  const { config, signingKeys } = gatehouse;
  // Where Gatehouse is mounted (not `prefix`, which Fastify would add to these routes a second time).
  const jwksUri = `${config.publicUrl}${mountedAt.replace(/\/+$/, '')}/.well-known/jwks.json`;
  // Any asymmetric key verifies, whatever JWT_ALG names for new keys.
  const algorithms = [config.jwtAlg, ...SIGNING_ALGS.filter((alg) => alg !== config.jwtAlg && config.jwtAlg !== 'HS256')];

  app.get(
    '/.well-known/jwks.json',
    {
      config: { public: true },
      schema: {
        operationId: 'getJwks',
        summary: 'The public keys that verify access tokens (JWKS)',
        description: `Keys in next, current and retired state; empty under JWT_ALG=HS256. Cacheable for JWKS_MAX_AGE (${config.jwksMaxAge} s).`,
        tags: ['keys'],
        response: { 200: jsonResponse(Jwks, 'The key set', { keys: [JWK_EXAMPLE] }), ...problemResponses(404) },
      },
    },
    async (_request, reply) => {
      reply.header('cache-control', `public, max-age=${config.jwksMaxAge}`);
      return signingKeys.jwks();
    },
  );

  app.get(
    '/.well-known/openid-configuration',
    {
      config: { public: true },
      schema: {
        operationId: 'getOpenidConfiguration',
        summary: 'Discovery: the issuer, the JWKS address and the signing algorithms',
        tags: ['keys'],
        response: {
          200: jsonResponse(Discovery, 'Discovery document', {
            issuer: 'gatehouse',
            jwks_uri: 'https://id.example.com/.well-known/jwks.json',
            id_token_signing_alg_values_supported: ['ES256', 'EdDSA', 'RS256'],
          }),
          ...problemResponses(404),
        },
      },
    },
    async (_request, reply) => {
      reply.header('cache-control', `public, max-age=${config.jwksMaxAge}`);
      return {
        issuer: config.jwtIssuer,
        jwks_uri: jwksUri,
        id_token_signing_alg_values_supported: algorithms,
      };
    },
  );
};
