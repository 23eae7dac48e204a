import type { FastifyRequest } from 'fastify';
import type { User } from '../../db/schema.js';
import { verifyCurrentPassword } from '../../domain/authentication.js';
import type { Gatehouse } from '../../services.js';
import { auditContext } from '../request-context.js';

/**
 * The password a signed-in user types again before a change to the account: see
 * verifyCurrentPassword in domain/authentication.ts (401 invalid_credentials, 429 login_locked).
 */
export async function assertCurrentPassword(
  gatehouse: Gatehouse,
  request: FastifyRequest,
  input: { user: User; password: string; action: 'password_change' | 'email_change'; wrongDetail: string },
): Promise<void> {
  await verifyCurrentPassword(gatehouse, input.user, input.password, auditContext(request), { action: input.action, wrongDetail: input.wrongDetail });
}
