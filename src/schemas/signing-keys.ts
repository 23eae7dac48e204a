import { Type, type Static } from '@sinclair/typebox';
import type { SigningKeyView } from '../domain/signing-keys.js';

/** A public JWK as published: the key's public members (EC x/y, OKP x, RSA n/e), kid, alg, use. */
export const PublicJwkSchema = Type.Object(
  {
    kty: Type.String(),
    kid: Type.String(),
    alg: Type.String(),
    use: Type.Literal('sig'),
    crv: Type.Optional(Type.String()),
    x: Type.Optional(Type.String()),
    y: Type.Optional(Type.String()),
    n: Type.Optional(Type.String()),
    e: Type.Optional(Type.String()),
  },
  { description: 'A public JWK: never a private member' },
);

export const SigningAlgSchema = Type.Union([Type.Literal('ES256'), Type.Literal('EdDSA'), Type.Literal('RS256')]);

export const SigningKeySchema = Type.Object({
  kid: Type.String({ description: 'RFC 7638 thumbprint of the public key' }),
  alg: SigningAlgSchema,
  status: Type.Union([Type.Literal('next'), Type.Literal('current'), Type.Literal('retired'), Type.Literal('revoked')]),
  publicJwk: PublicJwkSchema,
  createdAt: Type.String({ format: 'date-time' }),
  activatedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  retiredAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  revokedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
});
export type SigningKeyResponse = Static<typeof SigningKeySchema>;

export const JWK_EXAMPLE = {
  kty: 'EC',
  crv: 'P-256',
  x: 'f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU',
  y: 'x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0',
  kid: 'NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs',
  alg: 'ES256',
  use: 'sig' as const,
};

export const SIGNING_KEY_EXAMPLE: SigningKeyResponse = {
  kid: JWK_EXAMPLE.kid,
  alg: 'ES256',
  status: 'next',
  publicJwk: JWK_EXAMPLE,
  createdAt: '2026-01-15T09:00:00.000Z',
  activatedAt: null,
  retiredAt: null,
  revokedAt: null,
};

export function toSigningKeyView(key: SigningKeyView): SigningKeyResponse {
  const iso = (date: Date | null) => date && date.toISOString();
  return {
    kid: key.kid,
    alg: key.alg,
    status: key.status,
    publicJwk: key.publicJwk as SigningKeyResponse['publicJwk'],
    createdAt: key.createdAt.toISOString(),
    activatedAt: iso(key.activatedAt),
    retiredAt: iso(key.retiredAt),
    revokedAt: iso(key.revokedAt),
  };
}
