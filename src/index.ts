/** The public package entry: the Fastify plugin, the standalone app, and their types. */
export { gatehousePlugin, gatehousePlugin as default, type GatehouseOptions } from './plugin.js';
export { buildApp, type BuildAppOptions } from './app.js';
export { loadConfig, ConfigError, type Config } from './config.js';
export { openDatabase, type Database, type Db } from './db/client.js';
export { errorsPlugin } from './plugins/errors.js';
export { ProblemError, problem, type ProblemCode } from './errors.js';
export type { AccessRule, UndeclaredRoutes } from './plugins/permissions.js';
export type { Principal } from './plugins/auth.js';
export type { Gatehouse } from './services.js';
