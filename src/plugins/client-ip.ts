import { isIP } from 'node:net';
import type { FastifyRequest } from 'fastify';
import type { Config } from '../config.js';

/**
 * TRUST_PROXY as Fastify's `trustProxy`. A hop count becomes a function, because Fastify turns a
 * bare number into "trust nothing": N trusts the socket peer and the N-1 addresses nearest to it in
 * X-Forwarded-For, so the client is the address the outermost of N proxies saw.
 */
export function trustProxyOption(trust: Config['trustProxy']): boolean | string[] | ((address: string, hop: number) => boolean) {
  return typeof trust === 'number' ? (_address, hop) => hop < trust : trust;
}

/**
 * The client's address, for sessions, the audit log, rate limits and request logs alike: the one
 * TRUST_PROXY picks out of X-Forwarded-For when it is an IP address, else the socket's peer. A
 * forwarded value is text the client may have written; stored or used as a rate-limit key as it
 * is, it would be an "address" of the client's choosing (a new one for every request).
 */
export function clientIp(request: Pick<FastifyRequest, 'ip' | 'socket'>): string | undefined {
  const forwarded = request.ip;
  if (typeof forwarded === 'string' && isIP(forwarded)) return forwarded;
  return request.socket?.remoteAddress;
}
