import type postgres from 'postgres';

/** OID of text[] in every PostgreSQL: built-in types have fixed OIDs. */
const TEXT_ARRAY_OID = 1009;

/**
 * Reads a one-dimensional text[] in PostgreSQL's text form: `{admin,"a b","say \"hi\"",NULL}`.
 * Elements are quoted when they hold a comma, brace, quote, backslash or space, or spell NULL.
 */
export function parseTextArray(text: string): (string | null)[] {
  const items: (string | null)[] = [];
  // Lower bounds other than 1 come first, as in `[0:1]={a,b}`.
  let i = text.indexOf('{') + 1;
  if (text[i] === '}') return items;
  while (i < text.length) {
    if (text[i] === '"') {
      let value = '';
      for (i++; i < text.length && text[i] !== '"'; i++) {
        if (text[i] === '\\') i++;
        value += text[i];
      }
      items.push(value);
      i++;
    } else {
      let end = i;
      while (end < text.length && text[end] !== ',' && text[end] !== '}') end++;
      const raw = text.slice(i, end);
      items.push(raw === 'NULL' ? null : raw);
      i = end;
    }
    // Past the comma, or the closing brace.
    i++;
  }
  return items;
}

/**
 * Writes a text[] parameter: every element quoted, so none needs telling apart. A string is
 * already in text form (Drizzle's array columns send one) and passes as it is.
 */
export function serializeTextArray(items: readonly (string | null)[] | string): string {
  if (typeof items === 'string') return items;
  return `{${items.map((item) => (item === null ? 'NULL' : `"${item.replace(/[\\"]/g, '\\$&')}"`)).join(',')}}`;
}

/**
 * postgres.js learns array types by asking each new connection for them (`fetch_types`), in a query
 * whose failure it leaves unhandled: a server shutting down at that moment crashed the process
 * with an uncaught 57P01. Gatehouse turns that off and declares the one array type it reads.
 */
export const TEXT_ARRAY: postgres.PostgresType<(string | null)[] | string> = {
  to: TEXT_ARRAY_OID,
  from: [TEXT_ARRAY_OID],
  serialize: serializeTextArray,
  parse: parseTextArray,
};
