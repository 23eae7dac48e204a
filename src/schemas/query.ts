import { Type, type TObject, type TProperties } from '@sinclair/typebox';

/**
 * A querystring: a parameter with a `default` may be left out by the client (it is not `required`
 * in the document, so generated clients do not demand it), yet the handler always has it, because
 * validation fills the default in. Unknown parameters are refused.
 */
export function QueryObject<T extends TProperties>(properties: T): TObject<T> {
  const schema = Type.Object(properties, { additionalProperties: false });
  const plain = schema as { required?: string[] };
  const required = (plain.required ?? []).filter((key) => !('default' in properties[key]!));
  if (required.length) plain.required = required;
  else delete plain.required;
  return schema;
}
