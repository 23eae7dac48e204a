import { createRequire } from 'node:module';
import rateLimit, { type FastifyRateLimitStore } from '@fastify/rate-limit';
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import type { Config, RateLimitSetting } from '../config.js';
import { problem, type ProblemError } from '../errors.js';
import { clientIp } from './client-ip.js';

/** Where the limits count: in memory for one instance, or one Redis shared by every instance. */
export interface RateLimitBackend {
  redis?: { client: Redis; store: new () => FastifyRateLimitStore };
  /** Counts requests per API key, over every route (RATE_LIMIT_API_KEY). */
  apiKeys: ApiKeyLimiter;
  /**
   * Counts, per client IP, the API keys looked up in the database because they were not in memory
   * (RATE_LIMIT_API_KEY_LOOKUPS): made-up keys are never cached, and each would otherwise cost a query.
   */
  apiKeyLookups: ApiKeyLimiter;
  close(): Promise<void>;
}

/** Calls back with a rate_limited problem once a key (an API key's id, or a client IP) has used up its budget, or with nothing. */
export type ApiKeyLimiter = (key: string, done: (refused: ProblemError | undefined) => void) => void;

/** Connects to REDIS_URL, if set, once for the per-IP limits and the per-key one. */
export async function rateLimitBackend(config: Config, log: FastifyBaseLogger): Promise<RateLimitBackend> {
  const redis = config.redisUrl ? await connectRedis(config.redisUrl, log) : undefined;
  const store = redis ? redis.apiKeyStore : new LocalStore(false, false, 50_000);
  return {
    redis,
    apiKeys: apiKeyLimiter(store, config.rateLimits.apiKey, 'with this API key'),
    // In the same store as the per-key counts, under keys of their own.
    apiKeyLookups: apiKeyLimiter(store, config.rateLimits.apiKeyLookups, 'of unknown API keys from this address', 'lookup:'),
    close: async () => {
      if (redis) await redis.client.quit().catch(() => redis.client.disconnect());
    },
  };
}

function apiKeyLimiter(store: FastifyRateLimitStore, setting: RateLimitSetting, what: string, prefix = ''): ApiKeyLimiter {
  const windowMs = setting.windowSeconds * 1000;
  return (key, done) => {
    store.incr(
      prefix + key,
      (error, result) => {
        // As for the per-IP limits: a store out of reach skips the limit (fail open); the store logged it.
        if (error || !result || result.current <= setting.max) return done(undefined);
        done(
          problem('rate_limited', `Too many requests ${what}: at most ${setting.max} per ${setting.windowSeconds} s. Try again later.`, {
            headers: { 'retry-after': String(Math.max(1, Math.ceil(result.ttl / 1000))) },
          }),
        );
      },
      windowMs,
      setting.max,
    );
  };
}

/**
 * Per-client-IP limits for the routes that invite abuse (login, register, forgot, resend,
 * refresh, and password and email change, which check a password at login's rate), each
 * declaring its own `config.rateLimit`. In memory for one instance; in Redis, shared
 * by every instance, when REDIS_URL is set (and not applied while Redis is away: an outage of the
 * limits' store must not become one of login). Which IP is the client's follows TRUST_PROXY.
 */
export async function useRateLimits(app: FastifyInstance, backend: RateLimitBackend): Promise<void> {
  const { redis } = backend;
  await app.register(rateLimit, {
    global: false,
    keyGenerator: (request) => clientIp(request) ?? '',
    ...(redis ? { store: redis.store } : {}),
    // A Redis outage must not turn every login into a 500 or a hang: the limit is skipped
    // (fail open) and the failure logged.
    skipOnError: true,
    errorResponseBuilder: (_request, context) =>
      problem('rate_limited', `Too many requests from this address: at most ${context.max} per ${context.after}. Try again later.`, {
        headers: { 'retry-after': String(Math.max(1, Math.ceil(context.ttl / 1000))) },
      }),
  });
}

/** A route's limit in @fastify/rate-limit's terms. */
export function perIp(setting: { max: number; windowSeconds: number }) {
  return { max: setting.max, timeWindow: setting.windowSeconds * 1000 };
}

