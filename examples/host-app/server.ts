import Fastify from 'fastify';
import { errorsPlugin, gatehousePlugin, loadConfig, openDatabase } from 'gatehouse';

const config = loadConfig();
const app = Fastify({ logger: true });
// Opened before register rather than by the plugin: creating a new embedded database takes
// seconds, which would count against Fastify's pluginTimeout. Added before the plugin, this hook
// runs after the plugin's own (onClose hooks run in reverse order).
const database = await openDatabase(config, app.log);
app.addHook('onClose', () => database.close());

await app.register(errorsPlugin); // optional: problem+json for your own routes' errors too
await app.register(gatehousePlugin, { config, database, prefix: '/identity' });

app.get('/notes', { config: { permissionsRequired: ['read'] } }, async (request) => {
  return { owner: request.principal!.access.user.email };
});

await app.listen({ host: config.host, port: config.port });
