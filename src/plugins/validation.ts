import type { FastifyInstance, FastifySchema } from 'fastify';
import { Ajv, type ErrorObject, type Options, type ValidateFunction } from 'ajv';
import addFormats from 'ajv-formats';
import { parseInstant } from '../lib/instant.js';
import { isUuid } from '../lib/uuid.js';
import { CompiledByText, jsonText } from './compiled-schemas.js';

type Check = ((data: unknown) => boolean) & { errors: ErrorObject[] | null | undefined };

/** Validators kept across builds (see compiled-schemas.ts), under `["body" | "coerced", schema]`. */
const validators = new CompiledByText<Check>();

/**
 * A schema that names itself or points at another (`$id`, `$ref`, ...) compiles differently
 * depending on what else its Ajv instance holds, and is compiled afresh each time. A key of that
 * name appears in the JSON text exactly so (a string holding it would have its quotes escaped).
 */
const NAMING_OR_REFERRING = /"\$(?:id|ref|anchor|dynamicRef|dynamicAnchor|recursiveRef|recursiveAnchor)":/;

/**
 * JSON bodies are validated as sent: a number where a string belongs is a 400, not silently
 * turned into "123". Querystrings and path params arrive as strings and are coerced to the types
 * their schemas declare. All errors are reported, so a client can fix every field at once.
 */
export function useStrictBodyValidation(app: FastifyInstance): void {
  // Made at the first schema not already compiled by an earlier build.
  let ajvs: Record<'body' | 'coerced', Ajv> | undefined;
  const compile = (schema: unknown, kind: 'body' | 'coerced'): Check => {
    const base: Options = { allErrors: true, useDefaults: true, removeAdditional: false, strict: false };
    ajvs ??= {
      body: withStorableFormats(new Ajv({ ...base, coerceTypes: false })),
      coerced: withStorableFormats(new Ajv({ ...base, coerceTypes: 'array' })),
    };
    return storableAndValid(ajvs[kind].compile(schema as object));
  };
  app.setValidatorCompiler<FastifySchema>(({ schema, httpPart }) => {
    const kind = httpPart === 'body' ? 'body' : 'coerced';
    const text = jsonText(schema);
    if (text === undefined || NAMING_OR_REFERRING.test(text)) return compile(schema, kind);
    return validators.get(`[${JSON.stringify(kind)},${text}]`, (parsed) => {
      const [parsedKind, parsedSchema] = parsed as [typeof kind, unknown];
      return compile(parsedSchema, parsedKind);
    });
  });
}

/** Fastify reads the errors off the function it was given, so they are copied onto the wrapper. */
function storableAndValid(validate: ValidateFunction): Check {
  const check: Check = Object.assign(
    (data: unknown): boolean => {
      const unstorable = findUnstorable(data, '');
      if (unstorable !== undefined) {
        check.errors = [{ instancePath: unstorable.path, schemaPath: '#', keyword: 'unicode', params: {}, message: unstorable.message }];
        return false;
      }
      const valid = validate(data) as boolean;
      check.errors = validate.errors;
      return valid;
    },
    { errors: null as ErrorObject[] | null | undefined },
  );
  return check;
}

/**
 * ajv-formats' `uuid` also takes `urn:uuid:...` and its `date-time` takes year 0, leap seconds and
 * offsets that push an instant past year 9999: PostgreSQL refuses all of them, which made a 500 of
 * a well-formed request. These two accept only what a uuid column and a timestamptz (through a JS
 * Date) can hold, so every route's ids and dates answer 400 at the door instead.
 */
function withStorableFormats(ajv: Ajv): Ajv {
  addFormats.default(ajv);
  ajv.addFormat('uuid', { type: 'string', validate: isUuid });
  ajv.addFormat('date-time', { type: 'string', validate: (text: string) => parseInstant(text) !== undefined });
  return ajv;
}

/** With the u flag, a surrogate half matches only where it is not part of a pair. */
const LONE_SURROGATE = /[\ud800-\udfff]/u;

/**
 * PostgreSQL text cannot hold U+0000, and jsonb refuses the "\ud800" that JSON.stringify writes for
 * a lone surrogate half (the audit log's detail): refuse both at the door instead of failing in the
 * database.
 */
function findUnstorable(value: unknown, path: string, depth = 0): { path: string; message: string } | undefined {
  if (typeof value === 'string') {
    if (value.includes('\u0000')) return { path, message: 'must not contain NUL characters' };
    return LONE_SURROGATE.test(value) ? { path, message: 'must be well-formed Unicode' } : undefined;
  }
  if (typeof value !== 'object' || value === null || depth > 32) return undefined;
  for (const [key, item] of Object.entries(value)) {
    const found = findUnstorable(item, `${path}/${key}`, depth + 1);
    if (found !== undefined) return found;
  }
  return undefined;
}
