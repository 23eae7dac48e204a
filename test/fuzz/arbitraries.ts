import fc from 'fast-check';

/** The part of JSON Schema that the OpenAPI document uses for request bodies and parameters. */
export interface JsonSchema {
  $ref?: string;
  type?: string | string[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  additionalProperties?: boolean | JsonSchema;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  format?: string;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  items?: JsonSchema;
  minItems?: number;
  maxItems?: number;
  enum?: unknown[];
  const?: unknown;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
}

/** Keywords that only document a schema: they constrain nothing we generate. */
const ANNOTATIONS = new Set(['description', 'title', 'default', 'examples', 'example', '$id', 'readOnly', 'writeOnly', 'deprecated']);
const HANDLED = new Set([
  '$ref', 'type', 'properties', 'required', 'additionalProperties', 'minLength', 'maxLength', 'pattern', 'format',
  'minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum', 'items', 'minItems', 'maxItems', 'enum', 'const', 'anyOf', 'oneOf',
]);

/**
 * A value that only exists once the app runs (a user's id, a live refresh token): generated as a
 * marker, replaced by the current value when the request is sent.
 */
export class Known {
  constructor(readonly name: string) {}
  [fc.toStringMethod](): string {
    return `known(${this.name})`;
  }
}

export const known = (...names: string[]): fc.Arbitrary<Known> => fc.constantFrom(...names.map((n) => new Known(n)));

/**
 * Known values offered next to the schema's own, by property (or path/query parameter) name, or as
 * `format:<format>` for every string of that format that has no hint of its own.
 */
export type Hints = Record<string, fc.Arbitrary<unknown>>;

const codePoints = (s: string) => [...s].length;

/** Addresses ajv's `email` format accepts, and stranger ones fast-check makes up. */
const email = fc.oneof(
  fc.tuple(fc.stringMatching(/^[a-z0-9][a-z0-9._+-]{0,15}$/), fc.constantFrom('example.com', 'example.org', 'mail.test')).map(([l, d]) => `${l}@${d}`),
  fc.emailAddress(),
);

function stringArbitrary(schema: JsonSchema): fc.Arbitrary<string> {
  const min = schema.minLength ?? 0;
  const max = schema.maxLength;
  const fits = (s: string) => codePoints(s) >= min && (max === undefined || codePoints(s) <= max);
  switch (schema.format) {
    case undefined:
      break;
    case 'email':
      return email.filter(fits);
    case 'uuid':
      return fc.uuid();
    case 'date-time':
      return fc.date({ min: new Date('0001-01-01T00:00:00Z'), max: new Date('9999-12-31T23:59:59Z'), noInvalidDate: true }).map((d) => d.toISOString());
    default:
      throw new Error(`fuzz: unsupported string format ${schema.format}`);
  }
  if (schema.pattern !== undefined) return fc.stringMatching(new RegExp(schema.pattern, 'u')).filter(fits);
  // 'binary' is any code point (NUL and controls included), so ajv's code-point lengths match.
  return fc.oneof(
    { arbitrary: fc.string({ unit: 'grapheme-ascii', minLength: min, maxLength: max }), weight: 3 },
    { arbitrary: fc.string({ unit: 'binary', minLength: min, maxLength: max }), weight: 1 },
  );
}

function numberArbitrary(schema: JsonSchema, integer: boolean): fc.Arbitrary<number> {
  const min = schema.exclusiveMinimum !== undefined ? schema.exclusiveMinimum + (integer ? 1 : Number.EPSILON) : schema.minimum;
  const max = schema.exclusiveMaximum !== undefined ? schema.exclusiveMaximum - (integer ? 1 : Number.EPSILON) : schema.maximum;
  if (integer) return fc.integer({ min: min ?? Number.MIN_SAFE_INTEGER, max: max ?? Number.MAX_SAFE_INTEGER });
  return fc.double({ min, max, noNaN: true, noDefaultInfinity: true });
}

/**
 * Values that satisfy `schema`: object/properties/required/additionalProperties, strings with
 * length, pattern and formats, numbers with bounds, arrays, enum/const, anyOf/oneOf and local
 * $refs. Anything else throws, so a new construct in the document is noticed, not half-fuzzed.
 */
export function arbitraryFor(
  schema: JsonSchema,
  resolve: (ref: string) => JsonSchema,
  hints: Hints = {},
  name?: string,
): fc.Arbitrary<unknown> {
  for (const key of Object.keys(schema)) {
    if (!HANDLED.has(key) && !ANNOTATIONS.has(key)) throw new Error(`fuzz: unsupported schema keyword ${key}`);
  }
  if (schema.$ref !== undefined) return arbitraryFor(resolve(schema.$ref), resolve, hints, name);
  const own = ownArbitrary(schema, resolve, hints);
  const named = name !== undefined ? hints[name] : undefined;
  const hint = typeof schema.type === 'string' && schema.type !== 'array' ? (named ?? (schema.format !== undefined ? hints[`format:${schema.format}`] : undefined)) : undefined;
  return hint ? fc.oneof({ arbitrary: own, weight: 2 }, { arbitrary: hint, weight: 1 }) : own;
}

function ownArbitrary(schema: JsonSchema, resolve: (ref: string) => JsonSchema, hints: Hints): fc.Arbitrary<unknown> {
  if (schema.const !== undefined) return fc.constant(schema.const);
  if (schema.enum) return fc.constantFrom(...schema.enum);
  const alternatives = schema.anyOf ?? schema.oneOf;
  if (alternatives) return fc.oneof(...alternatives.map((s) => arbitraryFor(s, resolve, hints)));
  if (Array.isArray(schema.type)) return fc.oneof(...schema.type.map((type) => arbitraryFor({ ...schema, type }, resolve, hints)));
  switch (schema.type) {
    case 'string':
      return stringArbitrary(schema);
    case 'integer':
      return numberArbitrary(schema, true);
    case 'number':
      return numberArbitrary(schema, false);
    case 'boolean':
      return fc.boolean();
    case 'null':
      return fc.constant(null);
    case 'array':
      return fc.array(arbitraryFor(schema.items ?? {}, resolve, hints), {
        minLength: schema.minItems ?? 0,
        maxLength: schema.maxItems,
        // A list of 100 names now and then, but mostly short ones.
        size: 'small',
      });
    case 'object': {
      const properties = schema.properties ?? {};
      const model: Record<string, fc.Arbitrary<unknown>> = {};
      for (const [key, property] of Object.entries(properties)) {
        // A hint for an array property offers its items: known role names in a list of roles.
        const hint = property.type === 'array' ? hints[key] : undefined;
        model[key] = hint
          ? fc.array(fc.oneof({ arbitrary: arbitraryFor(property.items ?? {}, resolve, hints), weight: 1 }, { arbitrary: hint, weight: 2 }), { minLength: property.minItems ?? 0, maxLength: property.maxItems, size: 'small' })
          : arbitraryFor(property, resolve, hints, key);
      }
      if (schema.additionalProperties !== undefined && schema.additionalProperties !== false && Object.keys(properties).length === 0) {
        const values = schema.additionalProperties === true ? fc.jsonValue() : arbitraryFor(schema.additionalProperties, resolve, hints);
        return fc.dictionary(fc.string(), values);
      }
      return fc.record(model, { requiredKeys: schema.required ?? [] });
    }
    case undefined:
      return fc.jsonValue();
    default:
      throw new Error(`fuzz: unsupported schema type ${String(schema.type)}`);
  }
}

/** Strings that have broken parsers, databases and loggers before. */
export const oddString: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(
    '',
    ' ',
    '\u0000',
    'a\u0000b',
    '\ud800',
    '\udfff\ud800',
    '\u202e\u2066',
    '\ufeff',
    '\uffff',
    'null',
    'undefined',
    'NaN',
    '-0',
    '1e400',
    '__proto__',
    'constructor',
    'toString',
    "'; drop table users; --",
    '%',
    '_',
    '\\',
    '%00',
    '../../etc/passwd',
    '${jndi:ldap://x}',
    '<script>alert(1)</script>',
    '😀'.repeat(65),
    'ǅ'.repeat(300),
  ),
  fc.string({ unit: 'binary', maxLength: 80 }),
  fc.string({ unit: 'grapheme', maxLength: 40 }),
);

