import { relations, sql } from 'drizzle-orm';
import {
  bigint,
  boolean,
  index,
  integer,
  jsonb,
  bigserial,
  pgTable,
  primaryKey,
  text,
  timestamp,
  uniqueIndex,
  uuid,
  type AnyPgColumn,
} from 'drizzle-orm/pg-core';

const createdAt = () => timestamp('created_at', { withTimezone: true }).notNull().defaultNow();

export const users = pgTable(
  'users',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    /** Always stored normalized (trimmed, lower-cased): see domain/email.ts. */
    email: text('email').notNull(),
    passwordHash: text('password_hash').notNull(),
    name: text('name'),
    active: boolean('active').notNull().default(true),
    emailConfirmedAt: timestamp('email_confirmed_at', { withTimezone: true }),
    createdAt: createdAt(),
    updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
    lastLoginAt: timestamp('last_login_at', { withTimezone: true }),
    lastLoginIp: text('last_login_ip'),
    previousLoginAt: timestamp('previous_login_at', { withTimezone: true }),
    previousLoginIp: text('previous_login_ip'),
    loginCount: integer('login_count').notNull().default(0),
  },
  (t) => [
    uniqueIndex('users_email_key').on(t.email),
    // keyset pagination of the admin user list
    index('users_created_at_id_idx').on(t.createdAt, t.id),
  ],
);

export const roles = pgTable('roles', {
  id: uuid('id').primaryKey().defaultRandom(),
  name: text('name').notNull().unique(),
  description: text('description'),
  createdAt: createdAt(),
});

export const permissions = pgTable('permissions', {
  id: uuid('id').primaryKey().defaultRandom(),
  name: text('name').notNull().unique(),
  description: text('description'),
  createdAt: createdAt(),
});

export const userRoles = pgTable(
  'user_roles',
  {
    userId: uuid('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    roleId: uuid('role_id')
      .notNull()
      .references(() => roles.id, { onDelete: 'cascade' }),
  },
  (t) => [primaryKey({ columns: [t.userId, t.roleId] }), index('user_roles_role_id_idx').on(t.roleId)],
);

export const rolePermissions = pgTable(
  'role_permissions',
  {
    roleId: uuid('role_id')
      .notNull()
      .references(() => roles.id, { onDelete: 'cascade' }),
    permissionId: uuid('permission_id')
      .notNull()
      .references(() => permissions.id, { onDelete: 'cascade' }),
  },
  (t) => [
    primaryKey({ columns: [t.roleId, t.permissionId] }),
    index('role_permissions_permission_id_idx').on(t.permissionId),
  ],
);

/** One per login. Refresh tokens rotate within it; revoking it ends all of them at once. */
export const sessions = pgTable(
  'sessions',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    userId: uuid('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    userAgent: text('user_agent'),
    ip: text('ip'),
    createdAt: createdAt(),
    lastUsedAt: timestamp('last_used_at', { withTimezone: true }).notNull().defaultNow(),
    /** Idle expiry, pushed forward by each refresh but never past createdAt + SESSION_MAX_AGE. */
    expiresAt: timestamp('expires_at', { withTimezone: true }).notNull(),
    revokedAt: timestamp('revoked_at', { withTimezone: true }),
    revokedReason: text('revoked_reason'),
    /** When the user last proved a factor in this session: a login, a step-up. A refresh keeps it. */
    authTime: timestamp('auth_time', { withTimezone: true }).notNull().defaultNow(),
    /** How: RFC 8176 method references (pwd, otp, mfa; rc for a recovery code). */
    amr: text('amr').array().notNull().default(sql`'{pwd}'::text[]`),
    /** aal2 once a second factor was proved in this session, else aal1. */
    aal: text('aal', { enum: ['aal1', 'aal2'] }).notNull().default('aal1'),
    /** The admin acting as the user, for an impersonation session (no refresh token; ends with its one access token). */
    impersonatorId: uuid('impersonator_id').references(() => users.id, { onDelete: 'cascade' }),
    impersonationReason: text('impersonation_reason'),
    /** The generation of the current refresh token (domain/refresh-tokens.ts): 0 at login, one more per rotation. */
    refreshGeneration: integer('refresh_generation').notNull().default(0),
    /** SHA-256 of the current refresh token, the only one that rotates; null for a session without one. */
    refreshTokenHash: text('refresh_token_hash'),
    /** When the current token replaced its predecessor: the start of that one's reuse grace. */
    refreshRotatedAt: timestamp('refresh_rotated_at', { withTimezone: true }),
  },
  (t) => [
    index('sessions_live_by_user_idx')
      .on(t.userId)
      .where(sql`${t.revokedAt} is null`),
  ],
);

/**
 * Refresh tokens issued before migration 0011, when each token had a row here. Read only to convert
 * a session that still presents one (its successor is a session-named token); nothing is added.
 */
export const refreshTokens = pgTable(
  'refresh_tokens',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    sessionId: uuid('session_id')
      .notNull()
      .references(() => sessions.id, { onDelete: 'cascade' }),
    /** SHA-256 of the token; the token itself is never stored. */
    tokenHash: text('token_hash').notNull(),
    issuedAt: timestamp('issued_at', { withTimezone: true }).notNull().defaultNow(),
    rotatedAt: timestamp('rotated_at', { withTimezone: true }),
    /** The token that replaced this one, while tokens were rows (no foreign key: nothing reads the chain back). */
    successorId: uuid('successor_id'),
  },
  (t) => [uniqueIndex('refresh_tokens_token_hash_key').on(t.tokenHash), index('refresh_tokens_session_id_idx').on(t.sessionId)],
);

