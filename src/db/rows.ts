import { getTableColumns, sql, type InferSelectModel, type SQL } from 'drizzle-orm';
import type { PgTable } from 'drizzle-orm/pg-core';
import type { Db } from './client.js';

/**
 * Runs a hand-written statement (for the hot paths, where one round trip must do what several
 * query-builder calls would) and returns its rows: postgres.js answers an array, PGlite an object
 * holding one.
 */
export async function queryRows<T = Record<string, unknown>>(db: Pick<Db, 'execute'>, query: SQL): Promise<T[]> {
  const result: unknown = await db.execute(query);
  return (Array.isArray(result) ? result : (result as { rows: T[] }).rows) as T[];
}

const columnsByTable = new WeakMap<PgTable, [key: string, column: ReturnType<typeof getTableColumns>[string]][]>();

function columnsOf(table: PgTable) {
  let columns = columnsByTable.get(table);
  if (!columns) {
    columns = Object.entries(getTableColumns(table));
    columnsByTable.set(table, columns);
  }
  return columns;
}

/**
 * A table's row as the query builder would return it (camelCase keys, Dates), read from the raw
 * snake_case columns of a hand-written `select t.*` (or of `prefixedColumns(t, ..., prefix)`): the
 * schema stays the one place that maps them.
 */
export function fromRow<T extends PgTable>(table: T, row: Record<string, unknown>, prefix = ''): InferSelectModel<T> {
  const model: Record<string, unknown> = {};
  for (const [key, column] of columnsOf(table)) {
    const value = row[prefix + column.name];
    model[key] = value === null || value === undefined ? null : column.mapFromDriverValue(value);
  }
  return model as InferSelectModel<T>;
}

const prefixedByTable = new WeakMap<PgTable, Map<string, SQL>>();

/** `alias.col as prefixcol, ...` for every column of the table: two tables' rows in one select. Made once per table, alias and prefix. */
export function prefixedColumns(table: PgTable, alias: string, prefix: string): SQL {
  let byName = prefixedByTable.get(table);
  if (!byName) prefixedByTable.set(table, (byName = new Map()));
  const name = `${alias}.${prefix}`;
  let columns = byName.get(name);
  if (!columns) {
    columns = sql.raw(columnsOf(table).map(([, column]) => `${alias}."${column.name}" as "${prefix}${column.name}"`).join(', '));
    byName.set(name, columns);
  }
  return columns;
}
