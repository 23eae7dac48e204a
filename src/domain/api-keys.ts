import { randomBytes } from 'node:crypto';
import { and, desc, eq, isNull, sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { apiKeys, type ApiKeyRow } from '../db/schema.js';
import { problem } from '../errors.js';
import type { UserAccess } from '../types.js';
import { EVERYONE, type AccessCache } from './access-cache.js';
import { assertGrantorHolds, lockAccessChanges } from './delegation.js';
import { constantTimeEqual, hmac } from './tokens.js';

/** `gh_<keyId>_<secret>`: keyId 12 base32 characters, secret 32 random bytes in base64url. */
const API_KEY = /^gh_([a-z2-7]{12})_([A-Za-z0-9_-]{43})$/;
const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567';
const HASH_VERSION = 'v1:';
/** lastUsedAt is written at most this often per key: a busy script costs no write per request. */
const LAST_USED_INTERVAL_MS = 60_000;

export interface PresentedKey {
  keyId: string;
  secret: string;
}

/** Whether a credential is meant as an API key (then it is judged as one, never as a JWT). */
export function isApiKeyShaped(value: string): boolean {
  return value.startsWith('gh_');
}

export function parseApiKey(value: string): PresentedKey | undefined {
  const match = API_KEY.exec(value);
  return match ? { keyId: match[1]!, secret: match[2]! } : undefined;
}

function newKeyId(): string {
  const bytes = randomBytes(12);
  let id = '';
  for (const byte of bytes) id += BASE32[byte & 31];
  return id;
}

/** The only form in which a key's secret is stored: versioned, so the scheme can change later. */
export function hashApiKeySecret(key: Buffer, secret: string): string {
  return HASH_VERSION + hmac(key, secret);
}

export function apiKeyInvalid() {
  return problem('api_key_invalid', 'The API key is not valid (unknown, expired or revoked).', {
    headers: { 'www-authenticate': 'Bearer error="invalid_token"' },
  });
}

/**
 * Creates a key for `userId` with `permissions`, each of which the owner must hold now (the
 * delegation rule: a key is handed out by its owner). Answers the row and the key, which is
 * shown this once.
 */
export async function createApiKey(
  db: Db,
  hashKey: Buffer,
  input: { userId: string; name: string; permissions: string[]; expiresIn?: number },
): Promise<{ row: ApiKeyRow; key: string }> {
  const keyId = newKeyId();
  const secret = randomBytes(32).toString('base64url');
  const permissions = [...new Set(input.permissions)].sort();
  const row = await db.transaction(async (tx) => {
    await lockAccessChanges(tx);
    await assertGrantorHolds(tx, { userId: input.userId }, permissions, 'create this key');
    const [inserted] = await tx
      .insert(apiKeys)
      .values({
        userId: input.userId,
        keyId,
        name: input.name,
        secretHash: hashApiKeySecret(hashKey, secret),
        permissions,
        expiresAt: input.expiresIn === undefined ? null : new Date(Date.now() + input.expiresIn * 1000),
      })
      .returning();
    return inserted!;
  });
  return { row, key: `gh_${keyId}_${secret}` };
}

/** Keys not revoked, newest first: of one user, or of everyone. */
export async function listApiKeys(db: Db, userId?: string): Promise<ApiKeyRow[]> {
  const live = isNull(apiKeys.revokedAt);
  return db
    .select()
    .from(apiKeys)
    .where(userId ? and(live, eq(apiKeys.userId, userId)) : live)
    .orderBy(desc(apiKeys.createdAt), desc(apiKeys.id))
    .limit(1000);
}

/**
 * Revokes a key (of `ownerId` only, when given: someone else's key is as unknown as a missing one).
 * Answers the owner's id, or throws not_found. Revoking twice is not an error.
 */
export async function revokeApiKey(db: Db, id: string, ownerId?: string): Promise<{ userId: string; revoked: boolean }> {
  const [found] = await db.select({ userId: apiKeys.userId, revokedAt: apiKeys.revokedAt }).from(apiKeys).where(eq(apiKeys.id, id));
  if (!found || (ownerId !== undefined && found.userId !== ownerId)) throw problem('not_found', 'No such API key.');
  const revoked = await db
    .update(apiKeys)
    .set({ revokedAt: new Date() })
    .where(and(eq(apiKeys.id, id), isNull(apiKeys.revokedAt)))
    .returning({ id: apiKeys.id });
  return { userId: found.userId, revoked: revoked.length > 0 };
}

/** A key as the authentication path needs it, held in memory (ApiKeys). */
export interface ApiKeyEntry {
  id: string;
  keyId: string;
  userId: string;
  secretHash: string;
  permissions: ReadonlySet<string>;
  /** ms since the epoch, or null: never expires. */
  expiresAt: number | null;
  revoked: boolean;
  loadedAt: number;
}

/**
 * In-memory cache of API keys by keyId, riding on the authorization cache: a key's entry is dropped
 * whenever its owner's is (locally or by a notice from another instance), so revoking a key is
 * `access.changed(owner)`, and a key's rights are always computed from its owner's current ones.
 */
export class ApiKeys {
  private readonly entries = new Map<string, ApiKeyEntry>();
  private readonly loading = new Map<string, Promise<ApiKeyEntry | undefined>>();
  /** The owner's state each key's effective access was last derived from. */
  private readonly effective = new WeakMap<ApiKeyEntry, { owner: UserAccess; access: UserAccess }>();
  private readonly lastWritten = new Map<string, number>();
  /** What an unknown keyId is compared against, so that it takes as long as a known one. */
  private readonly decoy: string;
  /**
   * The secret each loaded entry was last proved with, kept in a Set: a hash lookup, so a wrong
   * secret is not compared character by character with the right one (no timing to learn from),
   * and a key used over and over pays for its HMAC once per load, as a JWT does for its signature.
   */
  private readonly proved = new WeakMap<ApiKeyEntry, Set<string>>();

  constructor(
    private readonly db: Db,
    private readonly access: AccessCache,
    private readonly hashKey: Buffer,
    private readonly runInBackground: (name: string, task: () => Promise<void>) => void,
    /** AUTHZ_CACHE_MAX: keys held in memory, as many as users' states. */
    private readonly maxEntries = 50_000,
  ) {
    this.decoy = hashApiKeySecret(hashKey, 'decoy');
    access.onInvalidate((userId) => {
      if (userId === EVERYONE) {
        this.entries.clear();
        return;
      }
      for (const [keyId, entry] of this.entries) if (entry.userId === userId) this.entries.delete(keyId);
    });
  }

  /** The entry if it is in memory and fresh; undefined means only the database can tell. */
  peek(keyId: string): ApiKeyEntry | undefined {
    if (!this.access.trusted) return undefined;
    const cached = this.entries.get(keyId);
    return cached && Date.now() - cached.loadedAt < this.access.ttlMs ? cached : undefined;
  }

  async get(keyId: string): Promise<ApiKeyEntry | undefined> {
    const cached = this.peek(keyId);
    if (cached) return cached;
    if (!this.access.trusted) return this.load(keyId);
    let pending = this.loading.get(keyId);
    if (!pending) {
      pending = this.load(keyId).finally(() => this.loading.delete(keyId));
      this.loading.set(keyId, pending);
    }
    return pending;
  }

  /** Whether `presented` is the secret of `entry` (of no key when undefined), in constant time. */
  matches(entry: ApiKeyEntry | undefined, presented: PresentedKey): boolean {
    if (entry && this.proved.get(entry)?.has(presented.secret)) return true;
    const hash = hashApiKeySecret(this.hashKey, presented.secret);
    const matched = constantTimeEqual(hash, entry?.secretHash ?? this.decoy) && entry !== undefined;
    if (matched) this.proved.set(entry, new Set([presented.secret]));
    return matched;
  }

  /**
   * What the key may do now: its owner's current state, with the permissions the key lists and the
   * owner still holds, and no roles (a role would stand for permissions the key was not given).
   * Undefined when the key is not usable: expired, revoked, or its owner disabled or gone.
   */
  effectiveAccess(entry: ApiKeyEntry, owner: UserAccess | undefined, nowMs = Date.now()): UserAccess | undefined {
    if (entry.revoked || (entry.expiresAt !== null && nowMs >= entry.expiresAt)) return undefined;
    if (!owner || !owner.user.active) return undefined;
    const known = this.effective.get(entry);
    if (known?.owner === owner) return known.access;
    const access: UserAccess = {
      user: owner.user,
      roles: new Set(),
      permissions: new Set([...entry.permissions].filter((p) => owner.permissions.has(p))),
      liveSessions: new Set(),
      mfaEnrolled: owner.mfaEnrolled,
      hasPasskey: owner.hasPasskey,
      loadedAt: owner.loadedAt,
    };
    this.effective.set(entry, { owner, access });
    return access;
  }

  /** Records the key's use, in the database at most once a minute per key (and per instance, by the row). */
  used(entry: ApiKeyEntry, ipOf: () => string | null): void {
    const now = Date.now();
    const last = this.lastWritten.get(entry.id);
    if (last !== undefined && now - last < LAST_USED_INTERVAL_MS) return;
    if (this.lastWritten.size >= this.maxEntries) this.lastWritten.delete(this.lastWritten.keys().next().value!);
    this.lastWritten.set(entry.id, now);
    // Asked for only when written: reading the client address costs on every request otherwise.
    const ip = ipOf();
    this.runInBackground('api key last use', async () => {
      await this.db
        .update(apiKeys)
        .set({ lastUsedAt: new Date(now), lastUsedIp: ip })
        .where(and(eq(apiKeys.id, entry.id), sql`(${apiKeys.lastUsedAt} is null or ${apiKeys.lastUsedAt} < now() - interval '1 minute')`));
    });
  }

  private async load(keyId: string): Promise<ApiKeyEntry | undefined> {
    const ticket = this.access.ticket();
    const [row] = await this.db.select().from(apiKeys).where(eq(apiKeys.keyId, keyId));
    if (!row) return undefined;
    const entry: ApiKeyEntry = {
      id: row.id,
      keyId: row.keyId,
      userId: row.userId,
      secretHash: row.secretHash,
      permissions: new Set(row.permissions),
      expiresAt: row.expiresAt ? row.expiresAt.getTime() : null,
      revoked: row.revokedAt !== null,
      loadedAt: ticket.loadedAt,
    };
    // A revocation that came in while this was read may predate it: used for this request only.
    if (this.access.mayKeep(ticket)) {
      if (this.entries.size >= this.maxEntries && !this.entries.has(keyId)) this.entries.delete(this.entries.keys().next().value!);
      this.entries.set(keyId, entry);
    }
    return entry;
  }
}
