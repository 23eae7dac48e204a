import { loadConfig, openDatabase } from '../../src/index.js';
import { buildNotesApp } from './app.js';

// npx tsx examples/notes/server.ts  -> http://127.0.0.1:3000/identity/auth/register, /notes ...
const config = loadConfig();
// Opened before the app registers Gatehouse, and closed after the app: creating a new embedded
// database takes seconds, which would count against Fastify's pluginTimeout if the plugin did it.
const database = await openDatabase(config);
const app = await buildNotesApp(config, database);
await app.listen({ host: config.host, port: config.port });
console.log(`notes example on http://${config.host}:${config.port}`);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => void app.close().then(() => database.close()));
}
