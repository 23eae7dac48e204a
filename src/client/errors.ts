import type { components } from './schema.js';

export type Problem = components['schemas']['Problem'];
export type ProblemCode = Problem['code'];
export type FieldError = NonNullable<Problem['errors']>[number];

/**
 * A request Gatehouse refused, built from its problem+json answer (RFC 9457). Branch on `code`:
 * it is stable, while `title` and `detail` are prose for people and may change.
 */
export class GatehouseError extends Error {
  override name = 'GatehouseError';
  readonly status: number;
  readonly code: ProblemCode;
  readonly title: string;
  readonly detail: string;
  /** On `validation_failed`: one entry per offending field. Empty otherwise. */
  readonly errors: FieldError[];
  /** The problem+json body as received. */
  readonly problem: Problem;

  constructor(problem: Problem) {
    super(problem.detail);
    this.problem = problem;
    this.status = problem.status;
    this.code = problem.code;
    this.title = problem.title;
    this.detail = problem.detail;
    this.errors = problem.errors ?? [];
  }
}

export function isGatehouseError(error: unknown, code?: ProblemCode): error is GatehouseError {
  return error instanceof GatehouseError && (code === undefined || error.code === code);
}

function isProblem(body: unknown): body is Problem {
  const { code, status, detail } = (body ?? {}) as Record<string, unknown>;
  return typeof code === 'string' && typeof status === 'number' && typeof detail === 'string';
}

/**
 * The error an answer carries: its problem+json body, or for anything else (a proxy's HTML page,
 * an empty 502) the neutral `http_error` with the answer's status.
 */
export function errorFrom(response: Response, body: unknown): GatehouseError {
  if (isProblem(body)) return new GatehouseError(body);
  const title = response.statusText || 'HTTP error';
  return new GatehouseError({
    type: 'about:blank',
    title,
    status: response.status,
    detail: `${response.status} ${title} without a problem+json body`,
    code: 'http_error',
  });
}

/** The error of a refused answer, read from a copy so the body stays readable for the caller. */
export async function errorOf(response: Response): Promise<GatehouseError> {
  const body: unknown = await response
    .clone()
    .json()
    .catch(() => undefined);
  return errorFrom(response, body);
}

/** An error as the answer it came from, for the raw client, whose callers read `{ error }`. */
export function problemResponse(error: GatehouseError): Response {
  return new Response(JSON.stringify(error.problem), {
    status: error.status,
    headers: { 'content-type': 'application/problem+json' },
  });
}