const hex = (length: number) => fc.string({ unit: fc.constantFrom(...'0123456789abcdefABCDEF'), minLength: length, maxLength: length });

/**
 * Ids that look like uuids and are not the canonical 8-4-4-4-12 form a uuid column takes: ajv-formats'
 * own `uuid` format once let `urn:uuid:` through to PostgreSQL (a 500).
 */
export const oddUuid: fc.Arbitrary<string> = fc.oneof(
  fc.uuid().map((u) => `urn:uuid:${u}`),
  fc.uuid().map((u) => `URN:UUID:${u.toUpperCase()}`),
  fc.uuid().map((u) => `{${u}}`),
  fc.uuid().map((u) => u.replaceAll('-', '')),
  fc.uuid().map((u) => u.toUpperCase()),
  fc.tuple(hex(8), hex(4), hex(4), hex(4), hex(13)).map((parts) => parts.join('-')),
  fc.constantFrom('urn:uuid:', 'urn:uuid:00000000-0000-0000-0000-000000000000', '00000000-0000-0000-0000-00000000000g'),
);

const pad = (n: number, width: number) => String(n).padStart(width, '0');
const offset = fc.oneof(
  fc.constantFrom('Z', 'z', '+14:00', '-12:00', '+23:59', '-23:59', '+00:01', '-00:01', '+0100', '-01'),
  fc.tuple(fc.constantFrom('+', '-'), fc.integer({ min: 0, max: 23 }), fc.integer({ min: 0, max: 59 })).map(([sign, h, m]) => `${sign}${pad(h, 2)}:${pad(m, 2)}`),
);

