import { defineConfig } from 'drizzle-kit';

// Only `npm run db:generate` reads this: migrations are generated from the schema
// and applied by the app itself at start (src/db/client.ts), on either driver.
export default defineConfig({
  dialect: 'postgresql',
  schema: './src/db/schema.ts',
  out: './migrations',
});
