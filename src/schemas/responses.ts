import type { Static, TSchema } from '@sinclair/typebox';

/**
 * A JSON success response in OpenAPI's own shape, so that it carries a description and an example
 * (type-checked against the schema) beside its schema: a bare schema gets neither. Fastify
 * serializes it with `schema` as usual.
 */
export function jsonResponse<T extends TSchema>(schema: T, description: string, example: Static<T>) {
  return { description, content: { 'application/json': { schema, example } } };
}
