import type { FastifyInstance, FastifyRequest, onRequestHookHandler, RouteOptions } from 'fastify';
import fp from 'fastify-plugin';
import { problem } from '../errors.js';
import { countsAsSecondFactor } from '../domain/mfa.js';
import type { Principal } from './auth.js';

/**
 * A route's access rule, declared as data in its `config`. The four list kinds mean what the seed
 * system's decorators mean; several kinds on one route must all hold. `authenticated` alone asks
 * only for a valid token of a live session.
 */
export interface AccessRule {
  authenticated?: boolean;
  /** All of these roles (roles_required). */
  rolesRequired?: string[];
  /** At least one of these roles (roles_accepted). */
  rolesAccepted?: string[];
  /** All of these permissions (permissions_required). */
  permissionsRequired?: string[];
  /** At least one of these permissions (permissions_accepted). */
  permissionsAccepted?: string[];
  /** A second factor proved in the caller's session (403 insufficient_aal otherwise). */
  aal?: 'aal2';
  /** aal2 from users who have a second factor (as MFA_REQUIRED_PERMISSIONS does for its permissions). */
  aal2IfEnrolled?: boolean;
  /** A factor proved within REAUTH_MAX_AGE (403 reauthentication_required otherwise). */
  fresh?: boolean;
  /**
   * Only the user in person, signed in: never an API key (403 api_key_not_allowed). For the routes
   * that manage credentials (keys, password, email, second factors); fresh and aal2 imply it.
   * Nor an admin impersonating the user (403 impersonation_restricted).
   */
  ownCredentials?: boolean;
}

/** The deployment's two-factor policy, applied on top of each route's own rule. */
export interface AssurancePolicy {
  /** Seconds a proved factor counts as fresh, for `fresh: true` routes (REAUTH_MAX_AGE). */
  reauthMaxAge: number;
  /** Routes needing one of these permissions require aal2 from users who have a factor. */
  mfaRequiredPermissions: readonly string[];
  /** Users with one of these roles must have a factor, proved in the session, for permission-guarded routes. */
  mfaEnforceForRoles: readonly string[];
  /** A passkey is a second factor (PASSKEY_COUNTS_AS_MFA). */
  passkeyCountsAsMfa?: boolean;
}

const DEFAULT_POLICY: AssurancePolicy = { reauthMaxAge: 600, mfaRequiredPermissions: [], mfaEnforceForRoles: [] };

declare module 'fastify' {
  interface FastifyContextConfig extends AccessRule {
    /** Explicitly open to anonymous callers. Every Gatehouse route is either this or has a rule. */
    public?: boolean;
  }
}

export interface RouteAccess {
  method: string;
  url: string;
  readonly public: boolean;
  readonly rule: AccessRule | null;
}

/**
 * The access of a route as declared, read when asked: a later onRoute hook (the docs pages') may
 * still mark a route public.
 */
export function routeAccessOf(routeOptions: RouteOptions): RouteAccess[] {
  const methods = Array.isArray(routeOptions.method) ? routeOptions.method : [routeOptions.method];
  return methods.map((method) => ({
    method,
    url: routeOptions.url,
    get public() {
      return routeOptions.config?.public === true;
    },
    get rule() {
      return ruleOf(routeOptions.config);
    },
  }));
}

export function ruleOf(config: AccessRule | undefined): AccessRule | null {
  if (!config) return null;
  const rule: AccessRule = {};
  for (const key of ['rolesRequired', 'rolesAccepted', 'permissionsRequired', 'permissionsAccepted'] as const) {
    if (config[key]?.length) rule[key] = config[key];
  }
  if (config.aal === 'aal2') rule.aal = 'aal2';
  if (config.aal2IfEnrolled === true) rule.aal2IfEnrolled = true;
  if (config.fresh === true) rule.fresh = true;
  if (config.ownCredentials === true) rule.ownCredentials = true;
  if (Object.keys(rule).length === 0 && !config.authenticated) return null;
  return { authenticated: true, ...rule };
}

const lacking = (names: string[], held: ReadonlySet<string>) => names.filter((n) => !held.has(n));

