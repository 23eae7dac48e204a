import type { FastifyRequest } from 'fastify';
import { clientIp } from '../plugins/client-ip.js';

/** Where a request came from, as sessions and the audit log record it. */
export function requestContext(request: FastifyRequest): { ip: string | null; userAgent: string | null } {
  const userAgent = request.headers['user-agent'];
  return { ip: clientIp(request) ?? null, userAgent: userAgent ? userAgent.slice(0, 512) : null };
}

/** The request's context plus who acted (the authenticated caller, if any), for audit events. */
export function auditContext(request: FastifyRequest): { ip: string | null; userAgent: string | null; actorId: string | null } {
  return { ...requestContext(request), actorId: request.principal?.userId ?? null };
}
