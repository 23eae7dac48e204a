import { randomBytes } from 'node:crypto';
import type {
  AuthenticationResponseJSON,
  PublicKeyCredentialCreationOptionsJSON,
  PublicKeyCredentialRequestOptionsJSON,
  RegistrationResponseJSON,
} from '@simplewebauthn/server';
import { and, asc, count, eq, lt, or, sql } from 'drizzle-orm';
import type { Config } from '../config.js';
import type { Db } from '../db/client.js';
import { isUniqueViolation } from '../db/errors.js';
import { passkeys, users, type Passkey } from '../db/schema.js';
import { problem } from '../errors.js';
import { isUuid } from '../lib/uuid.js';
import { hasSecondFactor } from './mfa.js';
import { dropSecondFactor } from './sessions.js';
import type { DbOrTx } from './users.js';
import { consumeWebauthnChallenge, issueWebauthnChallenge } from './webauthn-challenges.js';

/**
 * @simplewebauthn/server (with its ASN.1 and COSE parsers) takes about 300 ms to load: loaded at
 * the first passkey ceremony rather than at every start, which most processes never need.
 */
const webauthn = () => import('@simplewebauthn/server');

export type PasskeySettings = Pick<Config, 'webauthn' | 'passkeysMaxPerUser'>;

export const PASSKEY_NAME_MAX = 100;
const CHALLENGE_INVALID = 'This challenge is unknown, expired or used already (each works once): ask for new options.';

/** A ceremony's options for the browser, and the id to send back with its result. */
export interface Ceremony<Options> {
  challengeId: string;
  options: Options;
}

/** The timeout the browser is given: the challenge's own lifetime. */
const timeoutOf = (settings: PasskeySettings) => settings.webauthn.challengeTtl * 1000;

export async function listPasskeys(db: DbOrTx, userId: string): Promise<Passkey[]> {
  return db.select().from(passkeys).where(eq(passkeys.userId, userId)).orderBy(asc(passkeys.createdAt), asc(passkeys.id));
}

/**
 * Options for navigator.credentials.create(): a discoverable credential with user verification,
 * no attestation, the user's own passkeys excluded (an authenticator holds one per account). The
 * user handle is random, one per user, and never the email: every passkey of the user carries it.
 */
export async function startPasskeyRegistration(
  db: DbOrTx,
  settings: PasskeySettings,
  user: { id: string; email: string; name: string | null },
): Promise<Ceremony<PublicKeyCredentialCreationOptionsJSON>> {
  const { generateRegistrationOptions } = await webauthn();
  const existing = await listPasskeys(db, user.id);
  if (existing.length >= settings.passkeysMaxPerUser) throw limitReached(settings);
  const userHandle = existing[0]?.userHandle ?? randomBytes(32).toString('base64url');
  const options = await generateRegistrationOptions({
    rpName: settings.webauthn.rpName,
    rpID: settings.webauthn.rpId,
    userName: user.email,
    userDisplayName: user.name ?? user.email,
    userID: Buffer.from(userHandle, 'base64url'),
    timeout: timeoutOf(settings),
    attestationType: 'none',
    excludeCredentials: existing.map((p) => ({ id: p.credentialId, transports: p.transports })),
    authenticatorSelection: { residentKey: 'required', requireResidentKey: true, userVerification: 'required' },
  });
  const challengeId = await issueWebauthnChallenge(db, {
    purpose: 'registration',
    challenge: options.challenge,
    userId: user.id,
    userHandle,
    ttl: settings.webauthn.challengeTtl,
  });
  return { challengeId, options };
}

const limitReached = (settings: PasskeySettings) =>
  problem('passkey_limit_reached', `You have ${settings.passkeysMaxPerUser} passkeys, the most allowed: remove one first.`);

/**
 * Checks the browser's answer to the registration options (origin, RP ID, challenge, user
 * verification) and stores the passkey. The challenge is used up whatever the outcome. The
 * user's row is locked while passkeys are counted, so parallel registrations cannot pass the limit.
 */
