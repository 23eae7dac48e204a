import type { FastifyRequest } from 'fastify';
import type { Grantor } from '../domain/delegation.js';
import { unauthorized } from '../errors.js';

/**
 * The caller as the domain's delegation rules see them. Only routes behind an access rule call
 * this, so a principal is always there; without one the answer is a 401, never a system grant.
 */
export function grantorOf(request: FastifyRequest): Grantor {
  if (!request.principal) throw unauthorized('token_missing', 'Send an access token as "Authorization: Bearer <token>".');
  return { userId: request.principal.userId };
}
