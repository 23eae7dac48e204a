import { Type, type TSchema } from '@sinclair/typebox';
import { PROBLEMS, type ProblemCode } from '../errors.js';

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

/** RFC 9457 problem details, plus Gatehouse's stable machine-readable `code`. */
export const ProblemSchema = Type.Object(
  {
    type: Type.String({ description: 'A URI naming the problem type', examples: ['https://gatehouse.dev/problems/email_taken'] }),
    title: Type.String(),
    status: Type.Integer(),
    detail: Type.String(),
    code: Type.Unsafe<ProblemCode>({ type: 'string', enum: Object.keys(PROBLEMS) }),
    instance: Type.Optional(Type.String()),
    errors: Type.Optional(
      Type.Array(Type.Object({ path: Type.String(), message: Type.String() }), {
        description: 'Present on validation_failed: one entry per offending field',
      }),
    ),
    maxAge: Type.Optional(Type.Integer({ description: 'Present on reauthentication_required: how recent, in seconds, a proved factor must be' })),
    methods: Type.Optional(
      Type.Array(Type.String(), { description: 'Present on reauthentication_required: what POST /auth/reauthenticate accepts for this user' }),
    ),
  },
  { $id: 'Problem', title: 'Problem' },
);

const DESCRIPTIONS: Record<number, string> = {
  400: 'Invalid request',
  401: 'Not authenticated',
  403: 'Not allowed',
  404: 'Not found',
  409: 'Conflict with the current state',
  413: 'Body too large',
  415: 'Body is not JSON',
  429: 'Too many requests',
  500: 'Internal error',
  503: 'Unavailable',
};

type ProblemResponse = { description: string; content: { [PROBLEM_CONTENT_TYPE]: { schema: TSchema } } };

/**
 * The error responses a route can send, declared under the problem+json content type so the
 * OpenAPI document and generated clients know the shape of every error.
 */
export function problemResponses<S extends number>(...statuses: S[]): Record<S, ProblemResponse> {
  const ref = Type.Ref(ProblemSchema);
  return Object.fromEntries(
    statuses.map((status) => [status, { description: DESCRIPTIONS[status] ?? 'Error', content: { [PROBLEM_CONTENT_TYPE]: { schema: ref } } }]),
  ) as Record<S, ProblemResponse>;
}

/** Errors any route may answer: the body checks run before the handler on every route with a body. */
export const BODY_PROBLEMS = [400, 413, 415] as const;