export async function finishPasskeyRegistration(
  db: Db,
  settings: PasskeySettings,
  input: { userId: string; challengeId: string; response: RegistrationResponseJSON; name?: string },
): Promise<Passkey> {
  const { verifyRegistrationResponse } = await webauthn();
  const issued = await consumeWebauthnChallenge(db, input.challengeId, 'registration');
  if (!issued || issued.userId !== input.userId || !issued.userHandle) throw problem('webauthn_challenge_invalid', CHALLENGE_INVALID);
  let info;
  try {
    const verification = await verifyRegistrationResponse({
      response: input.response,
      expectedChallenge: issued.challenge,
      expectedOrigin: settings.webauthn.origins,
      expectedRPID: settings.webauthn.rpId,
      requireUserVerification: true,
    });
    if (!verification.verified) throw new Error('The attestation did not verify.');
    info = verification.registrationInfo;
  } catch (err) {
    throw problem('webauthn_verification_failed', `The passkey could not be verified: ${describe(err)}`);
  }
  const { credential } = info;
  try {
    return await db.transaction(async (tx) => {
      const [owner] = await tx.select({ id: users.id }).from(users).where(eq(users.id, input.userId)).for('update');
      if (!owner) throw problem('session_revoked', 'This session has been revoked: log in again.');
      const [held] = await tx.select({ n: count() }).from(passkeys).where(eq(passkeys.userId, input.userId));
      const n = held?.n ?? 0;
      if (n >= settings.passkeysMaxPerUser) throw limitReached(settings);
      const [created] = await tx
        .insert(passkeys)
        .values({
          userId: input.userId,
          credentialId: credential.id,
          publicKey: Buffer.from(credential.publicKey).toString('base64url'),
          counter: credential.counter,
          transports: credential.transports ?? [],
          name: input.name ?? `Passkey ${n + 1}`,
          userHandle: issued.userHandle!,
          backedUp: info.credentialBackedUp,
        })
        .returning();
      return created!;
    });
  } catch (err) {
    if (isUniqueViolation(err)) throw problem('passkey_exists', 'This passkey is registered already.');
    throw err;
  }
}

/** The library's reason, short: it names what did not match (origin, RP ID, flags), never a secret. */
function describe(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.slice(0, 300);
}

export async function renamePasskey(db: DbOrTx, userId: string, id: string, name: string): Promise<Passkey> {
  const [renamed] = isUuid(id)
    ? await db.update(passkeys).set({ name }).where(and(eq(passkeys.id, id), eq(passkeys.userId, userId))).returning()
    : [];
  if (!renamed) throw problem('not_found', `You have no passkey with id ${id}.`);
  return renamed;
}

/**
 * Removes one passkey of the user, in the caller's transaction. When it was their last second factor, their sessions fall
 * back to aal1, as when an authenticator is removed. Answers the removed passkey.
 */
export async function removePasskey(tx: DbOrTx, userId: string, id: string, options: { countsAsMfa: boolean }): Promise<Passkey> {
  // The user's row locked first: two removals in parallel must not each see the other's passkey left.
  await tx.select({ id: users.id }).from(users).where(eq(users.id, userId)).for('update');
  const [removed] = isUuid(id) ? await tx.delete(passkeys).where(and(eq(passkeys.id, id), eq(passkeys.userId, userId))).returning() : [];
  if (!removed) throw problem('not_found', `No passkey with id ${id} for this user.`);
  if (!(await hasSecondFactor(tx, userId, options))) await dropSecondFactor(tx, userId);
  return removed;
}

/**
 * Options for navigator.credentials.get(). Without a user, allowCredentials is empty: the
 * authenticator offers the discoverable credentials it holds for the RP (usernameless, autofill).
 * With one (a login's second step), their passkeys are listed.
 */
