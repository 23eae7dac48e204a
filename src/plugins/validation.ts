import type { FastifyInstance, FastifySchema } from 'fastify';
import { Ajv, type Options } from 'ajv';
import addFormats from 'ajv-formats';

/**
 * JSON bodies are validated as sent: a number where a string belongs is a 400, not silently
 * turned into "123". Querystrings and path params arrive as strings and are coerced to the types
 * their schemas declare. All errors are reported, so a client can fix every field at once.
 */
export function useStrictBodyValidation(app: FastifyInstance): void {
  const base: Options = { allErrors: true, useDefaults: true, removeAdditional: false, strict: false };
  const bodies = addFormats.default(new Ajv({ ...base, coerceTypes: false }));
  const strings = addFormats.default(new Ajv({ ...base, coerceTypes: 'array' }));
  app.setValidatorCompiler<FastifySchema>(({ schema, httpPart }) =>
    httpPart === 'body' ? bodies.compile(schema as object) : strings.compile(schema as object),
  );
}
