import { randomBytes, type JsonWebKey } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { parseDuration } from './lib/duration.js';
import { generateKeyRing, parseKeyRing, type EncryptionKey } from './lib/encryption.js';

/** JWT_ALG: HS256 is the shared secret of old; the others sign with a published key pair. */
export type JwtAlg = 'ES256' | 'EdDSA' | 'RS256' | 'HS256';

const Duration = Type.String({ pattern: '^\\s*\\d+\\s*[smhdw]?\\s*$', description: 'seconds, or a number with s, m, h, d or w' });
const RateLimit = Type.String({ pattern: '^\\s*\\d+\\s*/\\s*\\d+\\s*[smhdw]?\\s*$', description: 'N/duration, e.g. 20/1m' });
const Bool = (fallback: 'true' | 'false') =>
  Type.Union([Type.Literal('true'), Type.Literal('false'), Type.Literal('1'), Type.Literal('0')], { default: fallback });

/** Every environment variable Gatehouse reads, as strings, with its default. .env.example mirrors it. */
export const EnvSchema = Type.Object({
  NODE_ENV: Type.String({ default: 'development' }),
  HOST: Type.String({ default: '127.0.0.1' }),
  PORT: Type.String({ pattern: '^\\d{1,5}$', default: '3000' }),
  PUBLIC_URL: Type.Optional(Type.String({ pattern: '^https?://[^/?#]+(/[^?#]*)?$', description: 'default: http://HOST:PORT (127.0.0.1 for a wildcard HOST)' })),
  LOG_LEVEL: Type.Union(
    ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)),
    { default: 'info' },
  ),
  DATABASE_URL: Type.Optional(Type.String({ pattern: '^postgres(ql)?://' })),
  DATABASE_LISTEN_URL: Type.Optional(Type.String({ pattern: '^postgres(ql)?://' })),
  DATABASE_POOL_SIZE: Type.String({ pattern: '^[1-9]\\d{0,2}$', default: '3', description: 'connections to PostgreSQL; postgres.js pipelines queries on busy ones' }),
  DATABASE_PREPARED_STATEMENTS: Bool('true'),
  DATABASE_QUERY_TIMEOUT: Type.String({ ...Duration, default: '5s' }),
  DATABASE_STARTUP_TIMEOUT: Type.String({ ...Duration, default: '60s' }),
  DATA_DIR: Type.String({ default: './data' }),
  JWT_SECRET: Type.Optional(Type.String({ minLength: 1 })),
  PASSWORD_PEPPER: Type.Optional(Type.String({ minLength: 1 })),
  ENCRYPTION_KEYS: Type.Optional(Type.String({ minLength: 1, description: 'id:base64key,...: the first encrypts, all decrypt' })),
  JWT_ISSUER: Type.String({ minLength: 1, default: 'gatehouse' }),
  JWT_AUDIENCE: Type.String({ minLength: 1, default: 'gatehouse' }),
  JWT_ALG: Type.Union(['ES256', 'EdDSA', 'RS256', 'HS256'].map((a) => Type.Literal(a)), { default: 'ES256', description: 'ES256 (the default), EdDSA and RS256 sign with published keys from signing_keys; HS256 signs with JWT_SECRET and publishes nothing' }),
  JWT_PRIVATE_KEYS: Type.Optional(Type.String({ minLength: 2, description: 'a JSON array of private JWKs kept outside the database: the first signs, all verify' })),
  JWKS_MAX_AGE: Type.String({ ...Duration, default: '300s' }),
  ACCESS_TOKEN_TTL: Type.String({ ...Duration, default: '15m' }),
  REFRESH_TOKEN_TTL: Type.String({ ...Duration, default: '7d' }),
  IMPERSONATION_TTL: Type.String({ ...Duration, default: '15m', description: 'lifetime of an impersonation token (and its session): no refresh' }),
  SESSION_MAX_AGE: Type.String({ ...Duration, default: '90d' }),
  RETENTION_PERIOD: Type.String({ ...Duration, default: '30d', description: 'how long ended sessions, expired mailed tokens and stale failed-login counters are kept before the hourly purge deletes them' }),
  REFRESH_REUSE_GRACE: Type.String({ ...Duration, default: '10s' }),
  AUTHZ_CACHE_TTL: Type.String({ ...Duration, default: '30s' }),
  AUTHZ_CACHE_MAX: Type.String({ pattern: '^[1-9]\\d{0,7}$', default: '50000', description: 'users whose rights are kept in memory, least recently used out first' }),
  VERIFIED_TOKEN_CACHE_MAX: Type.String({ pattern: '^[1-9]\\d{0,7}$', default: '50000', description: 'access tokens whose signature is remembered, least recently used out first' }),
  BCRYPT_COST: Type.String({ pattern: '^\\d{1,2}$', default: '12' }),
  COOKIE_SECURE: Bool('true'),
  SMTP_URL: Type.Optional(Type.String({ pattern: '^smtps?://' })),
  MAIL_TRANSPORT: Type.Optional(Type.Union([Type.Literal('smtp'), Type.Literal('log')], { description: 'default: smtp when SMTP_URL is set, log otherwise (outside production)' })),
  SMTP_TIMEOUT: Type.String({ ...Duration, default: '10s' }),
  MAIL_FROM: Type.String({ minLength: 3, default: 'Gatehouse <no-reply@localhost>' }),
  APP_URL: Type.String({ pattern: '^https?://', default: 'http://localhost:5173' }),
  CONFIRM_TOKEN_TTL: Type.String({ ...Duration, default: '24h' }),
  RESET_TOKEN_TTL: Type.String({ ...Duration, default: '1h' }),
  INVITE_TTL: Type.String({ ...Duration, default: '72h' }),
  REGISTRATION: Type.Union([Type.Literal('open'), Type.Literal('invite-only')], { default: 'open', description: 'invite-only: POST /auth/register answers 403 registration_closed; accounts come from invitations' }),
  REQUIRE_EMAIL_CONFIRMATION: Bool('false'),
  RATE_LIMIT_LOGIN: Type.String({ ...RateLimit, default: '20/1m' }),
  RATE_LIMIT_REGISTER: Type.String({ ...RateLimit, default: '10/1m' }),
  RATE_LIMIT_FORGOT: Type.String({ ...RateLimit, default: '5/1m' }),
  RATE_LIMIT_RESEND: Type.String({ ...RateLimit, default: '5/1m' }),
  RATE_LIMIT_REFRESH: Type.String({ ...RateLimit, default: '60/1m' }),
  RATE_LIMIT_API_KEY: Type.String({ ...RateLimit, default: '600/1m', description: 'per API key, over every route it calls' }),
  RATE_LIMIT_API_KEY_LOOKUPS: Type.String({ ...RateLimit, default: '60/1m', description: 'per client IP: API keys not in memory, looked up in the database' }),
  REDIS_URL: Type.Optional(Type.String({ pattern: '^rediss?://' })),
  TRUST_PROXY: Type.String({ default: 'false', description: 'false, true, a hop count, or a comma list of addresses/CIDRs' }),
  LOGIN_MAX_FAILURES: Type.String({ pattern: '^\\d{1,4}$', default: '5' }),
  LOGIN_FAILURE_WINDOW: Type.String({ ...Duration, default: '15m' }),
  LOGIN_LOCKOUT: Type.String({ ...Duration, default: '1m' }),
  LOGIN_LOCKOUT_MAX: Type.String({ ...Duration, default: '1h' }),
  CORS_ORIGINS: Type.String({ default: '', description: 'comma-separated allow-list of origins' }),
  JWT_CLOCK_SKEW: Type.String({ ...Duration, default: '5s' }),
  REAUTH_MAX_AGE: Type.String({ ...Duration, default: '10m' }),
  MFA_REQUIRED_PERMISSIONS: Type.String({ default: '', description: 'comma-separated permissions whose routes need aal2 from users with a second factor' }),
  MFA_ENFORCE_FOR_ROLES: Type.String({ default: '', description: 'comma-separated roles that must enrol a second factor to use permission-guarded routes' }),
  TOTP_ISSUER: Type.String({ minLength: 1, maxLength: 64, default: 'Gatehouse' }),
  WEBAUTHN_RP_ID: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9.-]+$', description: 'default: the host of APP_URL' })),
  WEBAUTHN_RP_NAME: Type.String({ minLength: 1, maxLength: 64, default: 'Gatehouse' }),
  WEBAUTHN_ORIGINS: Type.Optional(Type.String({ description: "comma list of origins passkeys may be used on; default: APP_URL's origin" })),
  WEBAUTHN_CHALLENGE_TTL: Type.String({ ...Duration, default: '5m' }),
  PASSKEYS_MAX_PER_USER: Type.String({ pattern: '^\\d{1,3}$', default: '10' }),
  PASSKEY_COUNTS_AS_MFA: Bool('true'),
  SHUTDOWN_TIMEOUT: Type.String({ ...Duration, default: '10s' }),
  ADMIN_EMAIL: Type.Optional(Type.String()),
  ADMIN_PASSWORD: Type.Optional(Type.String()),
});
export type Env = Static<typeof EnvSchema>;

