import type { FastifyRequest } from 'fastify';
import { sessionNamedByRefreshToken } from '../../domain/sessions.js';
import { constantTimeEqual } from '../../domain/tokens.js';
import { problem } from '../../errors.js';
import type { Gatehouse } from '../../services.js';
import { CSRF_HEADER, REFRESH_COOKIE, csrfTokenFor } from './tokens.js';

export interface PresentedRefreshToken {
  token: string;
  fromCookie: boolean;
}

/**
 * The refresh token from the body or, when the body has none, from the cookie. A cookie is sent by
 * the browser on its own, so it only counts together with the session's CSRF token in a header.
 */
export async function presentedRefreshToken(
  gatehouse: Gatehouse,
  request: FastifyRequest,
  fromBody: string | undefined,
): Promise<PresentedRefreshToken | undefined> {
  if (fromBody !== undefined) return { token: fromBody, fromCookie: false };
  const fromCookie = request.cookies[REFRESH_COOKIE];
  if (!fromCookie) return undefined;
  // Against the session the cookie names, genuine or not: a cookie left behind by rotations it did
  // not see must not let a cross-site request present it, since presenting it revokes its session.
  const sessionId = await sessionNamedByRefreshToken(gatehouse.db, fromCookie);
  if (sessionId) {
    const header = request.headers[CSRF_HEADER];
    const sent = Array.isArray(header) ? header[0] : header;
    if (!sent || !constantTimeEqual(sent, csrfTokenFor(gatehouse, sessionId))) {
      throw problem('csrf_failed', `A cookie-mode request must send the session's csrfToken in the X-CSRF-Token header.`);
    }
  }
  return { token: fromCookie, fromCookie: true };
}