/**
 * Single-use tokens sent by mail: sign-up confirmation, email change (with the new address) and
 * password reset. Only the SHA-256 of the token is stored.
 */
export const userTokens = pgTable(
  'user_tokens',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    userId: uuid('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    purpose: text('purpose', { enum: ['confirm_email', 'change_email', 'reset_password'] }).notNull(),
    tokenHash: text('token_hash').notNull(),
    newEmail: text('new_email'),
    createdAt: createdAt(),
    expiresAt: timestamp('expires_at', { withTimezone: true }).notNull(),
    usedAt: timestamp('used_at', { withTimezone: true }),
  },
  (t) => [uniqueIndex('user_tokens_token_hash_key').on(t.tokenHash), index('user_tokens_user_id_idx').on(t.userId)],
);

/** A user's TOTP authenticator: at most one, in use once confirmed with a first code. */
export const totpFactors = pgTable('totp_factors', {
  userId: uuid('user_id')
    .primaryKey()
    .references(() => users.id, { onDelete: 'cascade' }),
  /** The base32 secret sealed with AES-256-GCM under ENCRYPTION_KEYS (lib/encryption.ts). */
  secret: text('secret').notNull(),
  createdAt: createdAt(),
  confirmedAt: timestamp('confirmed_at', { withTimezone: true }),
  /** The latest 30 s time step whose code was accepted: that step and older ones are refused (replay). */
  lastUsedStep: bigint('last_used_step', { mode: 'number' }),
});

/** Single-use codes for when the authenticator is lost; HMAC-SHA256 under a key from PASSWORD_PEPPER. */
export const recoveryCodes = pgTable(
  'recovery_codes',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    userId: uuid('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    codeHash: text('code_hash').notNull(),
    createdAt: createdAt(),
    usedAt: timestamp('used_at', { withTimezone: true }),
  },
  (t) => [uniqueIndex('recovery_codes_user_code_key').on(t.userId, t.codeHash)],
);

/**
 * A login waiting for its second factor: the mfaToken (only its SHA-256 stored) stands for the
 * first factor already proved, for a few minutes and a few wrong codes.
 */
export const mfaChallenges = pgTable(
  'mfa_challenges',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    userId: uuid('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    tokenHash: text('token_hash').notNull(),
    /** The factors proved so far (RFC 8176 method references). */
    amr: text('amr').array().notNull(),
    createdAt: createdAt(),
    expiresAt: timestamp('expires_at', { withTimezone: true }).notNull(),
    /** Codes tried with this token, reserved before each is checked. */
    attempts: integer('attempts').notNull().default(0),
    usedAt: timestamp('used_at', { withTimezone: true }),
  },
  (t) => [uniqueIndex('mfa_challenges_token_hash_key').on(t.tokenHash), index('mfa_challenges_user_id_idx').on(t.userId)],
);

/** Second-factor codes tried per user in the current window, whatever the mfaToken: reserved before each check. */
export const mfaAttempts = pgTable('mfa_attempts', {
  userId: uuid('user_id')
    .primaryKey()
    .references(() => users.id, { onDelete: 'cascade' }),
  attempts: integer('attempts').notNull().default(0),
  windowStartedAt: timestamp('window_started_at', { withTimezone: true }).notNull(),
});