export interface Config {
  production: boolean;
  host: string;
  port: number;
  /** Where clients reach Gatehouse, without a trailing slash: the OpenAPI document's server. */
  publicUrl: string;
  logLevel: Env['LOG_LEVEL'];
  /** postgres:// URL; when absent the embedded PGlite database in `dataDir` is used. */
  databaseUrl?: string;
  /** A direct connection for LISTEN when DATABASE_URL goes through a transaction-mode pooler. */
  databaseListenUrl?: string;
  /**
   * Connections to PostgreSQL. postgres.js sends the queries of concurrent requests down a busy
   * connection together, so a few connections serve one Node process best (see the README's bench).
   */
  databasePoolSize: number;
  /** Named prepared statements on the pool's connections: off behind a transaction-mode pooler. */
  databasePreparedStatements: boolean;
  /** Longest a query may run (or wait for a connection) before its request gets a 503, in seconds. */
  databaseQueryTimeout: number;
  /** How long a start waits for an unreachable database before giving up, in seconds. */
  databaseStartupTimeout: number;
  dataDir: string;
  jwtSecret: string;
  passwordPepper: string;
  /** AES-256 keys for secrets stored to be read back (TOTP secrets): the first seals, all open. */
  encryptionKeys: EncryptionKey[];
  jwtIssuer: string;
  jwtAudience: string;
  /** How access tokens are signed: HS256 with jwtSecret, or an asymmetric key (domain/signing-keys.ts). */
  jwtAlg: JwtAlg;
  /** JWT_PRIVATE_KEYS: private JWKs managed outside the database (the first signs), if given. */
  jwtPrivateKeys?: JsonWebKey[];
  /** Cache-Control max-age of the JWKS, in seconds; also how long a new key is published before it may sign. */
  jwksMaxAge: number;
  /** All durations in seconds. */
  accessTokenTtl: number;
  refreshTokenTtl: number;
  /** An admin's impersonation token, and its session: not refreshable. */
  impersonationTtl: number;
  sessionMaxAge: number;
  /** Seconds that ended sessions, expired mailed tokens and stale failed-login counters are kept. */
  retentionPeriod: number;
  refreshReuseGrace: number;
  authzCacheTtl: number;
  /** AUTHZ_CACHE_MAX: users whose authorization state is kept in memory. */
  authzCacheMax: number;
  /** VERIFIED_TOKEN_CACHE_MAX: access tokens whose verified claims are kept in memory. */
  verifiedTokenCacheMax: number;
  bcryptCost: number;
  cookieSecure: boolean;
  admin?: { email: string; password: string };
  /** smtp(s):// URL, required by the smtp transport. */
  smtpUrl?: string;
  /** `log`: messages are logged instead of sent (in production without their links). */
  mailTransport: 'smtp' | 'log';
  /** Longest wait for the mail server at each step (connect, greeting, each reply), in seconds. */
  smtpTimeout: number;
  mailFrom: string;
  /** The front end's address: links in mails point there. */
  appUrl: string;
  confirmTokenTtl: number;
  resetTokenTtl: number;
  /** Lifetime of an invitation's link. */
  inviteTtl: number;
  /** `invite-only`: no self-service sign-up, only accepted invitations. */
  registration: 'open' | 'invite-only';
  requireEmailConfirmation: boolean;
  /** Per client IP, per route: at most `max` requests each `windowSeconds`; `apiKey`: per API key, over all routes. */
  rateLimits: Record<'login' | 'register' | 'forgot' | 'resend' | 'refresh' | 'apiKey' | 'apiKeyLookups', RateLimitSetting>;
  /** Shared store for rate limits across instances; without it each instance counts alone. */
  redisUrl?: string;
  /** Fastify's trustProxy: whether (and which) X-Forwarded-For hops to believe. */
  trustProxy: boolean | number | string[];
  lockout: { maxFailures: number; window: number; lockout: number; maxLockout: number };
  corsOrigins: string[];
  /** Seconds of clock difference tolerated on exp/nbf/iat. */
  jwtClockSkew: number;
  /** How recent a factor must be (seconds) for routes marked `fresh: true`. */
  reauthMaxAge: number;
  /** Routes needing one of these permissions require aal2 from users who have a second factor. */
  mfaRequiredPermissions: string[];
  /** Users with one of these roles reach permission-guarded routes only once enrolled, at aal2. */
  mfaEnforceForRoles: string[];
  /** The issuer authenticator apps show beside the account (otpauth URI). */
  totpIssuer: string;
  /** Passkeys: the relying party (a registrable domain), the origins its pages are served from, and how long a ceremony may take (seconds). */
  webauthn: { rpId: string; rpName: string; origins: string[]; challengeTtl: number };
  passkeysMaxPerUser: number;
  /** A passkey sign-in with user verification is aal2 on its own, and a passkey is a second factor after a password. */
  passkeyCountsAsMfa: boolean;
  /** Longest a SIGTERM/SIGINT shutdown takes (requests in flight, then the database and the mailer) before the process exits 0 anyway, in seconds. */
  shutdownTimeout: number;
}

