import { Type, type Static } from '@sinclair/typebox';
import type { Passkey } from '../db/schema.js';
import { PASSKEY_NAME_MAX } from '../domain/passkeys.js';

const B64 = (description?: string) => Type.String({ maxLength: 16384, pattern: '^[A-Za-z0-9_-]*={0,2}$', ...(description ? { description } : {}) });
const Open = <T extends Parameters<typeof Type.Object>[0]>(properties: T, description?: string) =>
  Type.Object(properties, { additionalProperties: true, ...(description ? { description } : {}) });
const Descriptor = Open({ id: B64(), type: Type.Literal('public-key'), transports: Type.Optional(Type.Array(Type.String())) });

export const ChallengeId = Type.String({ format: 'uuid', description: 'The challengeId of the options: single use, valid for WEBAUTHN_CHALLENGE_TTL' });

/** PublicKeyCredentialCreationOptionsJSON: give it to PublicKeyCredential.parseCreationOptionsFromJSON (or @simplewebauthn/browser). */
export const CreationOptionsSchema = Open(
  {
    rp: Open({ name: Type.String(), id: Type.Optional(Type.String()) }),
    user: Open({ id: B64('Opaque and random: never the email'), name: Type.String(), displayName: Type.String() }),
    challenge: B64(),
    pubKeyCredParams: Type.Array(Open({ type: Type.Literal('public-key'), alg: Type.Integer() })),
    timeout: Type.Optional(Type.Integer()),
    excludeCredentials: Type.Optional(Type.Array(Descriptor, { description: 'Your passkeys already registered' })),
    authenticatorSelection: Type.Optional(
      Open({
        residentKey: Type.Optional(Type.String()),
        requireResidentKey: Type.Optional(Type.Boolean()),
        userVerification: Type.Optional(Type.String()),
        authenticatorAttachment: Type.Optional(Type.String()),
      }),
    ),
    attestation: Type.Optional(Type.String()),
    hints: Type.Optional(Type.Array(Type.String())),
    extensions: Type.Optional(Open({})),
  },
  'Options for navigator.credentials.create(), in their JSON form',
);

/** PublicKeyCredentialRequestOptionsJSON: for navigator.credentials.get(). */
export const RequestOptionsSchema = Open(
  {
    challenge: B64(),
    timeout: Type.Optional(Type.Integer()),
    rpId: Type.Optional(Type.String()),
    allowCredentials: Type.Optional(Type.Array(Descriptor, { description: 'Empty for a usernameless sign-in; the user’s passkeys for a second step' })),
    userVerification: Type.Optional(Type.String()),
    hints: Type.Optional(Type.Array(Type.String())),
    extensions: Type.Optional(Open({})),
  },
  'Options for navigator.credentials.get(), in their JSON form',
);

const credentialFields = {
  id: B64(),
  rawId: B64(),
  type: Type.Literal('public-key'),
  authenticatorAttachment: Type.Optional(Type.String({ maxLength: 64 })),
  clientExtensionResults: Type.Optional(Type.Object({}, { additionalProperties: true, default: {} })),
};

/** RegistrationResponseJSON: what PublicKeyCredential.toJSON() gives after navigator.credentials.create(). */
export const RegistrationResponse = Open(
  {
    ...credentialFields,
    response: Open({
      clientDataJSON: B64(),
      attestationObject: B64(),
      authenticatorData: Type.Optional(B64()),
      transports: Type.Optional(Type.Array(Type.String({ maxLength: 64 }), { maxItems: 16 })),
      publicKeyAlgorithm: Type.Optional(Type.Integer()),
      publicKey: Type.Optional(B64()),
    }),
  },
  'The credential as PublicKeyCredential.toJSON() gives it after navigator.credentials.create()',
);

/** AuthenticationResponseJSON: what PublicKeyCredential.toJSON() gives after navigator.credentials.get(). */
export const AuthenticationResponse = Open(
  {
    ...credentialFields,
    response: Open({
      clientDataJSON: B64(),
      authenticatorData: B64(),
      signature: B64(),
      userHandle: Type.Optional(B64()),
    }),
  },
  'The assertion as PublicKeyCredential.toJSON() gives it after navigator.credentials.get()',
);

export const PasskeyName = Type.String({ minLength: 1, maxLength: PASSKEY_NAME_MAX, pattern: '\\S', examples: ['MacBook Touch ID'] });

export const PasskeySchema = Type.Object(
  {
    id: Type.String({ format: 'uuid' }),
    name: Type.String(),
    createdAt: Type.String({ format: 'date-time' }),
    lastUsedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()], { description: 'The last sign-in or step-up with it' }),
    backedUp: Type.Boolean({ description: 'Synced to the provider’s cloud (a multi-device passkey)' }),
  },
  { $id: 'Passkey', title: 'Passkey' },
);
export type PasskeyView = Static<typeof PasskeySchema>;

