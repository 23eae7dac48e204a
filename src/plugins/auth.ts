import cookie from '@fastify/cookie';
import jwt, { type TokenOrHeader } from '@fastify/jwt';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { unauthorized } from '../errors.js';
import { isUuid } from '../lib/uuid.js';
import { apiKeyInvalid, isApiKeyShaped, parseApiKey, type ApiKeyEntry } from '../domain/api-keys.js';
import { IMPERSONATE_PERMISSION } from '../domain/impersonation.js';
import { newTokenId } from '../domain/tokens.js';
import type { GatehouseServices, UserAccess } from '../types.js';
import { clientIp } from './client-ip.js';
import type { ApiKeyLimiter } from './rate-limit.js';
import { VerifiedTokens } from './verified-tokens.js';

/** Who is calling: set on every request that passed a route's access rule. */
export interface Principal {
  userId: string;
  sessionId: string;
  access: UserAccess;
  /** The session's assurance when the access token was issued. */
  aal: 'aal1' | 'aal2';
  amr: string[];
  /** When the user last proved a factor, in seconds since the epoch (0: unknown, never fresh). */
  authTime: number;
  /**
   * Set when the caller is an API key: `userId` is then its owner, `access` what the key may do now
   * (its permissions that the owner still holds, no roles), and `sessionId` is '' (a key has no session).
   */
  apiKey?: { id: string; keyId: string; owner: UserAccess };
  /**
   * Set when an admin acts as the user (an impersonation token's `act` claim): `userId` and `access`
   * are then the user's, and every request is audited with both ids.
   */
  impersonator?: { userId: string };
}

/** What an access token says about its session's assurance (OpenID Connect's names). */
export interface AssuranceClaims {
  auth_time: number;
  amr: string[];
  aal: 'aal1' | 'aal2';
}

/** RFC 8693's actor claim: who acts as `sub` (the admin behind an impersonation token). */
export interface ActorClaim {
  sub: string;
}

export interface AccessTokenClaims extends Partial<AssuranceClaims> {
  sub: string;
  sid: string;
  iat: number;
  exp: number;
  act?: ActorClaim;
}

declare module '@fastify/jwt' {
  interface FastifyJWT {
    payload: { sub: string; sid: string; jti: string; act?: ActorClaim } & AssuranceClaims;
    user: AccessTokenClaims;
  }
}

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal | null;
  }
  interface FastifyInstance {
    /** Verifies the Bearer token and the session behind it; throws a 401 problem otherwise. */
    authenticate(request: FastifyRequest): Promise<Principal>;
    /**
     * authenticate() without waiting, for the common case of a user already in the authorization
     * cache: undefined when only the database can tell (then call authenticate()).
     */
    authenticateFromCache(request: FastifyRequest): Principal | undefined;
    /** Counts a request of an API key against RATE_LIMIT_API_KEY; calls back with the 429 once it is used up. */
    meterApiKey(principal: Principal, done: (refused: Error | undefined) => void): void;
    /** Signs an access token valid for ACCESS_TOKEN_TTL, unless the claims give its iat and exp. */
    signAccessToken(claims: { sub: string; sid: string; act?: ActorClaim; iat?: number; exp?: number } & AssuranceClaims): string;
  }
}

const BEARER = /^Bearer +([A-Za-z0-9_.~+/=-]+) *$/i;

/** The token of an `Authorization: Bearer <token>` header; anything else is a 401 token_invalid. */
export function bearerToken(header: string): string {
  const match = BEARER.exec(header);
  if (!match) throw unauthorized('token_invalid', 'The Authorization header must be "Bearer <token>".');
  return match[1]!;
}

/**
 * Claims as Gatehouse issues them. A token signed with our secret but naming no uuid is not one of
 * ours: its ids must not reach a uuid column, where they would fail the query (a 500, not a 401).
 */
export function isAccessTokenClaims(claims: unknown): claims is AccessTokenClaims {
  const { sub, sid, iat, exp, act } = (claims ?? {}) as Record<string, unknown>;
  return isUuid(sub) && isUuid(sid) && typeof iat === 'number' && typeof exp === 'number' && (act === undefined || isUuid((act as { sub?: unknown } | null)?.sub));
}

/**
 * The API key of the request, if it carries one: `X-API-Key: gh_...`, or `Authorization: Bearer gh_...`
 * (a JWT never starts with gh_). Undefined for a request that means an access token, or nothing.
 */
