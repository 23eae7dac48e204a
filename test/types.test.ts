/**
 * The types the package entry shows a host app (src/types.ts) are written by hand, so that they
 * name no drizzle-orm or PGlite type; these checks keep them equal to what they describe. They are
 * type-level: `tsc --noEmit` (a step of `npm test`) fails when the two part ways.
 */
import tap from 'tap';
import type { Database } from '../src/db/client.js';
import type { User } from '../src/db/schema.js';
import type { Gatehouse } from '../src/services.js';
// Loaded, not only read for its types: the coverage gate wants every file under src/ loaded.
import '../src/types.js';
import type { GatehouseDatabase, GatehouseServices, GatehouseUser } from '../src/types.js';

type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;

tap.test('GatehouseUser is a row of the users table without the password hash', async (t) => {
  const same: Same<GatehouseUser, Omit<User, 'passwordHash'>> = true;
  t.ok(same);
});

tap.test('inside the package, the public database and services types are the full ones', async (t) => {
  const database: Same<GatehouseDatabase, Database> = true;
  const services: Same<GatehouseServices, Gatehouse> = true;
  t.ok(database && services);
});