export interface RateLimitSetting {
  max: number;
  windowSeconds: number;
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

const MIN_SECRET_BYTES = 32;
const isTrue = (value: string) => value === 'true' || value === '1';

/** Reads and validates configuration; the only place that looks at process.env. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, warn: (msg: string) => void = console.warn): Config {
  const raw: Record<string, unknown> = {};
  for (const key of Object.keys(EnvSchema.properties)) {
    const value = env[key];
    if (value !== undefined && value !== '') raw[key] = value;
  }
  const withDefaults = Value.Default(EnvSchema, raw);
  const firstError = Value.Errors(EnvSchema, withDefaults).First();
  if (firstError) {
    const name = firstError.path.replace(/^\//, '');
    throw new ConfigError(`Invalid environment variable ${name}=${JSON.stringify(env[name] ?? '')}: ${firstError.message}`);
  }
  const e = withDefaults as Env;
  const production = e.NODE_ENV === 'production';
  const duration = (name: keyof Env) => {
    const seconds = parseDuration(String(e[name]));
    if (seconds === undefined) throw new ConfigError(`Invalid environment variable ${name}: not a duration`);
    return seconds;
  };
  const port = Number(e.PORT);
  if (port > 65535) throw new ConfigError(`Invalid environment variable PORT=${e.PORT}: must be at most 65535`);
  const bcryptCost = Number(e.BCRYPT_COST);
  if (bcryptCost < 4 || bcryptCost > 31) {
    throw new ConfigError(`Invalid environment variable BCRYPT_COST=${e.BCRYPT_COST}: must be between 4 and 31`);
  }
  const atLeast = (least: number, words: string) => (name: keyof Env) => {
    const seconds = duration(name);
    if (seconds < least) throw new ConfigError(`Invalid environment variable ${name}: must be at least ${words}`);
    return seconds;
  };
  const atLeastOneSecond = atLeast(1, '1 second');
  const atLeastOneHour = atLeast(3600, '1 hour');
  const accessTokenTtl = atLeastOneSecond('ACCESS_TOKEN_TTL');
  const rateLimit = (name: keyof Env): RateLimitSetting => {
    const [max, window] = String(e[name]).split('/');
    const windowSeconds = parseDuration(window ?? '');
    if (!windowSeconds || Number(max) < 1) throw new ConfigError(`Invalid environment variable ${name}=${e[name]}: expected N/duration, e.g. 20/1m`);
    return { max: Number(max), windowSeconds };
  };
  const dataDir = resolve(e.DATA_DIR);
  const secret = (name: 'JWT_SECRET' | 'PASSWORD_PEPPER') =>
    resolveSecret(name, e[name], { production, dataDir, warn });

  return {
    production,
    host: e.HOST,
    port,
    publicUrl: (e.PUBLIC_URL ?? defaultPublicUrl(e.HOST, port)).replace(/\/+$/, ''),
    logLevel: e.LOG_LEVEL,
    databaseUrl: e.DATABASE_URL,
    databaseListenUrl: e.DATABASE_LISTEN_URL ?? e.DATABASE_URL,
    databasePoolSize: Number(e.DATABASE_POOL_SIZE),
    databasePreparedStatements: isTrue(e.DATABASE_PREPARED_STATEMENTS),
    databaseQueryTimeout: atLeastOneSecond('DATABASE_QUERY_TIMEOUT'),
    databaseStartupTimeout: duration('DATABASE_STARTUP_TIMEOUT'),
    dataDir,
    jwtSecret: secret('JWT_SECRET'),
    passwordPepper: secret('PASSWORD_PEPPER'),
    encryptionKeys: encryptionKeys(e.ENCRYPTION_KEYS, { production, dataDir, warn }),
    jwtIssuer: e.JWT_ISSUER,
    jwtAudience: e.JWT_AUDIENCE,
    jwtAlg: e.JWT_ALG as JwtAlg,
    jwtPrivateKeys: e.JWT_PRIVATE_KEYS === undefined ? undefined : privateJwks(e.JWT_PRIVATE_KEYS),
    jwksMaxAge: duration('JWKS_MAX_AGE'),
    accessTokenTtl,
    refreshTokenTtl: duration('REFRESH_TOKEN_TTL'),
    impersonationTtl: atLeastOneSecond('IMPERSONATION_TTL'),
    sessionMaxAge: duration('SESSION_MAX_AGE'),
    retentionPeriod: atLeastOneHour('RETENTION_PERIOD'),
    refreshReuseGrace: duration('REFRESH_REUSE_GRACE'),
    authzCacheTtl: duration('AUTHZ_CACHE_TTL'),
    authzCacheMax: Number(e.AUTHZ_CACHE_MAX),
    verifiedTokenCacheMax: Number(e.VERIFIED_TOKEN_CACHE_MAX),
    bcryptCost,
    cookieSecure: isTrue(e.COOKIE_SECURE),
    smtpUrl: e.SMTP_URL,
    mailTransport: mailTransport(e.MAIL_TRANSPORT, e.SMTP_URL, production),
    smtpTimeout: duration('SMTP_TIMEOUT'),
    mailFrom: e.MAIL_FROM,
    appUrl: e.APP_URL.replace(/\/+$/, ''),
    confirmTokenTtl: duration('CONFIRM_TOKEN_TTL'),
    resetTokenTtl: duration('RESET_TOKEN_TTL'),
    inviteTtl: atLeastOneSecond('INVITE_TTL'),
    registration: e.REGISTRATION as Config['registration'],
    requireEmailConfirmation: isTrue(e.REQUIRE_EMAIL_CONFIRMATION),
    rateLimits: {
      login: rateLimit('RATE_LIMIT_LOGIN'),
      register: rateLimit('RATE_LIMIT_REGISTER'),
      forgot: rateLimit('RATE_LIMIT_FORGOT'),
      resend: rateLimit('RATE_LIMIT_RESEND'),
      refresh: rateLimit('RATE_LIMIT_REFRESH'),
      apiKey: rateLimit('RATE_LIMIT_API_KEY'),
      apiKeyLookups: rateLimit('RATE_LIMIT_API_KEY_LOOKUPS'),
    },
    redisUrl: e.REDIS_URL,
    trustProxy: parseTrustProxy(e.TRUST_PROXY),
    lockout: {
      maxFailures: Math.max(1, Number(e.LOGIN_MAX_FAILURES)),
      window: duration('LOGIN_FAILURE_WINDOW'),
      lockout: duration('LOGIN_LOCKOUT'),
      maxLockout: duration('LOGIN_LOCKOUT_MAX'),
    },
    corsOrigins: e.CORS_ORIGINS.split(',').map((o) => o.trim().replace(/\/+$/, '')).filter(Boolean),
    jwtClockSkew: duration('JWT_CLOCK_SKEW'),
    reauthMaxAge: atLeastOneSecond('REAUTH_MAX_AGE'),
    mfaRequiredPermissions: list(e.MFA_REQUIRED_PERMISSIONS),
    mfaEnforceForRoles: list(e.MFA_ENFORCE_FOR_ROLES),
    totpIssuer: e.TOTP_ISSUER,
    webauthn: webauthnSettings(e),
    passkeysMaxPerUser: Math.max(1, Number(e.PASSKEYS_MAX_PER_USER)),
    passkeyCountsAsMfa: isTrue(e.PASSKEY_COUNTS_AS_MFA),
    shutdownTimeout: atLeastOneSecond('SHUTDOWN_TIMEOUT'),
    admin: e.ADMIN_EMAIL && e.ADMIN_PASSWORD ? { email: e.ADMIN_EMAIL, password: e.ADMIN_PASSWORD } : undefined,
  };
}

/**
 * A production server without SMTP_URL would swallow every confirmation and reset mail while
 * looking healthy: it has to be asked for on purpose, with MAIL_TRANSPORT=log.
 */
function mailTransport(chosen: Env['MAIL_TRANSPORT'], smtpUrl: string | undefined, production: boolean): 'smtp' | 'log' {
  if (chosen === 'log') return 'log';
  if (smtpUrl) return 'smtp';
  if (chosen === 'smtp') throw new ConfigError('SMTP_URL is required when MAIL_TRANSPORT=smtp');
  if (production) {
    throw new ConfigError('SMTP_URL is required when NODE_ENV=production (or set MAIL_TRANSPORT=log to log mails, without their links, instead of sending them)');
  }
  return 'log';
}

/**
 * The relying party of passkeys: by default the front end's host (APP_URL), used from its origin.
 * A browser refuses an RP ID that is not the page's host or a registrable suffix of it.
 */
function webauthnSettings(e: Env): Config['webauthn'] {
  const appUrl = new URL(e.APP_URL);
  const origins = e.WEBAUTHN_ORIGINS === undefined ? [appUrl.origin] : list(e.WEBAUTHN_ORIGINS).map((o) => o.replace(/\/+$/, ''));
  for (const origin of origins) {
    if (!/^https?:\/\/[^/?#]+$/.test(origin)) throw new ConfigError(`Invalid environment variable WEBAUTHN_ORIGINS: ${JSON.stringify(origin)} is not an origin (scheme://host[:port])`);
  }
  if (origins.length === 0) throw new ConfigError('Invalid environment variable WEBAUTHN_ORIGINS: no origin given');
  const seconds = parseDuration(e.WEBAUTHN_CHALLENGE_TTL);
  if (!seconds) throw new ConfigError('Invalid environment variable WEBAUTHN_CHALLENGE_TTL: must be at least 1 second');
  return { rpId: (e.WEBAUTHN_RP_ID ?? appUrl.hostname).toLowerCase(), rpName: e.WEBAUTHN_RP_NAME, origins, challengeTtl: seconds };
}

/** The address a client on this machine reaches the server at: a wildcard HOST listens on 127.0.0.1 too. */
function defaultPublicUrl(host: string, port: number): string {
  const address = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
  return `http://${address}:${port}`;
}

/** JWT_PRIVATE_KEYS: a non-empty JSON array of private JWKs (each with its private part `d`). */
function privateJwks(text: string): JsonWebKey[] {
  let keys: unknown;
  try {
    keys = JSON.parse(text);
  } catch {
    throw new ConfigError('Invalid environment variable JWT_PRIVATE_KEYS: not JSON (expected an array of private JWKs)');
  }
  if (!Array.isArray(keys) || keys.length === 0 || !keys.every((k) => typeof (k as JsonWebKey | null)?.d === 'string')) {
    throw new ConfigError('Invalid environment variable JWT_PRIVATE_KEYS: expected a non-empty array of private JWKs, each with its "d"');
  }
  return keys as JsonWebKey[];
}

const list = (value: string) => value.split(',').map((item) => item.trim()).filter(Boolean);

/**
 * ENCRYPTION_KEYS as given, or, outside production, one key generated once and kept in DATA_DIR
 * like the other secrets: losing it would make every stored TOTP secret unreadable.
 */
function encryptionKeys(value: string | undefined, options: { production: boolean; dataDir: string; warn: (msg: string) => void }): EncryptionKey[] {
  if (value === undefined && options.production) {
    throw new ConfigError('ENCRYPTION_KEYS is required when NODE_ENV=production: id:base64key, each key 32 random bytes (k1:$(openssl rand -base64 32))');
  }
  const text = resolveSecret('ENCRYPTION_KEYS', value, { ...options, generate: () => generateKeyRing() });
  try {
    return parseKeyRing(text);
  } catch (err) {
    throw new ConfigError(`Invalid environment variable ENCRYPTION_KEYS: ${(err as Error).message}`);
  }
}

function parseTrustProxy(value: string): boolean | number | string[] {
  const v = value.trim();
  if (v === 'true' || v === 'false') return v === 'true';
  if (/^\d+$/.test(v)) return Number(v);
  return v.split(',').map((a) => a.trim()).filter(Boolean);
}

/**
 * Outside production a missing secret is generated once and kept in DATA_DIR, so tokens and
 * password hashes stay valid across restarts of a development server.
 */
function resolveSecret(
  name: 'JWT_SECRET' | 'PASSWORD_PEPPER' | 'ENCRYPTION_KEYS',
  value: string | undefined,
  {
    production,
    dataDir,
    warn,
    generate = () => randomBytes(48).toString('base64url'),
  }: { production: boolean; dataDir: string; warn: (msg: string) => void; generate?: () => string },
): string {
  if (value !== undefined) {
    if (production && Buffer.byteLength(value, 'utf8') < MIN_SECRET_BYTES) {
      throw new ConfigError(`${name} must be at least ${MIN_SECRET_BYTES} bytes when NODE_ENV=production`);
    }
    return value;
  }
  if (production) throw new ConfigError(`${name} is required when NODE_ENV=production (at least ${MIN_SECRET_BYTES} bytes)`);
  const file = join(dataDir, 'secrets.json');
  const stored = readStoredSecrets(file);
  const existing = stored[name];
  if (existing) return existing;
  const generated = generate();
  mkdirSync(dataDir, { recursive: true });
  writeFileSync(file, JSON.stringify({ ...stored, [name]: generated }, null, 2), { mode: 0o600 });
  warn(`${name} is not set: generated one and stored it in ${file}. Set ${name} in production.`);
  return generated;
}

/**
 * DATA_DIR/secrets.json, or nothing before the first start. A file that is there but unreadable
 * stops the start: generating new secrets in its place would invalidate every stored password hash
 * and every token issued so far.
 */
function readStoredSecrets(file: string): Record<string, string> {
  const broken = (why: string) =>
    new ConfigError(
      `${file} ${why}. It holds the secrets generated on the first start: restore it, or set them in the environment ` +
        '(deleting it generates new ones, and every stored password and issued token stops working).',
    );
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw broken(`cannot be read (${(err as NodeJS.ErrnoException).code})`);
  }
  let stored: unknown;
  try {
    stored = JSON.parse(text);
  } catch {
    throw broken('is not valid JSON');
  }
  if (typeof stored !== 'object' || stored === null || Array.isArray(stored) || Object.values(stored).some((value) => typeof value !== 'string' || value === '')) {
    throw broken('is not a JSON object of non-empty strings');
  }
  return stored as Record<string, string>;
}