function presentedApiKey(request: FastifyRequest): string | undefined {
  const header = request.headers['x-api-key'];
  if (header !== undefined) return Array.isArray(header) ? '' : header;
  const authorization = request.headers.authorization;
  // Most requests carry a JWT: a plain search spares them a second pass of the Bearer pattern.
  if (!authorization?.includes(' gh_')) return undefined;
  const token = BEARER.exec(authorization)?.[1];
  return token && isApiKeyShaped(token) ? token : undefined;
}

export const authPlugin = fp(
  async (
    app: FastifyInstance,
    { gatehouse, apiKeyLimiter, apiKeyLookupLimiter }: { gatehouse: GatehouseServices; apiKeyLimiter: ApiKeyLimiter; apiKeyLookupLimiter: ApiKeyLimiter },
  ) => {
    const { config, access, signingKeys, apiKeys } = gatehouse;
    await app.register(cookie);
    // request.jwtVerify() in a host's routes checks Gatehouse tokens with Gatehouse's own key set
    // (each key pinned to its algorithm). No private key: a host cannot mint Gatehouse tokens.
    await app.register(jwt, {
      secret: {
        public: async (_request: FastifyRequest, decoded: TokenOrHeader) => {
          try {
            return signingKeys.verificationKey(decoded as { header: Record<string, unknown>; payload: unknown });
          } catch {
            throw unauthorized('token_invalid', 'The access token is not valid.');
          }
        },
      },
      // The key is chosen from the header (kid, alg): the key callback needs the whole token.
      decode: { complete: true },
      // fast-jwt checks iss, aud and exp only when present: a token without them must not pass.
      verify: {
        algorithms: ['ES256', 'EdDSA', 'RS256', 'HS256'],
        allowedIss: config.jwtIssuer,
        allowedAud: config.jwtAudience,
        requiredClaims: ['iss', 'aud', 'exp'],
        // JWT_CLOCK_SKEW: fast-jwt takes milliseconds here (@fastify/jwt converts sign-side durations only).
        clockTolerance: config.jwtClockSkew * 1000,
      },
    });
    // The signature check was most of an authenticated request's cost: see verified-tokens.ts.
    const verified = new VerifiedTokens<AccessTokenClaims>({ maxEntries: config.verifiedTokenCacheMax, clockToleranceMs: config.jwtClockSkew * 1000 });
    // A revoked key's tokens are refused on the next request, not when they leave the cache.
    signingKeys.onChange(() => verified.clear());
    const verifyAccessToken = (token: string): AccessTokenClaims => {
      const claims: unknown = signingKeys.verify(token);
      if (!isAccessTokenClaims(claims)) throw new Error('not a Gatehouse access token');
      return claims;
    };

    const verifiedClaims = (request: FastifyRequest): AccessTokenClaims => {
      const header = request.headers.authorization;
      if (!header) throw unauthorized('token_missing', 'Send an access token as "Authorization: Bearer <token>".');
      // The header as clients write it, with a token verified before: no need to parse it further.
      const known = header.startsWith('Bearer ') ? verified.peek(header.slice(7)) : undefined;
      if (known) return known;
      const token = bearerToken(header);
      try {
        return verified.verify(token, verifyAccessToken);
      } catch (err) {
        // fast-jwt's own errors (an unknown kid or a foreign header is a plain Error: token_invalid).
        const expired = (err as { code?: string }).code === 'FAST_JWT_EXPIRED';
        throw expired
          ? unauthorized('token_expired', 'The access token has expired: refresh it.')
          : unauthorized('token_invalid', 'The access token is not valid.');
      }
    };
    const principalOf = (claims: AccessTokenClaims, current: UserAccess | undefined): Principal => {
      if (!current || !current.user.active || !current.liveSessions.has(claims.sid)) {
        throw unauthorized('session_revoked', 'This session has been revoked: log in again.');
      }
      // A token from before assurance was recorded proves a password, and nothing fresh.
      const aal = claims.aal === 'aal2' ? 'aal2' : 'aal1';
      const amr = Array.isArray(claims.amr) ? claims.amr : ['pwd'];
      const authTime = typeof claims.auth_time === 'number' ? claims.auth_time : 0;
      const principal: Principal = { userId: claims.sub, sessionId: claims.sid, access: current, aal, amr, authTime };
      if (claims.act) principal.impersonator = { userId: claims.act.sub };
      return principal;
    };

    // An impersonation lasts only while its admin could start it: active, with users:impersonate and
    // every permission the user holds. Judged on each request, from the same cache as everyone's rights.
    const impersonationEnded = (principal: Principal, admin: UserAccess | undefined): boolean =>
      !admin || !admin.user.active || !admin.permissions.has(IMPERSONATE_PERMISSION) || [...principal.access.permissions].some((p) => !admin.permissions.has(p));
    const impersonationEndedError = () => unauthorized('session_revoked', 'This impersonation has ended: the admin may no longer act as this user.');

    const keyPrincipal = (request: FastifyRequest, entry: ApiKeyEntry, owner: UserAccess | undefined): Principal => {
      const effective = apiKeys.effectiveAccess(entry, owner);
      if (!effective) throw apiKeyInvalid();
      apiKeys.used(entry, () => clientIp(request) ?? null);
      return { userId: entry.userId, sessionId: '', access: effective, aal: 'aal1', amr: [], authTime: 0, apiKey: { id: entry.id, keyId: entry.keyId, owner: owner! } };
    };
    // A key not in memory costs a query, and a made-up one is never kept: counted per client IP.
    const lookupAllowed = (request: FastifyRequest) =>
      new Promise<void>((resolve, reject) => apiKeyLookupLimiter(clientIp(request) ?? '', (refused) => (refused ? reject(refused) : resolve())));
    const parsedApiKey = (presented: string) => {
      const parsed = parseApiKey(presented);
      if (!parsed) throw apiKeyInvalid();
      return parsed;
    };

    app.decorateRequest('principal', null);
    app.decorate('signAccessToken', (claims: { sub: string; sid: string; act?: ActorClaim; iat?: number; exp?: number } & AssuranceClaims) =>
      signingKeys.sign({ ...claims, jti: newTokenId() }),
    );
    // Whatever the answer, a request made while impersonating is on the record with both ids.
    app.addHook('onResponse', (request, reply, done) => {
      const principal = request.principal;
      if (principal?.impersonator) {
        const userAgent = request.headers['user-agent'];
        gatehouse.audit({
          type: 'impersonated_request',
          actorId: principal.impersonator.userId,
          userId: principal.userId,
          ip: clientIp(request) ?? null,
          userAgent: userAgent ? userAgent.slice(0, 512) : null,
          detail: { adminId: principal.impersonator.userId, sessionId: principal.sessionId, method: request.method, path: request.url.split('?')[0], status: reply.statusCode },
        });
      }
      done();
    });
    app.decorate('authenticate', async (request: FastifyRequest): Promise<Principal> => {
      const presented = presentedApiKey(request);
      if (presented !== undefined) {
        const key = parsedApiKey(presented);
        if (!apiKeys.peek(key.keyId)) await lookupAllowed(request);
        const entry = await apiKeys.get(key.keyId);
        if (!apiKeys.matches(entry, key)) throw apiKeyInvalid();
        return keyPrincipal(request, entry!, await access.get(entry!.userId));
      }
      const claims = verifiedClaims(request);
      // A cache entry read before this token was issued may not know its session yet (a login on
      // another instance): read again once, then trust the answer.
      let current = await access.get(claims.sub);
      if (current && !current.liveSessions.has(claims.sid) && current.loadedAt < (claims.iat + 1) * 1000) {
        current = await access.get(claims.sub, Date.now());
      }
      const principal = principalOf(claims, current);
      if (principal.impersonator && impersonationEnded(principal, await access.get(principal.impersonator.userId))) throw impersonationEndedError();
      return principal;
    });
    app.decorate('authenticateFromCache', (request: FastifyRequest): Principal | undefined => {
      const presented = presentedApiKey(request);
      if (presented !== undefined) {
        const key = parsedApiKey(presented);
        const entry = apiKeys.peek(key.keyId);
        if (!entry) return undefined;
        if (!apiKeys.matches(entry, key)) throw apiKeyInvalid();
        const owner = access.peek(entry.userId);
        return owner && keyPrincipal(request, entry, owner);
      }
      const claims = verifiedClaims(request);
      const current = access.peek(claims.sub);
      // Not cached, or not knowing this session: authenticate() decides, with the database.
      if (!current?.liveSessions.has(claims.sid)) return undefined;
      const principal = principalOf(claims, current);
      if (principal.impersonator) {
        const admin = access.peek(principal.impersonator.userId);
        if (!admin) return undefined;
        if (impersonationEnded(principal, admin)) throw impersonationEndedError();
      }
      return principal;
    });
    app.decorate('meterApiKey', (principal: Principal, done: (refused: Error | undefined) => void) => {
      if (!principal.apiKey) return done(undefined);
      apiKeyLimiter(principal.apiKey.keyId, done);
    });
  },
  { name: 'gatehouse-auth', fastify: '5.x' },
);
