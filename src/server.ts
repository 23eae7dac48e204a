import closeWithGrace from 'close-with-grace';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { ConfigError, loadConfig } from './config.js';
import { buildApp } from './app.js';
import { createLogger } from './logger.js';
import { loadEnvFile } from './env-file.js';

async function main(): Promise<void> {
  loadEnvFile();
  const config = loadConfig();
  const logger = createLogger(config);
  const app = await buildApp(config, { logger });
  closeOnSignals(app, logger, config.shutdownTimeout);
  const address = await app.listen({ host: config.host, port: config.port });
  logger.info({ database: config.databaseUrl ? 'postgresql' : `pglite:${config.dataDir}` }, `Gatehouse listening on ${address}`);
}

/**
 * The events of close-with-grace left to Node: the signals a crash sends, SIGUSR2 (a debugger's or
 * a heap snapshot's), and uncaught errors, after which the process state is not to be trusted.
 */
const LEFT_TO_NODE = ['SIGILL', 'SIGTRAP', 'SIGABRT', 'SIGBUS', 'SIGFPE', 'SIGSEGV', 'SIGUSR2', 'uncaughtException', 'unhandledRejection', 'beforeExit'] as const;

/**
 * SIGTERM or SIGINT (SIGHUP, SIGQUIT too): stop accepting connections, let the requests in flight
 * finish (app.ts answers any later one with a 503 shutting_down), then let go of the database and
 * the mailer. Whatever still hangs after SHUTDOWN_TIMEOUT (a database or a mail server that does
 * not answer) is logged and abandoned, and the exit code is 0 all the same: the process was asked
 * to stop, and it did, in time. A second signal exits at once, with 1.
 */
function closeOnSignals(app: FastifyInstance, logger: Logger, timeoutSeconds: number): void {
  let inFlight = 0;
  app.server.on('request', (_request, response) => {
    inFlight++;
    response.once('close', () => inFlight--);
  });
  let step = 'waiting for requests in flight';
  let started = 0;
  const elapsed = () => Date.now() - started;
  closeWithGrace(
    {
      delay: timeoutSeconds * 1000,
      skip: [...LEFT_TO_NODE],
      // Through pino, like every other line: close-with-grace would use the console.
      logger: { error: (err: unknown) => logger.error({ err }, 'shutdown failed') },
      onSecondSignal: (signal) => logger.warn({ signal, ms: elapsed() }, 'second signal: exiting at once, with 1'),
      onTimeout: () => {
        logger.warn({ step, requestsInFlight: inFlight, ms: elapsed() }, `shutdown not finished within SHUTDOWN_TIMEOUT (${timeoutSeconds} s): exiting anyway`);
        process.exit(0);
      },
    },
    async ({ signal }) => {
      started = Date.now();
      logger.info({ signal, requestsInFlight: inFlight }, 'shutting down: no new connections, waiting for requests in flight');
      app.server.once('close', () => {
        step = 'closing the database and the mailer';
        logger.info({ ms: elapsed() }, 'requests done, closing the database and the mailer');
      });
      await app.close();
      logger.info({ ms: elapsed() }, 'shut down');
    },
  );
}

main().catch((err: Error) => {
  // A configuration error says all there is to say; anything else is a failed start.
  console.error(err instanceof ConfigError ? `gatehouse: ${err.message}` : `gatehouse: failed to start: ${err.message}`);
  process.exit(1);
});