/**
 * RFC 3339 date-times at and past the edges of what PostgreSQL and a JS Date can hold: years 0000
 * and 9999 with offsets that move the instant into year 0 or 10000, leap seconds, February 29th
 * to 31st, many fraction digits. Some are storable, most are not.
 */
export const edgeInstant: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(
    '9999-12-31T23:59:59-23:59',
    '0000-01-01T00:00:00Z',
    '2016-12-31T23:59:60Z',
    '2016-12-31T15:59:60-08:00',
    '0001-01-01T00:00:00+00:01',
    '0001-01-01T00:00:00Z',
    '9999-12-31T23:59:59.999999999Z',
    '2021-02-30T00:00:00Z',
    '2020-02-29T00:00:00+14:00',
  ),
  fc
    .tuple(
      fc.constantFrom(0, 1, 1969, 1970, 2000, 2023, 2024, 9999),
      fc.constantFrom('01-01', '02-28', '02-29', '02-30', '02-31', '06-30', '12-31'),
      fc.constantFrom('00:00:00', '12:00:00', '23:59:59', '23:59:60', '23:59:59.999', '00:00:00.000001'),
      offset,
    )
    .map(([year, day, time, zone]) => `${pad(year, 4)}-${day}T${time}${zone}`),
);

/** Any JSON value, the odd strings included. */
export const anyJson: fc.Arbitrary<unknown> = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }),
  oddString,
  fc.constantFrom(0, -1, 1.5, 2 ** 53, -(2 ** 63), 1e308, true, false, null, [], {}),
);

/** Latin-1 text: what a real HTTP header can carry (Node decodes obs-text as latin1). */
export const headerText = (maxLength: number): fc.Arbitrary<string> =>
  fc.oneof(
    fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)), maxLength }),
    fc.string({ unit: fc.constantFrom('\t', ' ', ...Array.from({ length: 0x60 }, (_, i) => String.fromCharCode(0xa0 + i))), maxLength }),
  );

/** Byte sequences that are not UTF-8: lone continuation bytes, overlongs, surrogates, truncations. */
export const invalidUtf8: fc.Arbitrary<number[]> = fc.oneof(
  fc.constantFrom<number[]>([0x80], [0xbf], [0xc0, 0xaf], [0xc1, 0xbf], [0xe0, 0x80, 0xaf], [0xed, 0xa0, 0x80], [0xed, 0xbf, 0xbf], [0xf4, 0x90, 0x80, 0x80], [0xf8, 0x88, 0x80, 0x80, 0x80], [0xfe], [0xff], [0xc3], [0xe2, 0x82], [0xf0, 0x9f, 0x98]),
  fc.array(fc.integer({ min: 0x80, max: 0xff }), { minLength: 1, maxLength: 16 }),
);

/** Percent-encodes any string, lone surrogates included (as U+FFFD, like a browser would). */
export function encodeComponent(s: string): string {
  try {
    return encodeURIComponent(s);
  } catch {
    return [...Buffer.from(s, 'utf8')].map((b) => `%${b.toString(16).toUpperCase().padStart(2, '0')}`).join('');
  }
}
