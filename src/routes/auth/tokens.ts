import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Session } from '../../db/schema.js';
import { openAuthenticatedSession, passwordAssurance, type OpenedSession } from '../../domain/authentication.js';
import { hmac } from '../../domain/tokens.js';
import { problem } from '../../errors.js';
import { toUserView } from '../../schemas/user.js';
import type { TokenResponse } from '../../schemas/tokens.js';
import type { Gatehouse } from '../../services.js';
import { requestContext } from '../request-context.js';

export const REFRESH_COOKIE = 'gatehouse_refresh';
export const CSRF_HEADER = 'x-csrf-token';

/** Cookie-mode sessions prove same-origin with this value, derived from the session id. */
export function csrfTokenFor(gatehouse: Gatehouse, sessionId: string): string {
  return hmac(gatehouse.csrfKey, sessionId);
}

/** The path the refresh cookie is scoped to: the /auth routes, wherever Gatehouse is mounted. */
export function cookiePath(request: FastifyRequest): string {
  const url = request.routeOptions.url ?? '/auth';
  return url.slice(0, url.indexOf('/auth') + '/auth'.length);
}

/** Opens a password session for this request: see openAuthenticatedSession in domain/authentication.ts. */
export async function openLoginSession(gatehouse: Gatehouse, request: FastifyRequest, userId: string): Promise<OpenedSession> {
  return openAuthenticatedSession(gatehouse, userId, passwordAssurance(), requestContext(request));
}

/**
 * Builds the body every token-issuing route answers with. In cookie mode the refresh token goes
 * into an httpOnly cookie and the body carries the session's CSRF token instead.
 */
export async function issueTokens(
  gatehouse: Gatehouse,
  request: FastifyRequest,
  reply: FastifyReply,
  { session, refreshToken, useCookie }: { session: Session; refreshToken: string; useCookie: boolean },
): Promise<TokenResponse> {
  const body: TokenResponse = await issueAccessToken(gatehouse, request, session);
  if (useCookie) {
    reply.setCookie(REFRESH_COOKIE, refreshToken, {
      httpOnly: true,
      sameSite: 'strict',
      secure: gatehouse.config.cookieSecure,
      path: cookiePath(request),
      expires: session.expiresAt,
    });
    body.csrfToken = csrfTokenFor(gatehouse, session.id);
  } else {
    body.refreshToken = refreshToken;
  }
  return body;
}

/**
 * An access token carrying the session's assurance, with the user as seen at that level: alone
 * where the session keeps its refresh token (a step-up, a confirmed authenticator).
 */
export async function issueAccessToken(
  gatehouse: Gatehouse,
  request: FastifyRequest,
  session: Session,
): Promise<Omit<TokenResponse, 'refreshToken' | 'csrfToken'>> {
  const access = await gatehouse.access.get(session.userId);
  if (!access) throw problem('invalid_refresh_token', 'The account no longer exists.');
  // Deactivation revokes every session, but a refresh must not rely on that alone.
  if (!access.user.active) throw problem('account_disabled', 'This account has been disabled.');
  const accessToken = request.server.signAccessToken({
    sub: session.userId,
    sid: session.id,
    auth_time: Math.floor(session.authTime.getTime() / 1000),
    amr: session.amr,
    aal: session.aal,
  });
  return { accessToken, tokenType: 'Bearer', expiresIn: gatehouse.config.accessTokenTtl, user: { ...toUserView(access), aal: session.aal } };
}

export function clearRefreshCookie(gatehouse: Gatehouse, request: FastifyRequest, reply: FastifyReply): void {
  reply.clearCookie(REFRESH_COOKIE, {
    httpOnly: true,
    sameSite: 'strict',
    secure: gatehouse.config.cookieSecure,
    path: cookiePath(request),
  });
}
