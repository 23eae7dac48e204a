import { sql } from 'drizzle-orm';
import tap from 'tap';
import { queryRows } from '../../src/db/rows.js';
import { parseTextArray, serializeTextArray } from '../../src/db/text-array.js';
import { openTestDatabase } from '../helpers/databases.js';

/** Strings PostgreSQL has to quote or escape in a text[], and some it does not. */
const ODD = ['admin', 'a b', 'say "hi"', 'back\\slash', '', 'NULL', 'null', 'comma,brace}{', ' lead', 'été ✓', null];

void tap.test('text[] in its text form is read and written without loss', async (t) => {
  t.same(parseTextArray('{}'), [], 'empty');
  t.same(parseTextArray('{admin,user}'), ['admin', 'user'], 'plain elements');
  t.same(parseTextArray('{"a b","say \\"hi\\"","back\\\\slash","",NULL,"NULL"}'), ['a b', 'say "hi"', 'back\\slash', '', null, 'NULL'], 'quoted, escaped, NULL');
  t.same(parseTextArray('[0:1]={a,b}'), ['a', 'b'], 'with lower bounds');
  t.same(parseTextArray(serializeTextArray(ODD)), ODD, 'what it writes, it reads back');
  t.equal(serializeTextArray('{already,text}'), '{already,text}', 'a string (a Drizzle array column) passes as it is');
});

void tap.test('text[] round trip through PostgreSQL: what the server answers is what was sent', { skip: !process.env.TEST_DATABASE_URL && 'no TEST_DATABASE_URL' }, async (t) => {
  const database = await openTestDatabase('postgres');
  t.teardown(() => database.drop());
  const [row] = await queryRows<{ sent: (string | null)[]; literal: string[]; empty: string[]; bounded: string[] }>(
    database.db,
    sql`select ${serializeTextArray(ODD)}::text[] as sent, array['x', 'y z'] as literal, '{}'::text[] as empty, '[0:1]={a,b}'::text[] as bounded`,
  );
  t.same(row!.sent, ODD, 'every odd string, NULL included');
  t.same(row!.literal, ['x', 'y z']);
  t.same(row!.empty, []);
  t.same(row!.bounded, ['a', 'b']);
});
