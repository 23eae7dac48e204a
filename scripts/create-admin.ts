import { parseArgs } from 'node:util';
import { ConfigError, loadConfig } from '../src/config.js';
import { openConfiguredDatabase } from '../src/db/client.js';
import { seed } from '../src/db/seed.js';
import { ensureAdmin } from '../src/domain/admin-users.js';
import { normalizeEmail } from '../src/domain/email.js';
import { createPasswordHasher } from '../src/domain/passwords.js';

/** `npm run create-admin -- --email a@b.c --password '...'`: creates, or promotes, an admin. */
async function main(): Promise<number> {
  const { values } = parseArgs({ options: { email: { type: 'string' }, password: { type: 'string' } } });
  if (!values.email || !values.password) {
    console.error('usage: npm run create-admin -- --email <email> --password <password>');
    return 2;
  }
  const email = normalizeEmail(values.email);
  const length = [...values.password].length;
  if (length < 8 || length > 256) {
    console.error('create-admin: the password must be 8 to 256 characters');
    return 2;
  }
  const config = loadConfig();
  const database = await openConfiguredDatabase(config);
  try {
    await seed(database.db);
    const passwords = createPasswordHasher({ pepper: config.passwordPepper, cost: config.bcryptCost });
    const { created } = await ensureAdmin(database.db, { email, passwordHash: () => passwords.hash(values.password!) });
    console.log(created ? `created admin ${email}` : `promoted ${email} to admin (password unchanged)`);
    return 0;
  } finally {
    await database.close();
  }
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(`create-admin: ${err instanceof ConfigError ? err.message : (err as Error).message}`);
    process.exit(1);
  },
);
