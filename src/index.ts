/**
 * The public package entry: the Fastify plugin, the standalone app, and their types. What it
 * declares names Gatehouse's own types (types.ts), never drizzle-orm's or PGlite's.
 */
import type { Config } from './config.js';
import { openConfiguredDatabase } from './db/client.js';
import type { StartupLog } from './db/startup.js';
import type { GatehouseDatabase } from './types.js';

export { gatehousePlugin, gatehousePlugin as default, type GatehouseOptions } from './plugin.js';
export { buildApp, type BuildAppOptions } from './app.js';
export { loadConfig, ConfigError, type Config } from './config.js';
export { errorsPlugin } from './plugins/errors.js';
export { ProblemError, problem, type ProblemCode } from './errors.js';
export type { AccessRule, UndeclaredRoutes } from './plugins/permissions.js';
export type { Principal } from './plugins/auth.js';
export type { GatehouseDatabase as Database, GatehouseServices as Gatehouse, GatehouseUser, UserAccess } from './types.js';

/**
 * Opens the database the configuration names, migrated, as the plugin would: PostgreSQL at
 * DATABASE_URL (waiting up to DATABASE_STARTUP_TIMEOUT for it, each failed attempt told to `log`),
 * else PGlite under DATA_DIR. Open it before registering the plugin and pass it as `database`: a
 * new embedded database takes seconds to create, which would count against Fastify's
 * pluginTimeout. Whoever opens it closes it.
 */
export function openDatabase(config: Config, log?: StartupLog): Promise<GatehouseDatabase> {
  return openConfiguredDatabase(config, log);
}
