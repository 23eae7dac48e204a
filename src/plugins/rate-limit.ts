import rateLimit from '@fastify/rate-limit';
import type { FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import type { Config } from '../config.js';
import { problem } from '../errors.js';
import { clientIp } from './client-ip.js';

/**
 * Per-client-IP limits for the routes that invite abuse (login, register, forgot, resend,
 * refresh, and password and email change, which check a password at login's rate), each
 * declaring its own `config.rateLimit`. In memory for one instance; in Redis, shared
 * by every instance, when REDIS_URL is set. Which IP is the client's follows TRUST_PROXY.
 */
export async function useRateLimits(app: FastifyInstance, config: Config): Promise<void> {
  const redis = config.redisUrl
    ? new Redis(config.redisUrl, { connectTimeout: 500, maxRetriesPerRequest: 1, lazyConnect: false })
    : undefined;
  if (redis) app.addHook('onClose', async () => void (await redis.quit().catch(() => redis.disconnect())));
  await app.register(rateLimit, {
    global: false,
    keyGenerator: (request) => clientIp(request) ?? '',
    ...(redis ? { redis, nameSpace: 'gatehouse-rl-' } : {}),
    // A Redis outage must not turn every login into a 500: the limit is skipped and logged.
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
