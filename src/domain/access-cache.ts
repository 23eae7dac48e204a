import { sql } from 'drizzle-orm';
import type { Database } from '../db/client.js';
import type { User } from '../db/schema.js';
import { loadAuthorizationState } from './users.js';

export const ACCESS_CHANNEL = 'gatehouse_access';
/** Payload meaning "drop everything": role permission changes touch an unknown set of users. */
export const EVERYONE = '*';

/** What the hot path needs to authorize a request, held in memory per user. */
export interface UserAccess {
  user: User;
  roles: ReadonlySet<string>;
  permissions: ReadonlySet<string>;
  liveSessions: ReadonlySet<string>;
  /** When this entry was read from the database (ms since epoch). */
  loadedAt: number;
}

/**
 * In-process cache of each user's authorization state, so an authenticated request costs no
 * database query. Writers call `changed()`: it drops the local entry at once and NOTIFYs the other
 * instances, which drop theirs when the notification arrives. The TTL is only a safety net for a
 * lost notification; a lost LISTEN connection drops the whole cache.
 */
export class AccessCache {
  private readonly entries = new Map<string, UserAccess>();
  private readonly loading = new Map<string, Promise<UserAccess | undefined>>();
  /** Bumped on every invalidation, so a load that raced one is not cached. */
  private generation = 0;
  private stopListening?: () => Promise<void>;

  constructor(
    private readonly database: Database,
    private readonly options: { ttlMs: number; maxEntries?: number },
  ) {}

  async start(): Promise<void> {
    this.stopListening = await this.database.listen(
      ACCESS_CHANNEL,
      (payload) => this.invalidateLocal(payload),
      () => this.invalidateLocal(EVERYONE),
    );
  }

  async stop(): Promise<void> {
    await this.stopListening?.();
    this.stopListening = undefined;
    this.entries.clear();
  }

  /** The user's current access, from memory when fresh. Undefined when the user no longer exists. */
  async get(userId: string, notOlderThanMs = 0): Promise<UserAccess | undefined> {
    const cached = this.entries.get(userId);
    const now = Date.now();
    if (cached && now - cached.loadedAt < this.options.ttlMs && cached.loadedAt >= notOlderThanMs) return cached;
    let pending = this.loading.get(userId);
    if (!pending) {
      pending = this.load(userId).finally(() => this.loading.delete(userId));
      this.loading.set(userId, pending);
    }
    return pending;
  }

  /** Call after committing any change to a user's access (or EVERYONE's). */
  async changed(userId: string): Promise<void> {
    this.invalidateLocal(userId);
    await this.database.db.execute(sql`select pg_notify(${ACCESS_CHANNEL}, ${userId})`);
  }

  invalidateLocal(userId: string): void {
    this.generation++;
    if (userId === EVERYONE) this.entries.clear();
    else this.entries.delete(userId);
  }

  get size(): number {
    return this.entries.size;
  }

  private async load(userId: string): Promise<UserAccess | undefined> {
    const generation = this.generation;
    const loadedAt = Date.now();
    const found = await loadAuthorizationState(this.database.db, userId);
    if (!found) return undefined;
    const entry: UserAccess = {
      user: found.user,
      roles: new Set(found.roles),
      permissions: new Set(found.permissions),
      liveSessions: new Set(found.liveSessionIds),
      loadedAt,
    };
    if (generation === this.generation) {
      const max = this.options.maxEntries ?? 50_000;
      // Maps iterate in insertion order: dropping the first key drops the oldest entry.
      if (this.entries.size >= max) this.entries.delete(this.entries.keys().next().value!);
      this.entries.set(userId, entry);
    }
    return entry;
  }
}
