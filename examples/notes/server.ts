import { loadConfig } from '../../src/index.js';
import { buildNotesApp } from './app.js';

// npx tsx examples/notes/server.ts  -> http://127.0.0.1:3000/identity/auth/register, /notes ...
const config = loadConfig();
const app = await buildNotesApp(config);
await app.listen({ host: config.host, port: config.port });
console.log(`notes example on http://${config.host}:${config.port}`);
