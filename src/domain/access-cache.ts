import { randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { LruMap } from 'toad-cache';
import type { Database } from '../db/client.js';
import type { UserAccess } from '../types.js';
import { isUuid } from '../lib/uuid.js';
import { loadAuthorizationState, loadAuthorizationStates, type AuthorizationState } from './users.js';

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

/** An entry, and whether a request was served from it since it was read (only those are renewed). */
interface Cached {
  access: UserAccess;
  used: boolean;
}

/** Users renewed per query: small enough that reading the answer holds up requests for a moment only. */
const RENEWAL_BATCH = 100;
/** Distinct role (and permission) sets shared between entries, at most: most users hold one of a few. */
const SHARED_SETS_MAX = 1000;

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
 *
 * Entries in use are read again before their TTL runs out, in the background and a hundred users a
 * query (renew()): with many users, reloading each on the request that found it expired cost every
 * one of them a database round trip on their request path every TTL, and most of the server's time.
 * Entries nobody used since they were read are left to expire, and are dropped.
 */
export class AccessCache {
  /** Least recently used first out: with more users than AUTHZ_CACHE_MAX, the active ones stay. */
  private readonly entries: LruMap<Cached>;
  private readonly loading = new Map<string, Promise<UserAccess | undefined>>();
  /** Bumped on every invalidation, so a load that raced one is not cached. */
  private generation = 0;
  private stopListening?: () => Promise<void>;
  /** Whether notices reach this instance: only then may an entry be served or kept. */
  private listening = false;
  private readonly origin = randomUUID();
  private readonly invalidationListeners: ((userId: string) => void)[] = [];
  private readonly sharedSets = new Map<string, ReadonlySet<string>>();
  private renewal?: NodeJS.Timeout;
  private renewing?: Promise<void>;

  constructor(
    private readonly database: Database,
    private readonly options: {
      ttlMs: number;
      maxEntries?: number;
      log?: AccessCacheLog;
      /** How often renew() runs: a third of the TTL, so an entry read just after one run is renewed at the second, before it expires. */
      renewEveryMs?: number;
    },
  ) {
    this.entries = new LruMap<Cached>(options.maxEntries ?? 50_000);
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
    // (A TTL under a second is a cache that barely keeps anything: nothing worth renewing.)
    if (this.options.ttlMs >= 1000) {
      this.renewal = setInterval(() => {
        this.renew().catch((err: unknown) => this.options.log?.warn(`renewing the authorization cache failed: ${String(err)}`));
      }, this.options.renewEveryMs ?? this.options.ttlMs / 3).unref();
    }
  }

  async stop(): Promise<void> {
    this.listening = false;
    clearInterval(this.renewal);
    await this.renewing;
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
    if (!cached) return undefined;
    const { access } = cached;
    if (Date.now() - access.loadedAt >= this.options.ttlMs || access.loadedAt < notOlderThanMs) return undefined;
    cached.used = true;
    return access;
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
    const entry = this.entryOf(state, ticket.loadedAt);
    if (this.mayKeep(ticket)) {
      this.entries.set(userId, { access: entry, used: false });
    } else {
      this.entries.delete(userId);
    }
    return entry;
  }

  /**
   * Reads again, in batches, the entries used since they were read and a third of their TTL old,
   * and drops the expired ones. A user's new state is kept only if their entry is still the one
   * collected: a notice or a newer read replaced or dropped it meanwhile, and this read may be older
   * than that. An unchanged state keeps its entry, with the new read time (and the answers made from it).
   */
  renew(): Promise<void> {
    this.renewing ??= this.renewDue().finally(() => (this.renewing = undefined));
    return this.renewing;
  }

  private async renewDue(): Promise<void> {
    if (!this.listening) return;
    const now = Date.now();
    const due: [string, Cached][] = [];
    const expired: string[] = [];
    for (const [userId, { value: cached }] of this.entries.items) {
      const age = now - cached.access.loadedAt;
      if (age >= this.options.ttlMs) expired.push(userId);
      else if (cached.used && age >= this.options.ttlMs / 3) due.push([userId, cached]);
    }
    this.entries.deleteMany(expired);
    for (let from = 0; from < due.length && this.listening; from += RENEWAL_BATCH) {
      const batch = due.slice(from, from + RENEWAL_BATCH);
      const { loadedAt } = this.ticket();
      let states: Map<string, AuthorizationState>;
      try {
        states = await loadAuthorizationStates(this.database.db, batch.map(([userId]) => userId));
      } catch (err) {
        // The entries expire as they would have: each request then reads its own.
        this.options.log?.warn(`renewing the authorization cache failed: ${(err as Error).message}`);
        return;
      }
      for (const [userId, cached] of batch) {
        if (!this.listening || this.entries.items.get(userId)?.value !== cached) continue;
        const state = states.get(userId);
        if (!state) this.entries.delete(userId);
        else if (sameState(cached.access, state)) {
          cached.access.loadedAt = loadedAt;
          cached.used = false;
        } else this.entries.set(userId, { access: this.entryOf(state, loadedAt), used: false });
      }
    }
  }

  private entryOf(state: AuthorizationState, loadedAt: number): UserAccess {
    // Never kept in memory: the hot path has no use for it, and a host sees the entry as principal.access.
    const { passwordHash: _, ...user } = state.user;
    return {
      user,
      roles: this.shared(state.roles),
      permissions: this.shared(state.permissions),
      liveSessions: new Set(state.liveSessionIds),
      mfaEnrolled: state.mfaEnrolled,
      hasPasskey: state.hasPasskey,
      loadedAt,
    };
  }

  /** One read-only Set for every user with the same names (sorted by the query): memory for 50,000 users. */
  private shared(names: string[]): ReadonlySet<string> {
    const key = JSON.stringify(names);
    let set = this.sharedSets.get(key);
    if (!set) {
      set = new Set(names);
      if (this.sharedSets.size < SHARED_SETS_MAX) this.sharedSets.set(key, set);
    }
    return set;
  }

  private async load(userId: string): Promise<UserAccess | undefined> {
    const ticket = this.ticket();
    const found = await loadAuthorizationState(this.database.db, userId);
    return found && this.prime(userId, found, ticket);
  }
}

/** Whether a state read again says what the entry says: then the entry can stay, and what was made from it. */
function sameState(access: UserAccess, state: AuthorizationState): boolean {
  const { passwordHash: _, ...user } = state.user;
  const cachedUser = access.user as unknown as Record<string, unknown>;
  for (const [key, value] of Object.entries(user)) {
    const held = cachedUser[key];
    if (value instanceof Date ? !(held instanceof Date) || held.getTime() !== value.getTime() : held !== value) return false;
  }
  return (
    access.mfaEnrolled === state.mfaEnrolled &&
    access.hasPasskey === state.hasPasskey &&
    sameNames(access.roles, state.roles) &&
    sameNames(access.permissions, state.permissions) &&
    sameNames(access.liveSessions, state.liveSessionIds)
  );
}

const sameNames = (held: ReadonlySet<string>, read: string[]) => held.size === read.length && read.every((name) => held.has(name));
