import type { Middleware } from 'openapi-fetch';
import { ANONYMOUS_OPERATIONS } from './anonymous-operations.js';
import { GatehouseError, errorOf, problemResponse } from './errors.js';
import type { TokenSession } from './session.js';

/** The server refuses the token itself, not the session: a refresh fixes it. */
const RENEWABLE = new Set(['token_expired', 'token_invalid']);

/**
 * The session's access token; if the refresh it needed was refused, that refusal as an answer,
 * which the raw client hands its caller as `{ error }` as if the call itself had been refused.
 */
async function tokenOrRefusal(session: TokenSession): Promise<string | undefined | Response> {
  try {
    return await session.accessToken();
  } catch (error) {
    if (error instanceof GatehouseError) return problemResponse(error);
    throw error;
  }
}

/**
 * openapi-fetch middleware: each operation that needs it gets the session's access token, renewed
 * first when it is about to expire. A 401 `token_expired` (the clocks disagree, or the tab slept) is
 * answered by one refresh and one retry; a 401 `session_revoked` ends the session.
 */
export function accessTokenMiddleware(session: TokenSession): Middleware {
  const sent = new WeakMap<Request, { token: string; retry: Request }>();
  return {
    async onRequest({ request, schemaPath }) {
      // Public operations go without (logout too: the client hands it whichever credential it has).
      if (ANONYMOUS_OPERATIONS.has(`${request.method} ${schemaPath}`) || request.headers.has('authorization')) return undefined;
      const token = await tokenOrRefusal(session);
      if (token === undefined || token instanceof Response) return token;
      request.headers.set('authorization', `Bearer ${token}`);
      // A body can be read once: keep a copy for the retry.
      sent.set(request, { token, retry: request.clone() });
      return request;
    },

    async onResponse({ request, response, options }) {
      const attempt = sent.get(request);
      if (!attempt || response.status !== 401) return undefined;
      const error = await errorOf(response);
      if (error.code === 'session_revoked') await session.revoked(attempt.token, error);
      if (!RENEWABLE.has(error.code)) return undefined;
      session.expired(attempt.token);
      const token = await tokenOrRefusal(session);
      if (token instanceof Response) return token;
      if (token === undefined || token === attempt.token) return undefined;
      attempt.retry.headers.set('authorization', `Bearer ${token}`);
      // Called as a plain function: a browser's fetch refuses to run with `options` as `this`.
      const { fetch } = options;
      return fetch(attempt.retry);
    },
  };
}
