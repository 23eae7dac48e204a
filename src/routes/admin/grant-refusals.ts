import type { FastifyInstance } from 'fastify';
import { ProblemError } from '../../errors.js';
import type { Gatehouse } from '../../services.js';
import { auditContext } from '../request-context.js';

/**
 * Every delegation refusal (someone trying to hand out or act on more than they hold) lands in the
 * audit log: the domain refuses inside its transaction, which rolls back, so the record is written
 * here, once for every admin route.
 */
export function auditGrantRefusals(app: FastifyInstance, gatehouse: Gatehouse): void {
  app.addHook('onError', async (request, _reply, error) => {
    if (!(error instanceof ProblemError) || error.code !== 'exceeds_own_permissions') return;
    const params = request.params as { id?: string; name?: string };
    gatehouse.audit({
      type: 'grant_refused',
      ...auditContext(request),
      userId: params.id ?? null,
      detail: { route: `${request.method} ${request.routeOptions.url}`, ...(params.name ? { name: params.name } : {}), ...error.extra.data },
    });
  });
}
