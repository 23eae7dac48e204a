/**
 * `.env` in the working directory: read by the standalone server and by create-admin before the
 * config, with the real environment winning over the file. The processes run in a folder of their
 * own, as `npm start` would run them in a project root holding a .env.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { eq } from 'drizzle-orm';
import tap from 'tap';
import { openDatabase } from '../src/db/client.js';
import { users } from '../src/db/schema.js';
import { loadEnvFile } from '../src/env-file.js';
import type { Test } from './helpers/app.js';
import { cleanEnv, runScript } from './helpers/script.js';
import { freePort } from './helpers/servers.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

function projectDir(t: Test, dotEnv: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-dotenv-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, '.env'), dotEnv);
  return dir;
}

const SECRETS = 'JWT_SECRET=dotenv-test-jwt-secret-that-is-long-enough-0123\nPASSWORD_PEPPER=dotenv-test-pepper-that-is-long-enough-0123\n';

tap.test('the server reads .env from its working directory, and a real environment variable wins over it', async (t) => {
  const port = await freePort();
  const dir = projectDir(
    t,
    `# comments and quotes as in .env.example\nHOST=127.0.0.1\nPORT=1\nLOG_LEVEL="info"\nDATA_DIR=./from-dotenv\nBCRYPT_COST=4\n${SECRETS}`,
  );
  const server = runScript(t, join(ROOT, 'src/server.ts'), { cwd: dir, env: cleanEnv({ PORT: String(port) }) });
  const listening = await server.waitFor(/Gatehouse listening/);
  t.match(listening, `:${port}`, 'PORT from the environment, not the 1 of .env');
  t.ok(existsSync(join(dir, 'from-dotenv', 'pglite')), 'DATA_DIR from .env, relative to the working directory');
  const health = await fetch(`http://127.0.0.1:${port}/health`);
  t.equal(health.status, 200);
  await health.arrayBuffer();
  server.kill();
  t.equal(await server.exit, 0);
});

tap.test('a bad value in .env stops the server with the usual message naming the variable', async (t) => {
  const dir = projectDir(t, `PORT=99999\n${SECRETS}`);
  const server = runScript(t, join(ROOT, 'src/server.ts'), { cwd: dir });
  t.equal(await server.exit, 1);
  t.match(server.output(), /PORT=99999/);
});

tap.test('create-admin reads the same .env, so the admin lands in the database the server uses', async (t) => {
  const dir = projectDir(t, `DATA_DIR=./from-dotenv\nBCRYPT_COST=4\n${SECRETS}`);
  const script = runScript(t, join(ROOT, 'scripts/create-admin.ts'), { cwd: dir, args: ['--email', 'Root@Example.com', '--password', 'dotenv-Tq8#mZ2!pL0x'] });
  t.equal(await script.exit, 0, script.output());
  t.match(script.output(), /created admin root@example\.com/);
  const database = await openDatabase({ dataDir: join(dir, 'from-dotenv', 'pglite') });
  t.teardown(() => database.close());
  const found = await database.db.select({ id: users.id }).from(users).where(eq(users.email, 'root@example.com'));
  t.equal(found.length, 1);
});

tap.test('loadEnvFile: no file changes nothing; a file fills only what the environment lacks', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-dotenv-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  t.equal(loadEnvFile(join(dir, '.env')), false);

  writeFileSync(join(dir, '.env'), 'GATEHOUSE_DOTENV_TEST_SET=from-file\nGATEHOUSE_DOTENV_TEST_NEW=from-file\n');
  process.env.GATEHOUSE_DOTENV_TEST_SET = 'from-environment';
  t.teardown(() => {
    delete process.env.GATEHOUSE_DOTENV_TEST_SET;
    delete process.env.GATEHOUSE_DOTENV_TEST_NEW;
  });
  t.equal(loadEnvFile(join(dir, '.env')), true);
  t.equal(process.env.GATEHOUSE_DOTENV_TEST_SET, 'from-environment');
  t.equal(process.env.GATEHOUSE_DOTENV_TEST_NEW, 'from-file');
});

tap.test('loadEnvFile: a .env that exists but cannot be read is an error, not silently skipped', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-dotenv-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  // A folder in its place (file modes do not stop root, who may run the tests).
  mkdirSync(join(dir, '.env'));
  t.throws(() => loadEnvFile(join(dir, '.env')), /\.env/);
});