/** What is missing for the rule to hold, in words; empty when it holds. Runs on every request. */
export function missingFor(rule: AccessRule, roles: ReadonlySet<string>, permissions: ReadonlySet<string>): string[] {
  const missing: string[] = [];
  if (rule.rolesRequired) {
    const absent = lacking(rule.rolesRequired, roles);
    if (absent.length) missing.push(`role${absent.length > 1 ? 's' : ''} ${absent.join(', ')}`);
  }
  if (rule.rolesAccepted && !rule.rolesAccepted.some((r) => roles.has(r))) {
    missing.push(`one of the roles ${rule.rolesAccepted.join(', ')}`);
  }
  if (rule.permissionsRequired) {
    const absent = lacking(rule.permissionsRequired, permissions);
    if (absent.length) missing.push(`permission${absent.length > 1 ? 's' : ''} ${absent.join(', ')}`);
  }
  if (rule.permissionsAccepted && !rule.permissionsAccepted.some((p) => permissions.has(p))) {
    missing.push(`one of the permissions ${rule.permissionsAccepted.join(', ')}`);
  }
  return missing;
}

export function describeRule(rule: AccessRule): string {
  const parts: string[] = [];
  if (rule.rolesRequired) parts.push(`roles ${rule.rolesRequired.join(' and ')}`);
  if (rule.rolesAccepted) parts.push(`any of the roles ${rule.rolesAccepted.join(', ')}`);
  if (rule.permissionsRequired) parts.push(`permissions ${rule.permissionsRequired.join(' and ')}`);
  if (rule.permissionsAccepted) parts.push(`any of the permissions ${rule.permissionsAccepted.join(', ')}`);
  if (rule.aal) parts.push('a second factor proved in the session (aal2; 403 insufficient_aal otherwise)');
  if (rule.aal2IfEnrolled) parts.push('for users with a second factor, that factor proved in the session (aal2; 403 insufficient_aal otherwise)');
  if (rule.fresh) parts.push('a factor proved within REAUTH_MAX_AGE (403 reauthentication_required otherwise: POST /auth/reauthenticate)');
  const line = parts.length ? `Requires a Bearer access token with ${parts.join('; ')}.` : 'Requires a Bearer access token.';
  return refusesApiKeys(rule)
    ? `${line} API keys are refused (403 api_key_not_allowed), and so are impersonation tokens (403 impersonation_restricted).`
    : line;
}

/**
 * Whether the rule keeps API keys out whatever they hold: a key never proves a factor. The same
 * routes are closed to an admin impersonating the user: only the user in person.
 */
export const refusesApiKeys = (rule: AccessRule) => rule.ownCredentials === true || rule.fresh === true || rule.aal === 'aal2' || rule.aal2IfEnrolled === true;

const apiKeyNotAllowed = () => problem('api_key_not_allowed', 'API keys cannot be used here: sign in as the user.');
const impersonationRestricted = () => problem('impersonation_restricted', 'Not while impersonating: only the user in person may do this.');

const permissionsOf = (rule: AccessRule) => [...(rule.permissionsRequired ?? []), ...(rule.permissionsAccepted ?? [])];

/**
 * What the rule and the two-factor policy ask of the session beyond roles and permissions, or
 * undefined when the caller's session satisfies it. `policy` applies to permission-guarded routes only.
 */
export function assuranceCheck(rule: AccessRule, policy: AssurancePolicy): ((principal: Principal, nowSeconds: number) => Error | undefined) | undefined {
  const guarded = permissionsOf(rule);
  const enforcedRoles = guarded.length ? policy.mfaEnforceForRoles : [];
  const aal2IfEnrolled = rule.aal2IfEnrolled === true || guarded.some((p) => policy.mfaRequiredPermissions.includes(p));
  if (!rule.aal && !rule.fresh && enforcedRoles.length === 0 && !aal2IfEnrolled) return undefined;
  return (principal, nowSeconds) => {
    // A key is judged by its owner's roles and factors: holding none itself must not let it past the policy.
    const { roles, hasPasskey, mfaEnrolled: totpEnrolled } = principal.apiKey?.owner ?? principal.access;
    const mfaEnrolled = countsAsSecondFactor({ totp: totpEnrolled, passkey: hasPasskey }, policy.passkeyCountsAsMfa === true);
    const enforced = enforcedRoles.some((role) => roles.has(role));
    if (principal.apiKey && (enforced || (aal2IfEnrolled && mfaEnrolled))) return apiKeyNotAllowed();
    if (enforced && !mfaEnrolled) {
      return problem('mfa_enrollment_required', 'Your role requires two-factor authentication: enrol an authenticator (POST /auth/mfa/totp/enroll) first.');
    }
    if ((rule.aal === 'aal2' || enforced || (aal2IfEnrolled && mfaEnrolled)) && principal.aal !== 'aal2') {
      return problem(
        'insufficient_aal',
        mfaEnrolled
          ? 'This needs your second factor in this session: log in with it, or re-authenticate with a code (POST /auth/reauthenticate).'
          : 'This needs a second factor: enrol an authenticator (POST /auth/mfa/totp/enroll) first.',
      );
    }
    if (rule.fresh && nowSeconds - principal.authTime > policy.reauthMaxAge) {
      const methods = ['password', ...(principal.access.mfaEnrolled ? ['totp'] : []), ...(hasPasskey ? ['passkey'] : [])];
      return problem('reauthentication_required', `Prove it is you again (POST /auth/reauthenticate): this needs a factor proved in the last ${policy.reauthMaxAge} seconds.`, {
        extensions: { maxAge: policy.reauthMaxAge, methods },
      });
    }
    return undefined;
  };
}