export const PASSKEY_EXAMPLE: PasskeyView = {
  id: '6a1f0e7c-2b8d-4c1e-9f3a-5d7e8b9c0a12',
  name: 'MacBook Touch ID',
  createdAt: '2026-01-15T09:40:00.000Z',
  lastUsedAt: null,
  backedUp: true,
};

export function toPasskeyView(passkey: Passkey): PasskeyView {
  return {
    id: passkey.id,
    name: passkey.name,
    createdAt: passkey.createdAt.toISOString(),
    lastUsedAt: passkey.lastUsedAt ? passkey.lastUsedAt.toISOString() : null,
    backedUp: passkey.backedUp,
  };
}

export const CREATION_CEREMONY_EXAMPLE = {
  challengeId: '3b241101-e2bb-4255-8caf-4136c566a962',
  options: {
    rp: { name: 'Gatehouse', id: 'example.com' },
    user: { id: 'r3Yb0bq8Qm4l2Hq3s0YyR3o1m8Jg5dQm9yKJt0cq3Yl', name: 'ann@example.com', displayName: 'Ann' },
    challenge: 'Jt0cq3Yl1kC2Jb0bQm4l2Hq3s0YyR3o1m8Jg5dQm9yK',
    pubKeyCredParams: [
      { type: 'public-key' as const, alg: -8 },
      { type: 'public-key' as const, alg: -7 },
      { type: 'public-key' as const, alg: -257 },
    ],
    timeout: 300000,
    excludeCredentials: [],
    authenticatorSelection: { residentKey: 'required', requireResidentKey: true, userVerification: 'required' },
    attestation: 'none',
  },
};

export const REQUEST_CEREMONY_EXAMPLE = {
  challengeId: '3b241101-e2bb-4255-8caf-4136c566a962',
  options: { challenge: 'Jt0cq3Yl1kC2Jb0bQm4l2Hq3s0YyR3o1m8Jg5dQm9yK', timeout: 300000, rpId: 'example.com', allowCredentials: [], userVerification: 'required' },
};

const CREDENTIAL_ID_EXAMPLE = 'pEbX0cmGqkdQy5fHuWmCUg';

export const REGISTRATION_VERIFY_EXAMPLE = {
  challengeId: CREATION_CEREMONY_EXAMPLE.challengeId,
  response: {
    id: CREDENTIAL_ID_EXAMPLE,
    rawId: CREDENTIAL_ID_EXAMPLE,
    type: 'public-key' as const,
    response: {
      clientDataJSON: 'eyJ0eXBlIjoid2ViYXV0aG4uY3JlYXRlIiwiY2hhbGxlbmdlIjoiSnQwY3EzWWwxa0MySmIwYlFtNGwySHEzczBZeVIzbzFtOEpnNWRRbTl5SyIsIm9yaWdpbiI6Imh0dHBzOi8vZXhhbXBsZS5jb20ifQ',
      attestationObject: 'o2NmbXRkbm9uZWdhdHRTdG10oGhhdXRoRGF0YVik',
      transports: ['internal', 'hybrid'],
    },
    authenticatorAttachment: 'platform',
    clientExtensionResults: {},
  },
  name: 'MacBook Touch ID',
};

export const AUTHENTICATION_VERIFY_EXAMPLE = {
  challengeId: REQUEST_CEREMONY_EXAMPLE.challengeId,
  response: {
    id: CREDENTIAL_ID_EXAMPLE,
    rawId: CREDENTIAL_ID_EXAMPLE,
    type: 'public-key' as const,
    response: {
      clientDataJSON: 'eyJ0eXBlIjoid2ViYXV0aG4uZ2V0IiwiY2hhbGxlbmdlIjoiSnQwY3EzWWwxa0MySmIwYlFtNGwySHEzczBZeVIzbzFtOEpnNWRRbTl5SyIsIm9yaWdpbiI6Imh0dHBzOi8vZXhhbXBsZS5jb20ifQ',
      authenticatorData: 'SZYN5YgOjGh0NBcPZHZgW4_krrmihjLHmVzzuoMdl2MFAAAAAQ',
      signature: 'MEUCIQDmQ7Xh0Fq3Zb1cJ7p9Z0nq2Qd8Xy5sYb6k3cL2vQIgVQ0aJ9m3ZtW6cR1dS2kH8pL4nX7yB5qE0uT3vA9fM2c',
      userHandle: 'r3Yb0bq8Qm4l2Hq3s0YyR3o1m8Jg5dQm9yKJt0cq3Yl',
    },
    authenticatorAttachment: 'platform',
    clientExtensionResults: {},
  },
};