/**
 * A user's passkeys (WebAuthn credentials). The public key is not secret; the credential id is
 * unique across users, which is how a usernameless sign-in finds its user.
 */
export const passkeys = pgTable(
  'passkeys',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    userId: uuid('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    /** base64url, as the browser reports it. */
    credentialId: text('credential_id').notNull(),
    /** The COSE public key, base64url. */
    publicKey: text('public_key').notNull(),
    /** The signature counter last seen: an assertion must report more (unless the authenticator always says 0). */
    counter: bigint('counter', { mode: 'number' }).notNull().default(0),
    transports: text('transports').array().notNull().default(sql`'{}'::text[]`),
    name: text('name').notNull(),
    /** The opaque user handle the authenticator keeps with the credential (base64url of random bytes, never the email): one per user. */
    userHandle: text('user_handle').notNull(),
    backedUp: boolean('backed_up').notNull().default(false),
    createdAt: createdAt(),
    lastUsedAt: timestamp('last_used_at', { withTimezone: true }),
  },
  (t) => [uniqueIndex('passkeys_credential_id_key').on(t.credentialId), index('passkeys_user_id_idx').on(t.userId)],
);

/**
 * A WebAuthn ceremony under way: the challenge the authenticator must sign. Single use: it is
 * deleted as it is checked (DELETE ... RETURNING), so of two requests with it only one gets it.
 */
export const webauthnChallenges = pgTable(
  'webauthn_challenges',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    purpose: text('purpose', { enum: ['registration', 'authentication'] }).notNull(),
    challenge: text('challenge').notNull(),
    /** Whose ceremony: the registering user, or the user of a login's second step; null for a usernameless sign-in. */
    userId: uuid('user_id').references(() => users.id, { onDelete: 'cascade' }),
    /** A registration's user handle (base64url), kept with the passkey it creates. */
    userHandle: text('user_handle'),
    createdAt: createdAt(),
    expiresAt: timestamp('expires_at', { withTimezone: true }).notNull(),
  },
  (t) => [index('webauthn_challenges_expires_at_idx').on(t.expiresAt)],
);

/**
 * Failed-login counting per normalized email, known or not (an unknown email must answer the
 * same). Every attempt is reserved here atomically before the password is checked, so parallel
 * guesses cannot slip past the limit.
 */
export const loginAttempts = pgTable('login_attempts', {
  email: text('email').primaryKey(),
  attempts: integer('attempts').notNull().default(0),
  windowStartedAt: timestamp('window_started_at', { withTimezone: true }).notNull(),
  lockedUntil: timestamp('locked_until', { withTimezone: true }),
  /** Lockouts so far: each one lasts twice the previous, up to the maximum. */
  lockouts: integer('lockouts').notNull().default(0),
});

/**
 * Key pairs that sign access tokens (JWT_ALG other than HS256). `kid` is the RFC 7638 thumbprint of
 * the public key; the private key is a JWK sealed with ENCRYPTION_KEYS, its kid as the context. A
 * key is published from `next` on, signs while `current` (one at most: the partial unique index),
 * still verifies when `retired`, and is neither published nor accepted once `revoked`.
 */
export const signingKeys = pgTable(
  'signing_keys',
  {
    kid: text('kid').primaryKey(),
    alg: text('alg', { enum: ['ES256', 'EdDSA', 'RS256'] }).notNull(),
    publicJwk: jsonb('public_jwk').$type<Record<string, string>>().notNull(),
    privateKey: text('private_key').notNull(),
    status: text('status', { enum: ['next', 'current', 'retired', 'revoked'] }).notNull(),
    createdAt: createdAt(),
    activatedAt: timestamp('activated_at', { withTimezone: true }),
    retiredAt: timestamp('retired_at', { withTimezone: true }),
    revokedAt: timestamp('revoked_at', { withTimezone: true }),
  },
  (t) => [uniqueIndex('signing_keys_one_current').on(t.status).where(sql`${t.status} = 'current'`)],
);

/**
 * Keys that scripts and services send instead of an access token: `gh_<keyId>_<secret>`. Looked up by
 * keyId; only `v1:` + HMAC-SHA256 of the secret (under a key derived from PASSWORD_PEPPER) is stored.
 * A key acts for its owner with at most `permissions`; a revoked key stays for the record.
 */
