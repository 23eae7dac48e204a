import { parseArgs } from 'node:util';
import { ConfigError, loadConfig } from '../src/config.js';
import { openConfiguredDatabase } from '../src/db/client.js';
import { seed } from '../src/db/seed.js';
import { ensureAdmin } from '../src/domain/admin-bootstrap.js';
import { normalizeEmail } from '../src/domain/email.js';
import { createPasswordHasher } from '../src/domain/passwords.js';
import { loadEnvFile } from '../src/env-file.js';

/**
 * `npm run create-admin -- --email a@b.c --password '...'`: creates an admin, or promotes the existing
 * account with that email when `--password` is its password (proof that the account is the operator's).
 */
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
  // The same settings as the server's, .env included, so the admin lands in the server's database.
  loadEnvFile();
  const config = loadConfig();
  const database = await openConfiguredDatabase(config);
  try {
    await seed(database.db);
    const passwords = createPasswordHasher({ pepper: config.passwordPepper, cost: config.bcryptCost });
    const { outcome } = await ensureAdmin(database.db, { email, password: values.password!, passwords });
    if (outcome === 'refused_password_mismatch') {
      console.error(
        `create-admin: ${email} is an existing account and the given password is not its password, so it was not made an admin. ` +
          'If the account is yours, pass its current password; otherwise use another email.',
      );
      return 1;
    }
    console.log({ created: `created admin ${email}`, promoted: `promoted ${email} to admin`, already_admin: `${email} is already an admin` }[outcome]);
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
