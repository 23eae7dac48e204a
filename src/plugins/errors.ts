import { STATUS_CODES } from 'node:http';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { databaseErrorCause, databaseUnavailable, isDatabaseUnavailable } from '../db/errors.js';
import { PROBLEMS, ProblemError, problem, type FieldError, type ProblemCode } from '../errors.js';
import { PROBLEM_CONTENT_TYPE, ProblemSchema } from '../schemas/problem.js';

const PROBLEM_TYPE_BASE = 'https://gatehouse.dev/problems/';

/** Fastify's own errors that a client can cause, mapped onto our vocabulary. */
const FASTIFY_ERRORS: Record<string, ProblemCode> = {
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'unsupported_media_type',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'validation_failed',
  FST_ERR_CTP_BODY_TOO_LARGE: 'payload_too_large',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'invalid_json',
  FST_ERR_CTP_INVALID_JSON_BODY: 'invalid_json',
  FST_ERR_CTP_INSTANCE_ALREADY_STARTED: 'internal_error',
  FST_ERR_CTP_EMPTY_TYPE: 'unsupported_media_type',
  FST_ERR_CTP_INVALID_TYPE: 'unsupported_media_type',
  FST_ERR_BAD_URL: 'not_found',
  FST_ERR_MAX_PARAM_LENGTH: 'not_found',
  FST_ERR_ASYNC_CONSTRAINT: 'not_found',
};

const DETAILS: Partial<Record<ProblemCode, string>> = {
  unsupported_media_type: 'Send the body as application/json.',
  payload_too_large: 'The request body is larger than the server accepts.',
  invalid_json: 'The request body is not valid JSON.',
  not_found: 'No such resource.',
  internal_error: 'Something went wrong on our side. It has been logged.',
};

export function toProblem(error: FastifyError | ProblemError): ProblemError {
  if (error instanceof ProblemError) return error;
  if (error.validation) {
    const errors = error.validation.map(toFieldError(error.validationContext));
    const summary = errors.map((e) => `${e.path}: ${e.message}`).join('; ');
    return problem('validation_failed', `The request is invalid: ${summary}`, { errors });
  }
  // Wherever it was thrown (a handler, a transaction, the authentication's cache load), a database
  // out of reach is a 503 the client may retry, not a 500.
  if (isDatabaseUnavailable(error)) return databaseUnavailable();
  const mapped = (error.code && FASTIFY_ERRORS[error.code]) || (error instanceof SyntaxError ? 'invalid_json' : undefined);
  if (mapped) return problem(mapped, DETAILS[mapped] ?? error.message);
  // A client error the host app (or a plugin) chose to throw: its status and words are its own, and
  // naming it after one of ours would mislabel it (a host 403 is not `account_disabled`).
  const status = error.statusCode;
  if (typeof status === 'number' && status >= 400 && status < 500 && Number.isInteger(status)) {
    return problem('http_error', error.message || STATUS_CODES[status] || PROBLEMS.http_error.title, { status });
  }
  // Anything else is ours to fix: its message may hold internals, so it stays in the log.
  return problem('internal_error', DETAILS.internal_error!);
}

function toFieldError(context: string | undefined) {
  return (v: NonNullable<FastifyError['validation']>[number]): FieldError => {
    let path = `${context ?? 'body'}${v.instancePath}`;
    const params = v.params as Record<string, unknown>;
    if (typeof params.missingProperty === 'string') path += `/${params.missingProperty}`;
    if (typeof params.additionalProperty === 'string') {
      return { path: `${path}/${params.additionalProperty}`, message: 'is not allowed' };
    }
    return { path, message: v.message ?? 'is invalid' };
  };
}

export function sendProblem(reply: FastifyReply, request: FastifyRequest, err: ProblemError): FastifyReply {
  if (err.extra.headers) reply.headers(err.extra.headers);
  if (err.extra.retryAfter !== undefined) reply.header('retry-after', String(err.extra.retryAfter));
  // RFC 9110: every 401 names a scheme to authenticate with, even where credentials were a password.
  if (err.status === 401 && !reply.hasHeader('www-authenticate')) reply.header('www-authenticate', 'Bearer');
  return reply
    .code(err.status)
    .type(PROBLEM_CONTENT_TYPE)
    .send({
      type: PROBLEM_TYPE_BASE + err.code,
      title: err.title,
      status: err.status,
      detail: err.detail,
      code: err.code,
      instance: request.url.split('?')[0],
      ...(err.extra.errors ? { errors: err.extra.errors } : {}),
      ...err.extra.extensions,
    });
}

/** Every error leaves as problem+json, through here and nowhere else. */
export const errorsPlugin = fp(
  async (app: FastifyInstance, { notFound = true }: { notFound?: boolean }) => {
    if (!app.getSchema('Problem')) app.addSchema(ProblemSchema);

    app.setErrorHandler((error: FastifyError | ProblemError, request, reply) => {
      const mapped = toProblem(error);
      // An outage fails every request alike: one line each, with the cause, and no stack trace.
      if (mapped.code === 'service_unavailable') request.log.warn({ code: mapped.code, cause: databaseErrorCause(error) }, mapped.title);
      else if (mapped.status >= 500) request.log.error({ err: error }, 'request failed');
      else request.log.info({ code: mapped.code, status: mapped.status }, mapped.title);
      return sendProblem(reply, request, mapped);
    });

    // Only one not-found handler per prefix: the app's root owns it, a mounted scope does not.
    if (notFound) {
      app.setNotFoundHandler((request, reply) =>
        sendProblem(reply, request, problem('not_found', `No route ${request.method} ${request.url.split('?')[0]}.`)),
      );
    }
  },
  { name: 'gatehouse-errors', fastify: '5.x' },
);
