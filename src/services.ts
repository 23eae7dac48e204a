import type { FastifyBaseLogger } from 'fastify';
import type { Config } from './config.js';
import type { Database, Db } from './db/client.js';
import { AccessCache } from './domain/access-cache.js';
import { ApiKeys } from './domain/api-keys.js';
import { createPasswordHasher, type PasswordHasher } from './domain/passwords.js';
import { Retention } from './domain/retention.js';
import { SigningKeys } from './domain/signing-keys.js';
import type { SessionSettings } from './domain/sessions.js';
import type { AuditEventInput } from './domain/audit.js';
import { createAuditQueue, type AuditQueue } from './domain/audit-queue.js';
import { deriveKey } from './domain/tokens.js';
import { createBackgroundTasks, type BackgroundTasks } from './lib/background.js';
import { KeyRing } from './lib/encryption.js';
import { createMailer, type Mailer } from './mail/mailer.js';

/** Everything a Gatehouse handler needs, built once per app from the config and the database. */
export interface Gatehouse {
  config: Config;
  database: Database;
  db: Db;
  passwords: PasswordHasher;
  access: AccessCache;
  sessionSettings: SessionSettings;
  /** Derives the CSRF token of a cookie-mode session from its id: nothing to store. */
  csrfKey: Buffer;
  /** Seals TOTP secrets at rest under ENCRYPTION_KEYS. */
  keyRing: KeyRing;
  /** Hashes recovery codes: an HMAC key derived from PASSWORD_PEPPER. */
  recoveryCodeKey: Buffer;
  /** API keys by keyId, in memory, dropped with their owner's authorization state. */
  apiKeys: ApiKeys;
  /** Hashes API key secrets: an HMAC key derived from PASSWORD_PEPPER. */
  apiKeyHashKey: Buffer;
  /** Signs and verifies access tokens (JWT_ALG), in memory; start() loads them. */
  signingKeys: SigningKeys;
  mailer: Mailer;
  background: BackgroundTasks;
  /** Appends to the audit log after the answer, through `auditQueue`; never fails the request. */
  audit(event: AuditEventInput): void;
  /** Audit events on their way to the database, kept while it is out of reach. */
  auditQueue: AuditQueue;
  /** The purge of what ended more than RETENTION_PERIOD ago. */
  retention: Retention;
}

// `app.gatehouse` (GatehouseServices) is this interface, seen from inside the package: see types.ts.
declare module './types.js' {
  interface GatehouseServices extends Gatehouse {}
}

export function createGatehouse(config: Config, database: Database, log: FastifyBaseLogger): Gatehouse {
  const background = createBackgroundTasks(log);
  const auditQueue = createAuditQueue(database.db, background, log);
  const keyRing = new KeyRing(config.encryptionKeys);
  const access = new AccessCache(database, { ttlMs: config.authzCacheTtl * 1000, maxEntries: config.authzCacheMax, log });
  const apiKeyHashKey = deriveKey(config.passwordPepper, 'api-keys');
  return {
    config,
    database,
    db: database.db,
    passwords: createPasswordHasher({ pepper: config.passwordPepper, cost: config.bcryptCost }),
    access,
    apiKeys: new ApiKeys(database.db, access, apiKeyHashKey, (name, task) => background.run(name, task), config.authzCacheMax),
    apiKeyHashKey,
    sessionSettings: {
      refreshTokenTtl: config.refreshTokenTtl,
      sessionMaxAge: config.sessionMaxAge,
      refreshReuseGrace: config.refreshReuseGrace,
      successorKey: deriveKey(config.jwtSecret, 'refresh-successor'),
    },
    csrfKey: deriveKey(config.jwtSecret, 'csrf'),
    keyRing,
    signingKeys: new SigningKeys(database, config, keyRing, log),
    recoveryCodeKey: deriveKey(config.passwordPepper, 'recovery-codes'),
    mailer: createMailer({
      transport: config.mailTransport,
      smtpUrl: config.smtpUrl,
      logLinks: !config.production,
      timeoutSeconds: config.smtpTimeout,
      from: config.mailFrom,
      log,
    }),
    background,
    audit: (event) => auditQueue.record(event),
    auditQueue,
    retention: new Retention(database.db, config.retentionPeriod, background, log),
  };
}
