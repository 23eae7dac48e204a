import { SerializerSelector, type SerializerFactory } from '@fastify/fast-json-stringify-compiler';

/**
 * Fastify compiles a serializer (fast-json-stringify) for every response schema of every route, and
 * a validator (Ajv) for every request schema, each time an app is built: that was most of the
 * time a build took. Many of them are the same schema: every problem+json response of every route
 * is one `{ $ref: 'Problem' }`, a HEAD route has its GET route's, and a process that builds the
 * app again (the tests, several instances) compiles the same schemas again. Route schemas are
 * written inside the route plugins, so they are new objects each build: they are recognised by
 * their JSON text instead.
 *
 * A compiled function is kept under the JSON text of all it was compiled from, and is compiled from
 * that text (parsed again), never from the objects handed in: so it depends on its key and nothing
 * else, and whoever asks with the same key may have it. That equals compiling the objects
 * themselves only when their JSON text says all there is in them, so `jsonText` answers only for
 * plain JSON data; anything else is compiled as usual and not kept.
 */

/**
 * The JSON text of `value` when it holds plain JSON data only: plain objects and arrays whose own
 * string-keyed properties are enumerable values (no getters, no holes), strings, finite numbers,
 * booleans, null. Undefined otherwise: a function, a Date, a class instance, an undefined property,
 * NaN, -0 or a cycle would be lost or changed by JSON.stringify. Symbol keys (TypeBox's `Kind`) are
 * left out: neither fast-json-stringify nor Ajv reads them.
 */
export function jsonText(value: unknown): string | undefined {
  return isPlainJson(value, new Set()) ? JSON.stringify(value) : undefined;
}

function isPlainJson(value: unknown, ancestors: Set<object>): boolean {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return true;
    case 'number':
      return Number.isFinite(value) && !Object.is(value, -0);
    case 'object':
      break;
    default:
      return false;
  }
  if (value === null) return true;
  const prototype = Object.getPrototypeOf(value);
  const isArray = Array.isArray(value);
  if (isArray ? prototype !== Array.prototype : prototype !== Object.prototype && prototype !== null) return false;
  if (ancestors.has(value)) return false;
  ancestors.add(value);
  const names = Object.getOwnPropertyNames(value);
  if (isArray) {
    // Every index, and no own name but the indexes and `length` (a hole would be written as null).
    const { length } = value as unknown[];
    if (names.length !== length + 1) return false;
    for (let index = 0; index < length; index++) {
      if (!isPlainProperty(value, String(index), ancestors)) return false;
    }
  } else {
    for (const name of names) if (!isPlainProperty(value, name, ancestors)) return false;
  }
  ancestors.delete(value);
  return true;
}

function isPlainProperty(owner: object, name: string, ancestors: Set<object>): boolean {
  const property = Object.getOwnPropertyDescriptor(owner, name);
  return property !== undefined && 'value' in property && property.enumerable === true && isPlainJson(property.value, ancestors);
}

/**
 * Compiled functions, each kept under the JSON text of everything its compilation reads (see
 * above) and compiled from that text parsed again. Never emptied: its keys are the schemas of the
 * code, so a process holds one entry per distinct schema (and configuration that shapes one).
 */
export class CompiledByText<F> {
  readonly #kept = new Map<string, F>();

  get(text: string, compile: (parsed: unknown) => F): F {
    let compiled = this.#kept.get(text);
    if (compiled === undefined) {
      compiled = compile(JSON.parse(text));
      this.#kept.set(text, compiled);
    }
    return compiled;
  }
}

type Serializer = (doc: unknown) => string;
type SerializerOptions = Parameters<SerializerFactory>[1];
/**
 * By the JSON text of a scope's shared schemas and serializer options, then of the route schema:
 * one long text looked up per scope, a short one per route.
 */
const serializers = new Map<string, CompiledByText<Serializer>>();

/**
 * Fastify's own serializer factory (@fastify/fast-json-stringify-compiler, what Fastify uses when
 * given none), with each serializer kept under the JSON text of the scope's shared schemas
 * (`app.addSchema`: what a `$ref` resolves against), the serializer options and the route's
 * schema; the factory reads nothing else (not the method, url, status or content type). A new
 * instance of the stock factory compiles each miss: the stock one also drops, for the scope's
 * later routes, the shared schema whose `$id` a route schema has, so its output could depend on
 * which routes came before; a new one for each compilation cannot.
 */
export const keptSerializerFactory: SerializerFactory = (externalSchemas, serializerOptions) => {
  const stock = (route: Parameters<ReturnType<SerializerFactory>>[0]) => SerializerSelector()(externalSchemas, serializerOptions)(route);
  const context = jsonText([externalSchemas, serializerOptions ?? {}]);
  if (context === undefined) return stock;
  let kept = serializers.get(context);
  if (!kept) serializers.set(context, (kept = new CompiledByText()));
  return (route) => {
    const schemaText = jsonText(route.schema);
    if (schemaText === undefined) return stock(route);
    return kept.get(schemaText, (schema) => {
      const [externals, options] = JSON.parse(context) as [unknown, SerializerOptions];
      return SerializerSelector()(externals, options)({ ...route, schema });
    });
  };
};
