import type { preValidationHookHandler } from 'fastify';
import { normalizeEmail } from '../domain/email.js';

/**
 * Emails are trimmed and lower-cased before the schema checks them, so " Ann@Example.COM "
 * registers as ann@example.com instead of failing the format check.
 */
export function normalizeEmailFields(...fields: string[]): preValidationHookHandler {
  return async (request) => {
    const body = request.body as Record<string, unknown> | null | undefined;
    if (!body || typeof body !== 'object') return;
    for (const field of fields) {
      const value = body[field];
      if (typeof value === 'string') body[field] = normalizeEmail(value);
    }
  };
}

/**
 * For routes whose body is optional (cookie-mode refresh and logout send none): an absent body is
 * checked as `{}`, so the client needs neither a body nor a content type.
 */
export const absentBodyAsEmpty: preValidationHookHandler = async (request) => {
  if (request.body === undefined || request.body === null) request.body = {};
};
