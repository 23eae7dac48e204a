import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import {
  PasskeysCredentialsMemoryRepository,
  WebAuthnEmulator,
  AuthenticatorEmulator,
  deserializeCredential,
  serializeCredential,
  type PublicKeyCredentialCreationOptionsJSON,
  type PublicKeyCredentialRequestOptionsJSON,
} from 'nid-webauthn-emulator';
import { isoCBOR } from '@simplewebauthn/server/helpers';
import type { PasskeyView } from '../../src/schemas/passkeys.js';
import { bearer, json, post } from './users.js';

/** The origin of APP_URL's default (http://localhost:5173): what the test config expects passkeys from. */
export const ORIGIN = 'http://localhost:5173';

/**
 * A software authenticator (CTAP2, ES256, discoverable credentials) behind a WebAuthn client: it
 * makes real attestation and assertion objects, signed with its own keys, as a browser would pass
 * them on. Each has its own credential store; `clone()` copies the keys and counter, like an
 * authenticator whose secrets were extracted.
 */
export class SoftwareAuthenticator {
  readonly repository = new PasskeysCredentialsMemoryRepository();
  readonly emulator: WebAuthnEmulator;

  constructor(readonly settings: { signCounterIncrement?: number } = {}) {
    this.emulator = new WebAuthnEmulator(
      new AuthenticatorEmulator({
        credentialsRepository: this.repository,
        signCounterIncrement: settings.signCounterIncrement ?? 1,
      }),
    );
  }

  create(options: unknown, origin = ORIGIN) {
    return this.emulator.createJSON(origin, options as PublicKeyCredentialCreationOptionsJSON);
  }

  get(options: unknown, origin = ORIGIN) {
    return this.emulator.getJSON(origin, options as PublicKeyCredentialRequestOptionsJSON);
  }

  clone(): SoftwareAuthenticator {
    const copy = new SoftwareAuthenticator(this.settings);
    for (const credential of this.repository.loadCredentials()) copy.repository.saveCredential(deserializeCredential(serializeCredential(credential)));
    return copy;
  }
}

type Attestation = ReturnType<SoftwareAuthenticator['create']>;

/**
 * The attestation as an authenticator that did not verify the user would have made it: the UV flag
 * of its authenticator data cleared. With attestation "none" nothing signs that data, so only the
 * server's own check can refuse it. (The emulator itself always verifies when asked to.)
 */
export function withoutUserVerification(attestation: Attestation): Attestation {
  const object = isoCBOR.decodeFirst<Map<string, unknown>>(Buffer.from(attestation.response.attestationObject, 'base64url'));
  const authData = Uint8Array.from(object.get('authData') as Uint8Array);
  authData[32] = authData[32]! & ~0x04;
  object.set('authData', authData);
  const attestationObject = Buffer.from(isoCBOR.encode(object as never)).toString('base64url');
  return { ...attestation, response: { ...attestation.response, attestationObject, authenticatorData: Buffer.from(authData).toString('base64url') } };
}

export interface CeremonyBody {
  challengeId: string;
  /** The WebAuthn options as JSON, read field by field in tests. */
  options: Record<string, any> & { challenge: string };
}

export async function registrationOptions(app: FastifyInstance, accessToken: string): Promise<CeremonyBody> {
  const res = await post(app, '/auth/passkeys/registration/options', undefined, bearer(accessToken));
  if (res.statusCode !== 200) throw new Error(`registration options failed: ${res.statusCode} ${res.body}`);
  return json<CeremonyBody>(res);
}

/** Registers a passkey of `authenticator` over HTTP for the holder of `accessToken` (a fresh session). */
export async function registerPasskey(app: FastifyInstance, accessToken: string, authenticator: SoftwareAuthenticator, name?: string): Promise<PasskeyView> {
  const { challengeId, options } = await registrationOptions(app, accessToken);
  const res = await post(app, '/auth/passkeys/registration/verify', { challengeId, response: authenticator.create(options), ...(name ? { name } : {}) }, bearer(accessToken));
  if (res.statusCode !== 201) throw new Error(`registration failed: ${res.statusCode} ${res.body}`);
  return json<PasskeyView>(res);
}

export async function authenticationOptions(app: FastifyInstance, body: { mfaToken?: string } = {}): Promise<CeremonyBody> {
  const res = await post(app, '/auth/passkeys/authentication/options', body);
  if (res.statusCode !== 200) throw new Error(`authentication options failed: ${res.statusCode} ${res.body}`);
  return json<CeremonyBody>(res);
}

/** A whole passkey sign-in (usernameless, or a second step with `mfaToken`): the verify answer. */
export async function signInWithPasskey(
  app: FastifyInstance,
  authenticator: SoftwareAuthenticator,
  body: { mfaToken?: string; useCookie?: boolean } = {},
): Promise<LightMyRequestResponse> {
  const { challengeId, options } = await authenticationOptions(app, body.mfaToken ? { mfaToken: body.mfaToken } : {});
  return post(app, '/auth/passkeys/authentication/verify', { challengeId, response: authenticator.get(options), ...body });
}
