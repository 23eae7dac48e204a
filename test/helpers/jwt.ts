import { createHmac } from 'node:crypto';
import { testConfig } from './app.js';

export interface AccessClaims {
  sub: string;
  sid: string;
  iat: number;
  exp: number;
  iss: string;
  aud: string;
  /** 128 random bits, base64url: tells apart tokens with otherwise equal claims. */
  jti?: string;
}

const HASHES = { HS256: 'sha256', HS384: 'sha384', HS512: 'sha512' } as const;
const encode = (value: unknown) => Buffer.from(JSON.stringify(value), 'utf8').toString('base64url');

/** The claims of a token, read without checking anything. */
export function claimsOf(token: string): AccessClaims {
  return JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8')) as AccessClaims;
}

/**
 * A JWT built by hand, so a test controls every part of it: HMAC-signed with the test app's secret
 * unless told otherwise, or unsigned with `alg: 'none'`.
 */
export function forgeToken(
  payload: Record<string, unknown>,
  { alg = 'HS256', secret = testConfig().jwtSecret }: { alg?: keyof typeof HASHES | 'none'; secret?: string } = {},
): string {
  const signingInput = `${encode({ alg, typ: 'JWT' })}.${encode(payload)}`;
  if (alg === 'none') return `${signingInput}.`;
  return `${signingInput}.${createHmac(HASHES[alg], secret).update(signingInput).digest('base64url')}`;
}

/** Claims as Gatehouse would issue them for this session, valid for a minute unless overridden. */
export function validClaims(of: { sub: string; sid: string }, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const now = Math.floor(Date.now() / 1000);
  return { sub: of.sub, sid: of.sid, iat: now, exp: now + 60, iss: 'gatehouse', aud: 'gatehouse', ...overrides };
}
