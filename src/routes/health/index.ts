import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { sql } from 'drizzle-orm';
import { databaseUnavailable } from '../../db/errors.js';
import { deadline } from '../../lib/deadline.js';
import { problemResponses } from '../../schemas/problem.js';
import { jsonResponse } from '../../schemas/responses.js';
import type { Gatehouse } from '../../services.js';

const Status = Type.Object({ status: Type.Literal('ok') });

/**
 * How long /ready waits for the database: under a second, whatever DATABASE_QUERY_TIMEOUT, so that
 * a load balancer's probe (often 1 s) sees a 503 rather than a timeout of its own.
 */
export const READY_TIMEOUT_MS = 800;

export const healthRoutes: FastifyPluginAsyncTypebox<{ gatehouse: Gatehouse }> = async (app, { gatehouse }) => {
  app.get(
    '/health',
    {
      config: { public: true },
      schema: {
        operationId: 'checkLiveness',
        summary: 'Liveness: the process answers',
        tags: ['health'],
        response: { 200: jsonResponse(Status, 'Alive', { status: 'ok' }), ...problemResponses(500) },
      },
    },
    async () => ({ status: 'ok' as const }),
  );

  app.get(
    '/ready',
    {
      config: { public: true },
      schema: {
        operationId: 'checkReadiness',
        summary: 'Readiness: the database answers',
        tags: ['health'],
        response: { 200: jsonResponse(Status, 'Ready to serve', { status: 'ok' }), ...problemResponses(503) },
      },
    },
    async () => {
      try {
        await deadline(gatehouse.db.execute(sql`select 1`), READY_TIMEOUT_MS, () => new Error('no answer'));
      } catch {
        throw databaseUnavailable('The database does not answer.');
      }
      return { status: 'ok' as const };
    },
  );
};
