import { generateSecret, generateURI, verify } from 'otplib';

/** RFC 6238 as every authenticator app expects it: SHA-1, 6 digits, 30 s steps. */
export const TOTP_PERIOD = 30;
const CODE = /^\d{6}$/;

/** A new base32 secret of 160 random bits (RFC 4226's recommended length). */
export function newTotpSecret(): string {
  return generateSecret();
}

/** The otpauth:// URI an authenticator app reads from a QR code. */
export function totpUri(secret: string, { issuer, label }: { issuer: string; label: string }): string {
  return generateURI({ issuer, label, secret, algorithm: 'sha1', digits: 6, period: TOTP_PERIOD });
}

export const timeStepAt = (at: Date) => Math.floor(at.getTime() / 1000 / TOTP_PERIOD);

/**
 * The time step of the code if it is right at `at`, give or take one step of clock drift, and
 * later than `afterStep` (the last step used: a code of that step or an older one is a replay);
 * null otherwise.
 */
export async function matchTotpCode(secret: string, code: string, { afterStep, at = new Date() }: { afterStep?: number | null; at?: Date } = {}): Promise<number | null> {
  if (!CODE.test(code)) return null;
  // Every step otplib would try is used already (the clock went back): nothing can match, and
  // otplib refuses such an afterTimeStep with an error.
  if (afterStep != null && afterStep >= timeStepAt(at) + 1) return null;
  const result = await verify({
    secret,
    token: code,
    epoch: Math.floor(at.getTime() / 1000),
    epochTolerance: TOTP_PERIOD,
    ...(afterStep != null ? { afterTimeStep: afterStep } : {}),
  });
  return result.valid && 'timeStep' in result ? result.timeStep : null;
}
