import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { buildApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { openDatabase } from '../src/db/client.js';

export const OPENAPI_FILE = fileURLToPath(new URL('../openapi/openapi.json', import.meta.url));

/** The OpenAPI document exactly as the server serves it at /openapi.json, pretty-printed. */
export async function generateOpenApi(): Promise<string> {
  // Fixed settings and a throwaway in-memory database: the document depends on the routes only.
  const config = loadConfig(
    { JWT_SECRET: 'openapi', PASSWORD_PEPPER: 'openapi', LOG_LEVEL: 'silent', PUBLIC_URL: 'http://127.0.0.1:3000' },
    () => {},
  );
  const database = await openDatabase({});
  const app = await buildApp(config, { database });
  try {
    await app.ready();
    return `${JSON.stringify(app.swagger(), null, 2)}\n`;
  } finally {
    await app.close();
    await database.close();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  writeFileSync(OPENAPI_FILE, await generateOpenApi());
  console.log(`wrote ${OPENAPI_FILE}`);
}