export async function startPasskeyAuthentication(
  db: DbOrTx,
  settings: PasskeySettings,
  userId: string | null,
): Promise<Ceremony<PublicKeyCredentialRequestOptionsJSON>> {
  const { generateAuthenticationOptions } = await webauthn();
  const allowed = userId ? await listPasskeys(db, userId) : [];
  const options = await generateAuthenticationOptions({
    rpID: settings.webauthn.rpId,
    allowCredentials: allowed.map((p) => ({ id: p.credentialId, transports: p.transports })),
    userVerification: 'required',
    timeout: timeoutOf(settings),
  });
  const challengeId = await issueWebauthnChallenge(db, { purpose: 'authentication', challenge: options.challenge, userId, ttl: settings.webauthn.challengeTtl });
  return { challengeId, options };
}

export type AssertionFailure = 'unknown_credential' | 'wrong_user' | 'verification_failed' | 'counter' | 'disabled';
export type AssertionCheck = { ok: true; passkey: Passkey; userVerified: boolean } | { ok: false; reason: AssertionFailure; userId?: string };

/**
 * Checks a passkey assertion: the challenge (used up here, whatever the outcome: of two requests
 * with one challenge exactly one gets past this), the credential, its signature over that
 * challenge from an expected origin and RP ID with user verification, and its signature counter.
 * The counter must grow, except for authenticators that always report 0 (many synced passkeys):
 * a counter that does not is a cloned authenticator, and is refused. The new counter is stored in
 * the same statement that checks it, so parallel assertions cannot both pass with one counter.
 * `userId`: the user the passkey must belong to (a second step, a step-up), or any user.
 */
export async function checkPasskeyAssertion(
  db: DbOrTx,
  settings: PasskeySettings,
  input: { challengeId: string; response: AuthenticationResponseJSON; userId?: string },
  now = new Date(),
): Promise<AssertionCheck> {
  const { verifyAuthenticationResponse } = await webauthn();
  const issued = await consumeWebauthnChallenge(db, input.challengeId, 'authentication', now);
  // A challenge issued for a login's second step serves that user only.
  if (!issued || (issued.userId !== null && issued.userId !== input.userId)) throw problem('webauthn_challenge_invalid', CHALLENGE_INVALID);
  const credentialId = typeof input.response.id === 'string' ? input.response.id : '';
  const [passkey] = credentialId ? await db.select().from(passkeys).where(eq(passkeys.credentialId, credentialId)) : [];
  if (!passkey) return { ok: false, reason: 'unknown_credential' };
  if (input.userId !== undefined && passkey.userId !== input.userId) return { ok: false, reason: 'wrong_user', userId: input.userId };
  const userHandle = input.response.response?.userHandle;
  if (userHandle && userHandle !== passkey.userHandle) return { ok: false, reason: 'wrong_user', userId: passkey.userId };
  let info;
  try {
    const verification = await verifyAuthenticationResponse({
      response: input.response,
      expectedChallenge: issued.challenge,
      expectedOrigin: settings.webauthn.origins,
      expectedRPID: settings.webauthn.rpId,
      credential: { id: passkey.credentialId, publicKey: Buffer.from(passkey.publicKey, 'base64url'), counter: passkey.counter, transports: passkey.transports },
      requireUserVerification: true,
    });
    if (!verification.verified) return { ok: false, reason: 'verification_failed', userId: passkey.userId };
    info = verification.authenticationInfo;
  } catch (err) {
    return { ok: false, reason: /counter/i.test(describe(err)) ? 'counter' : 'verification_failed', userId: passkey.userId };
  }
  const [used] = await db
    .update(passkeys)
    .set({ counter: info.newCounter, lastUsedAt: now, backedUp: info.credentialBackedUp })
    .where(
      and(
        eq(passkeys.id, passkey.id),
        or(lt(passkeys.counter, info.newCounter), and(eq(passkeys.counter, 0), sql`${info.newCounter}::bigint = 0`)),
      ),
    )
    .returning();
  if (!used) return { ok: false, reason: 'counter', userId: passkey.userId };
  return { ok: true, passkey: used, userVerified: info.userVerified };
}