/**
 * How long a limited request may wait for Redis before the limit is skipped: well under the 300 ms
 * such a request may take, yet long enough that a busy event loop does not pass for an outage.
 */
const REDIS_COMMAND_TIMEOUT_MS = 200;
/** The longest a start waits for a first answer from Redis before it goes on without the limits. */
const REDIS_START_WAIT_MS = 1500;
/** One warn line per this long while Redis fails, however many requests it fails. */
const REDIS_WARN_INTERVAL_MS = 10_000;

// @fastify/rate-limit's own stores (in memory; Redis with its Lua script), which the package does not export by name.
const LocalStore = createRequire(import.meta.url)('@fastify/rate-limit/store/LocalStore.js') as new (
  continueExceeding: boolean,
  exponentialBackoff: boolean,
  cache: number,
) => FastifyRateLimitStore;
const RedisStore = createRequire(import.meta.url)('@fastify/rate-limit/store/RedisStore.js') as new (
  continueExceeding: boolean,
  exponentialBackoff: boolean,
  redis: Redis,
  nameSpace: string,
) => FastifyRateLimitStore;

/**
 * A Redis client for the limits that never makes a request wait on an outage: no offline queue (a
 * command fails at once while disconnected), a short command timeout (a Redis that accepts and never
 * answers), and reconnects at most half a second apart, so the limits apply again soon after Redis
 * returns. Its failures, whether a request or a reconnect attempt met them, are logged through the
 * app's logger at most once per REDIS_WARN_INTERVAL_MS, never as ioredis' raw stack traces on stderr.
 */
async function connectRedis(url: string, log: FastifyBaseLogger) {
  const client = new Redis(url, {
    connectTimeout: 1000,
    commandTimeout: REDIS_COMMAND_TIMEOUT_MS,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    retryStrategy: (attempt) => Math.min(attempt * 50, 500),
  });
  let lastWarning = -Infinity;
  let unlogged = 0;
  let failing = false;
  const failed = (cause: string) => {
    failing = true;
    unlogged++;
    const now = performance.now();
    if (now - lastWarning < REDIS_WARN_INTERVAL_MS) return;
    log.warn({ cause, failures: unlogged }, 'Redis is unreachable: rate limits are not applied until it answers again');
    lastWarning = now;
    unlogged = 0;
  };
  const answered = () => {
    if (failing) log.info('Redis answers again: rate limits apply');
    failing = false;
  };
  // A command refused while disconnected only says "Stream isn't writeable" (no offline queue): the
  // cause is the connection's last error.
  let disconnectedBecause = 'no connection to Redis yet';
  client.on('error', (error) => {
    disconnectedBecause = error.message;
    failed(error.message);
  });
  client.on('ready', () => {
    disconnectedBecause = 'connection to Redis lost';
    answered();
  });

  class LoggedStore implements FastifyRateLimitStore {
    constructor(private readonly inner: FastifyRateLimitStore) {}
    incr(...[key, callback, timeWindow, max]: Parameters<FastifyRateLimitStore['incr']>): void {
      this.inner.incr(
        key,
        (error, result) => {
          if (error) failed(/^Stream isn't writeable/.test(error.message) ? disconnectedBecause : error.message);
          else answered();
          callback(error, result);
        },
        timeWindow,
        max,
      );
    }
    child(routeOptions: Parameters<FastifyRateLimitStore['child']>[0]): FastifyRateLimitStore {
      return new LoggedStore(this.inner.child(routeOptions));
    }
  }
  // The first attempt is awaited so that the limits apply from the first request; a Redis that is
  // down, silent or still loading its data set holds the start up no longer than REDIS_START_WAIT_MS.
  await new Promise<void>((resolve) => {
    const settle = () => {
      clearTimeout(timer);
      client.off('ready', settle).off('error', settle);
      resolve();
    };
    const timer = setTimeout(settle, REDIS_START_WAIT_MS);
    client.on('ready', settle).on('error', settle);
  });
  const store = class extends LoggedStore {
    constructor() {
      // Key names kept from before, so a rolling upgrade shares its budgets.
      super(new RedisStore(false, false, client, 'gatehouse-rl-'));
    }
  };
  return { client, store, apiKeyStore: new LoggedStore(new RedisStore(false, false, client, 'gatehouse-rl-apikey-')) };
}
