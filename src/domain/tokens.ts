import { createHash, createHmac, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';

/** 256 random bits, URL-safe: what a client sees as a refresh (or reset) token. */
export function newOpaqueToken(): string {
  return randomBytes(32).toString('base64url');
}

/**
 * An access token's `jti`: a random UUID (122 random bits). Without it two tokens for one session
 * signed in the same second would be the same string, so a refresh could hand back the very token
 * it replaces. randomUUID draws on entropy Node fetches in bulk; randomBytes(16) cost a call into
 * OpenSSL per token issued.
 */
export function newTokenId(): string {
  return randomUUID();
}

/** The only form in which opaque tokens are stored. */
export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('base64url');
}

/** A key for one purpose, derived from a server secret so one secret can serve several uses. */
export function deriveKey(secret: string, purpose: string): Buffer {
  return createHmac('sha256', secret).update(`gatehouse:${purpose}`).digest();
}

export function hmac(key: Buffer, value: string): string {
  return createHmac('sha256', key).update(value, 'utf8').digest('base64url');
}

export function constantTimeEqual(a: string, b: string): boolean {
  const left = Buffer.from(a, 'utf8');
  const right = Buffer.from(b, 'utf8');
  return left.length === right.length && timingSafeEqual(left, right);
}

/** Opaque tokens are base64url of 32 bytes; anything else cannot be one and skips the database. */
export function looksLikeOpaqueToken(value: string): boolean {
  return /^[A-Za-z0-9_-]{43}$/.test(value);
}