/** The same rule, shown in the OpenAPI document: read from the route, never written twice. */
function documentRule(routeOptions: RouteOptions, rule: AccessRule, policy: AssurancePolicy): void {
  const schema = { ...(routeOptions.schema ?? {}) } as Record<string, unknown>;
  schema.security = refusesApiKeys(rule) ? [{ bearerAuth: [] }] : [{ bearerAuth: [] }, { apiKeyAuth: [] }];
  const roles = [...(rule.rolesRequired ?? []), ...(rule.rolesAccepted ?? [])];
  const permissions = permissionsOf(rule);
  if (roles.length) schema['x-roles'] = roles;
  if (permissions.length) schema['x-permissions'] = permissions;
  if (rule.aal) schema['x-aal'] = rule.aal;
  else if (rule.aal2IfEnrolled) schema['x-aal'] = 'aal2-if-enrolled';
  if (rule.fresh) schema['x-fresh'] = true;
  if (refusesApiKeys(rule)) schema['x-api-keys'] = false;
  let line = describeRule(rule);
  if (permissions.some((p) => policy.mfaRequiredPermissions.includes(p))) {
    line += ' Users with a second factor need it proved in the session (aal2; MFA_REQUIRED_PERMISSIONS).';
  }
  if (permissions.length && policy.mfaEnforceForRoles.length) {
    line += ` Users with the roles ${policy.mfaEnforceForRoles.join(', ')} need a second factor, proved in the session (MFA_ENFORCE_FOR_ROLES).`;
  }
  schema.description = schema.description ? `${String(schema.description)}\n\n${line}` : line;
  routeOptions.schema = schema as RouteOptions['schema'];
}

/** What Gatehouse does at ready about a host route with neither an access rule nor `public: true`. */
export type UndeclaredRoutes = 'fail' | 'warn' | 'allow';

/**
 * Written on a route's config, read by the root guard: 'checked' when the route's own check was
 * injected, 'seen' when the onRoute hook saw it without a rule (judged at ready), else the guard's
 * cached verdict. A symbol, so neither a host nor a serializer can set or see it.
 */
const GUARD = Symbol('gatehouse.guard');
type Verdict = 'pass' | onRequestHookHandler;
type Guarded = { [GUARD]?: 'checked' | 'seen' | Verdict; url?: string; method?: string | string[] } & AccessRule & { public?: boolean };

function routeLabel(method: string | string[] | undefined, url: string): string {
  return `${Array.isArray(method) ? method.join(',') : method} ${url}`;
}

/**
 * Adds one shared onRequest check to every route that declares a rule. It runs before the body is
 * parsed and validated, so an anonymous request with a bad body still gets 401, not 400.
 *
 * A host may register routes before the plugin, where no onRoute hook of ours sees them. A root
 * onRequest guard covers those: Fastify adds a lifecycle hook to every context already created
 * as well as to the ones created later, so it reaches routes of any order and any encapsulation.
 */
