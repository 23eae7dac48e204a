import { createHmac, randomBytes } from 'node:crypto';

/**
 * A refresh token names its session and its generation in the clear, then carries 32 secret
 * bytes: `base64url(session id (16) | generation (uint32) | secret (32))`, 70 characters. The
 * session row holds the hash of its current token only, so a rotation is one update of that row
 * by primary key (no table of every token ever issued, growing with each refresh).
 *
 * Generation 0's secret is random. Each successor's is the HMAC of its predecessor under a server
 * key: a token presented twice gets the same successor (two tabs racing), and an older token can
 * be proved genuine by deriving forward to the hash the session holds, which is how reuse is told
 * from a made-up token naming the session.
 */
export const REFRESH_TOKEN_LENGTH = 70;
const BYTES = 16 + 4 + 32;
const SHAPE = /^[A-Za-z0-9_-]{70}$/;
/** The last generation whose successor still fits the `refresh_generation` column. */
const MAX_GENERATION = 2 ** 31 - 2;

export interface RefreshTokenParts {
  sessionId: string;
  generation: number;
}

function uuidBytes(uuid: string): Buffer {
  return Buffer.from(uuid.replaceAll('-', ''), 'hex');
}

function uuidOf(bytes: Buffer): string {
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

function encode(sessionId: string, generation: number, secret: Buffer): string {
  const bytes = Buffer.allocUnsafe(BYTES);
  uuidBytes(sessionId).copy(bytes, 0);
  bytes.writeUInt32BE(generation, 16);
  secret.copy(bytes, 20, 0, 32);
  return bytes.toString('base64url');
}

/** A session's first refresh token (generation 0). */
export function newRefreshToken(sessionId: string): string {
  return encode(sessionId, 0, randomBytes(32));
}

/** The session and generation a token names, or undefined if it cannot be a refresh token. */
export function parseRefreshToken(token: string): RefreshTokenParts | undefined {
  if (!SHAPE.test(token)) return undefined;
  const bytes = Buffer.from(token, 'base64url');
  // 70 characters hold 52 bytes and 4 spare bits; a token whose spare bits are set is not ours.
  if (bytes.length !== BYTES || bytes.toString('base64url') !== token) return undefined;
  const generation = bytes.readUInt32BE(16);
  // The column is a signed integer: a larger generation was never issued, and would fail the query.
  if (generation > MAX_GENERATION) return undefined;
  return { sessionId: uuidOf(bytes.subarray(0, 16)), generation };
}

/** The token that replaces `token` (whose parts are `parts`): the next generation, its secret derived from `token`. */
export function successorOf(token: string, parts: RefreshTokenParts, key: Buffer): string {
  return encode(parts.sessionId, parts.generation + 1, createHmac('sha256', key).update(token, 'utf8').digest());
}
