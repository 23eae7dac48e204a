import { ConfigError, loadConfig } from './config.js';
import { buildApp } from './app.js';
import { createLogger } from './logger.js';

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`gatehouse: ${err.message}`);
      process.exit(1);
    }
    throw err;
  }
  const logger = createLogger(config);
  const app = await buildApp(config, { logger });
  let closing = false;
  const shutdown = (signal: string) => {
    if (closing) return;
    closing = true;
    logger.info({ signal }, 'shutting down');
    app.close().then(
      () => process.exit(0),
      (err) => {
        logger.error({ err }, 'error while shutting down');
        process.exit(1);
      },
    );
  };
  process.once('SIGINT', () => shutdown('SIGINT'));
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  await app.listen({ host: config.host, port: config.port });
  logger.info(
    { database: config.databaseUrl ? 'postgresql' : `pglite:${config.dataDir}` },
    `Gatehouse listening on http://${config.host}:${config.port}`,
  );
}

main().catch((err) => {
  console.error('gatehouse: failed to start:', err instanceof Error ? err.message : err);
  process.exit(1);
});