export const permissionsPlugin = fp(
  async (
    app: FastifyInstance,
    { undeclaredRoutes = 'warn', assurance: policy = DEFAULT_POLICY }: { undeclaredRoutes?: UndeclaredRoutes; assurance?: AssurancePolicy },
  ) => {
    // Callback style, with no promise at all when the caller is in the authorization cache: the
    // check runs on every protected request, and most of its cost was the async plumbing.
    const checkFor = (rule: AccessRule): onRequestHookHandler => {
      const assured = assuranceCheck(rule, policy);
      const keysRefused = refusesApiKeys(rule);
      const authorize = (request: FastifyRequest, principal: Principal): Error | undefined => {
        request.principal = principal;
        if (principal.apiKey && keysRefused) return apiKeyNotAllowed();
        if (principal.impersonator && keysRefused) return impersonationRestricted();
        const missing = missingFor(rule, principal.access.roles, principal.access.permissions);
        if (missing.length) return problem('permission_denied', `Missing ${missing.join('; ')}.`);
        const refused = assured?.(principal, Date.now() / 1000);
        // The impersonator cannot prove the user's factors: what the policy asks of the session is not theirs to give.
        return refused && principal.impersonator ? impersonationRestricted() : refused;
      };
      return function checkAccess(request, _reply, done) {
        let cached: Principal | undefined;
        try {
          cached = app.authenticateFromCache(request);
        } catch (err) {
          return done(err as Error);
        }
        // An API key's requests count against its own limit first, whatever the route answers.
        const proceed = (principal: Principal) =>
          principal.apiKey ? app.meterApiKey(principal, (refused) => done(refused ?? authorize(request, principal))) : done(authorize(request, principal));
        if (cached) return proceed(cached);
        app.authenticate(request).then(proceed, done);
      };
    };

    const seen: RouteAccess[] = [];
    app.addHook('onRoute', (routeOptions) => {
      seen.push(...routeAccessOf(routeOptions));
      const rule = ruleOf(routeOptions.config);
      // A copy: a config literal shared by a route registered before the plugin must stay unmarked.
      routeOptions.config = { ...routeOptions.config, [GUARD]: rule ? 'checked' : 'seen' } as typeof routeOptions.config;
      if (!rule) return;
      documentRule(routeOptions, rule, policy);
      const existing = routeOptions.onRequest;
      routeOptions.onRequest = [checkFor(rule), ...(existing ? (Array.isArray(existing) ? existing : [existing]) : [])];
    });

    /** The first request to a route the onRoute hook did not check decides, once, what it needs. */
    const judge = (config: Guarded): Verdict => {
      // Not a route: the not-found handler's context.
      if (config.url === undefined) return 'pass';
      // A later onRoute hook (of the host) may have added the rule after ours ran.
      const rule = ruleOf(config);
      if (rule) return checkFor(rule);
      if (config.public === true || config[GUARD] === 'seen' || undeclaredRoutes === 'allow') return 'pass';
      // Registered before the plugin: too early for the check at ready, so judged here instead.
      const route = routeLabel(config.method, config.url);
      // Fastify's own HEAD route shares its GET's config: the GET's log line speaks for both.
      const followsGet = config.method === 'HEAD' && app.hasRoute({ method: 'GET', url: config.url });
      if (undeclaredRoutes === 'warn') {
        if (!followsGet) app.log.warn({ route }, UNDECLARED);
        return 'pass';
      }
      if (!followsGet) app.log.error({ route }, `${UNDECLARED}; refused (undeclaredRoutes: 'fail')`);
      const refused = problem('internal_error', 'This route declares no access rule, so it is not served.');
      return (_request, _reply, done) => done(refused);
    };

    app.addHook('onRequest', function guardAccess(request, reply, done) {
      const config = request.routeOptions.config as Guarded | undefined;
      if (!config) return done();
      let state = config[GUARD];
      if (state === 'checked' || state === 'pass') return done();
      if (state === undefined || state === 'seen') state = config[GUARD] = judge(config);
      if (state === 'pass') return done();
      state.call(this, request, reply, done);
    });

    app.addHook('onReady', async () => {
      const undeclared = seen.filter((r) => !r.public && !r.rule);
      const labels = new Set(undeclared.map((r) => `${r.method} ${r.url}`));
      // The HEAD route Fastify makes for a GET shares its config: one route to the reader.
      const routes = [...labels].filter((label) => !(label.startsWith('HEAD ') && labels.has(`GET ${label.slice(5)}`)));
      if (routes.length === 0 || undeclaredRoutes === 'allow') return;
      if (undeclaredRoutes === 'fail') {
        throw new Error(
          `Gatehouse: ${routes.join(', ')} ${routes.length > 1 ? 'have' : 'has'} neither an access rule nor config.public: true. ` +
            "Declare one on each route, or pass undeclaredRoutes: 'warn' or 'allow'.",
        );
      }
      for (const route of routes) app.log.warn({ route }, UNDECLARED);
    });
  },
  { name: 'gatehouse-permissions', fastify: '5.x', dependencies: ['gatehouse-auth'] },
);

const UNDECLARED = 'route has neither an access rule nor config.public: true: anyone may call it';
