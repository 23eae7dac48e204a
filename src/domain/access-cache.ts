import { randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { LruMap } from 'toad-cache';
import type { Database } from '../db/client.js';
import type { UserAccess } from '../types.js';
import { isUuid } from '../lib/uuid.js';
import { loadAuthorizationState, type AuthorizationState } from './users.js';

export const ACCESS_CHANNEL = 'gatehouse_access';
/** Payload meaning "drop everything": role permission changes touch an unknown set of users. */
export const EVERYONE = '*';
/** Notices are `<user id or *>` or `<user id or *> <origin>`: plain ones come from outside Gatehouse (psql). */
const ORIGIN_SEPARATOR = ' ';

// Declared in types.ts: Principal shows it to host apps.
export type { UserAccess };

/** Where the cache says that it stops or starts trusting itself again (pino's logger fits). */
export interface AccessCacheLog {
  warn(message: string): void;
  info(message: string): void;
}

/** When and at which invalidation count a state was read: see AccessCache.ticket(). */
export interface CacheTicket {
  generation: number;
  loadedAt: number;
}

/**
 * In-process cache of each user's authorization state, so an authenticated request costs no
 * database query. Writers call `changed()`: it drops the local entry at once and NOTIFYs the other
 * instances, which drop theirs when the notification arrives. The TTL is only a safety net for a
 * lost notification. While the LISTEN connection is down (a database restart, a failover) notices
 * are lost, so the cache is not trusted: every request reads its state from the database and nothing
 * is kept until LISTEN is back, when the cache starts again empty. Each notice names the instance
 * it came from, which ignores its own: it has already acted, and the echo, arriving a moment later,
 * would only drop the entry a login or refresh had just filled.
 */
export class AccessCache {
  /** Least recently used first out: with more users than AUTHZ_CACHE_MAX, the active ones stay. */
  private readonly entries: LruMap<UserAccess>;
  private readonly loading = new Map<string, Promise<UserAccess | undefined>>();
  /** Bumped on every invalidation, so a load that raced one is not cached. */
  private generation = 0;
  private stopListening?: () => Promise<void>;
  /** Whether notices reach this instance: only then may an entry be served or kept. */
  private listening = false;
  private readonly origin = randomUUID();
  private readonly invalidationListeners: ((userId: string) => void)[] = [];

  constructor(
    private readonly database: Database,
    private readonly options: { ttlMs: number; maxEntries?: number; log?: AccessCacheLog },
  ) {
    this.entries = new LruMap<UserAccess>(options.maxEntries ?? 50_000);
  }

  async start(): Promise<void> {
    this.stopListening = await this.database.listen(
      ACCESS_CHANNEL,
      (payload) => {
        const [userId = '', origin] = payload.split(ORIGIN_SEPARATOR);
        // Other notices share the channel (signing keys): only a user id or EVERYONE concerns the cache,
        // and counting another as an invalidation would keep a state loaded meanwhile out of it.
        if (origin !== this.origin && (userId === EVERYONE || isUuid(userId))) this.invalidateLocal(userId);
      },
      {
        onDown: () => {
          this.listening = false;
          this.invalidateLocal(EVERYONE);
          this.options.log?.warn('LISTEN connection to the database lost: every request reads its rights from the database until it is back');
        },
        // Bumping the generation also keeps out the states read while distrusted and still in flight.
        onUp: () => {
          this.invalidateLocal(EVERYONE);
          this.listening = true;
          this.options.log?.info('LISTEN connection to the database back: the authorization cache is in use again');
        },
      },
    );
    this.listening = true;
  }

  async stop(): Promise<void> {
    this.listening = false;
    await this.stopListening?.();
    this.stopListening = undefined;
    this.entries.clear();
  }

  /** Whether entries are served and kept: false before start(), after stop() and while LISTEN is down. */
  get trusted(): boolean {
    return this.listening;
  }

  /** The user's entry if it is in memory and fresh; undefined means only the database can tell. */
  peek(userId: string, notOlderThanMs = 0): UserAccess | undefined {
    if (!this.listening) return undefined;
    const cached = this.entries.get(userId);
    return cached && Date.now() - cached.loadedAt < this.options.ttlMs && cached.loadedAt >= notOlderThanMs ? cached : undefined;
  }

  /** The user's current access, from memory when fresh. Undefined when the user no longer exists. */
  async get(userId: string, notOlderThanMs = 0): Promise<UserAccess | undefined> {
    const cached = this.peek(userId, notOlderThanMs);
    if (cached) return cached;
    // Untrusted: a read of this request's own, as a load already in flight may predate a change.
    if (!this.listening) return this.load(userId);
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
    await this.database.db.execute(sql`select pg_notify(${ACCESS_CHANNEL}, ${this.notice(userId)})`);
  }

  /** The NOTIFY payload telling the other instances that `userId` changed, for a statement that sends it itself. */
  notice(userId: string): string {
    return `${userId}${ORIGIN_SEPARATOR}${this.origin}`;
  }

  invalidateLocal(userId: string): void {
    this.generation++;
    if (userId === EVERYONE) this.entries.clear();
    else this.entries.delete(userId);
    for (const listener of this.invalidationListeners) listener(userId);
  }

  /** Calls `listener` with each user id (or EVERYONE) dropped, whichever instance made the change: for caches derived from a user's rights (API keys). */
  onInvalidate(listener: (userId: string) => void): void {
    this.invalidationListeners.push(listener);
  }

  /** Whether a state read under `ticket` may be kept: nothing was invalidated since, and notices reach this instance. */
  mayKeep(ticket: CacheTicket): boolean {
    return ticket.generation === this.generation && this.listening;
  }

  /** How long an entry is served without a notice, in ms: derived caches use the same safety net. */
  get ttlMs(): number {
    return this.options.ttlMs;
  }

  get size(): number {
    return this.entries.size;
  }

  /** Taken before a state is read from the database, so that prime() can tell if it raced a change. */
  ticket(): CacheTicket {
    return { generation: this.generation, loadedAt: Date.now() };
  }

  /**
   * Keeps a state read from the database, replacing the user's entry. If an invalidation came in
   * since the ticket was taken, the state is returned for this request only and the user's entry is
   * dropped (it may be as old). Nothing is kept while the cache is not trusted. Logins and refreshes
   * read the state in their own statement and prime the cache with it, saving the load that would follow.
   */
  prime(userId: string, state: AuthorizationState, ticket: CacheTicket): UserAccess {
    const entry: UserAccess = {
      user: state.user,
      roles: new Set(state.roles),
      permissions: new Set(state.permissions),
      liveSessions: new Set(state.liveSessionIds),
      mfaEnrolled: state.mfaEnrolled,
      hasPasskey: state.hasPasskey,
      loadedAt: ticket.loadedAt,
    };
    if (this.mayKeep(ticket)) {
      this.entries.set(userId, entry);
    } else {
      this.entries.delete(userId);
    }
    return entry;
  }

  private async load(userId: string): Promise<UserAccess | undefined> {
    const ticket = this.ticket();
    const found = await loadAuthorizationState(this.database.db, userId);
    return found && this.prime(userId, found, ticket);
  }
}