export const apiKeys = pgTable(
  'api_keys',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    userId: uuid('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    keyId: text('key_id').notNull(),
    name: text('name').notNull(),
    secretHash: text('secret_hash').notNull(),
    permissions: text('permissions').array().notNull(),
    createdAt: createdAt(),
    expiresAt: timestamp('expires_at', { withTimezone: true }),
    /** Written at most once a minute per key, not on every request. */
    lastUsedAt: timestamp('last_used_at', { withTimezone: true }),
    lastUsedIp: text('last_used_ip'),
    revokedAt: timestamp('revoked_at', { withTimezone: true }),
  },
  (t) => [uniqueIndex('api_keys_key_id_key').on(t.keyId), index('api_keys_user_id_idx').on(t.userId)],
);

/**
 * An invitation to sign up with an email and roles (POST /admin/invitations). Only the SHA-256 of its
 * token is stored; it is used once (acceptedAt), revoked, superseded by a newer one, or expires.
 */
export const invitations = pgTable(
  'invitations',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    email: text('email').notNull(),
    /** Role names, granted on acceptance besides the default role (those still existing then). */
    roles: text('roles').array().notNull(),
    tokenHash: text('token_hash').notNull(),
    invitedBy: uuid('invited_by').references(() => users.id, { onDelete: 'set null' }),
    createdAt: createdAt(),
    expiresAt: timestamp('expires_at', { withTimezone: true }).notNull(),
    acceptedAt: timestamp('accepted_at', { withTimezone: true }),
    /** The account the acceptance created. */
    userId: uuid('user_id').references(() => users.id, { onDelete: 'set null' }),
    revokedAt: timestamp('revoked_at', { withTimezone: true }),
  },
  (t) => [uniqueIndex('invitations_token_hash_key').on(t.tokenHash), index('invitations_email_idx').on(t.email)],
);

/**
 * Append-only trail of security events. No foreign keys: the trail outlives the users it names.
 */
export const auditEvents = pgTable(
  'audit_events',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    type: text('type').notNull(),
    at: timestamp('at', { withTimezone: true }).notNull().defaultNow(),
    actorId: uuid('actor_id'),
    userId: uuid('user_id'),
    ip: text('ip'),
    userAgent: text('user_agent'),
    detail: jsonb('detail').$type<Record<string, unknown>>().notNull().default({}),
  },
  (t) => [
    index('audit_events_at_idx').on(t.at, t.id),
    index('audit_events_user_at_idx').on(t.userId, t.at),
    index('audit_events_type_at_idx').on(t.type, t.at),
  ],
);

export const usersRelations = relations(users, ({ many }) => ({
  userRoles: many(userRoles),
  sessions: many(sessions),
}));
export const rolesRelations = relations(roles, ({ many }) => ({
  userRoles: many(userRoles),
  rolePermissions: many(rolePermissions),
}));
export const permissionsRelations = relations(permissions, ({ many }) => ({
  rolePermissions: many(rolePermissions),
}));
export const userRolesRelations = relations(userRoles, ({ one }) => ({
  user: one(users, { fields: [userRoles.userId], references: [users.id] }),
  role: one(roles, { fields: [userRoles.roleId], references: [roles.id] }),
}));
export const rolePermissionsRelations = relations(rolePermissions, ({ one }) => ({
  role: one(roles, { fields: [rolePermissions.roleId], references: [roles.id] }),
  permission: one(permissions, { fields: [rolePermissions.permissionId], references: [permissions.id] }),
}));
export const sessionsRelations = relations(sessions, ({ one, many }) => ({
  user: one(users, { fields: [sessions.userId], references: [users.id] }),
  refreshTokens: many(refreshTokens),
}));
export const refreshTokensRelations = relations(refreshTokens, ({ one }) => ({
  session: one(sessions, { fields: [refreshTokens.sessionId], references: [sessions.id] }),
}));

export type User = typeof users.$inferSelect;
export type Session = typeof sessions.$inferSelect;
export type RefreshToken = typeof refreshTokens.$inferSelect;
export type UserToken = typeof userTokens.$inferSelect;
export type AuditEvent = typeof auditEvents.$inferSelect;
export type TotpFactor = typeof totpFactors.$inferSelect;
export type MfaChallenge = typeof mfaChallenges.$inferSelect;
export type Passkey = typeof passkeys.$inferSelect;
export type SigningKeyRow = typeof signingKeys.$inferSelect;
export type ApiKeyRow = typeof apiKeys.$inferSelect;
export type UserTokenPurpose = UserToken['purpose'];
export type InvitationRow = typeof invitations.$inferSelect;
