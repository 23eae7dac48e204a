/**
 * For PostgreSQL fault tests: Gatehouse opened the way the server opens it (from a URL, with the
 * configured timeouts), fresh databases on a cluster of the test's own, and a TCP proxy that can
 * make the database stop answering without refusing connections.
 */
import { createServer, connect, type Socket } from 'node:net';
import type { FastifyInstance } from 'fastify';
import postgres from 'postgres';
import { buildApp } from '../../src/app.js';
import type { Config } from '../../src/config.js';
import { openDatabase } from '../../src/db/client.js';
import { createLogger } from '../../src/logger.js';
import { testConfig, type Test } from './app.js';
import type { PostgresCluster } from './servers.js';

let databases = 0;
const templates = new WeakMap<PostgresCluster, Promise<string>>();

async function createEmpty(cluster: PostgresCluster, name: string, template?: string): Promise<void> {
  const admin = postgres(cluster.url, { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`create database "${name}"${template ? ` template "${template}"` : ''}`);
  } finally {
    await admin.end();
  }
}

/** A database of `cluster` migrated once, copied by createDatabase: a copy costs less than migrating. */
function migratedTemplate(cluster: PostgresCluster): Promise<string> {
  let template = templates.get(cluster);
  if (!template) {
    template = (async () => {
      const name = `gh_fault_template_${process.pid}`;
      await createEmpty(cluster, name);
      const database = await openDatabase({ databaseUrl: cluster.urlOf(name), poolSize: 1 });
      await database.close();
      return name;
    })();
    templates.set(cluster, template);
  }
  return template;
}

/** A new database on `cluster`, migrated; returns its name. */
export async function createDatabase(cluster: PostgresCluster): Promise<string> {
  const name = `gh_fault_${process.pid}_${++databases}`;
  await createEmpty(cluster, name, await migratedTemplate(cluster));
  return name;
}

/** Log lines as parsed JSON objects, for tests that look for what was logged. */
export interface LogRecord {
  level: number;
  msg: string;
  [key: string]: unknown;
}

/**
 * The standalone app on the database at `url`, opened as the server opens it (migrations, the
 * startup wait, DATABASE_QUERY_TIMEOUT), closed at teardown. `logs` receives every log line.
 */
export async function buildAppOnUrl(
  t: Test,
  url: string,
  { env = {}, logs }: { env?: Record<string, string>; logs?: LogRecord[] } = {},
): Promise<{ app: FastifyInstance; config: Config }> {
  const config = testConfig({ DATABASE_URL: url, ...env });
  const logger = logs ? createLogger({ logLevel: 'info' }, { write: (line: string) => void logs.push(JSON.parse(line) as LogRecord) }) : undefined;
  const app = await buildApp(config, { logger });
  t.teardown(() => app.close());
  await app.ready();
  return { app, config };
}

/** Milliseconds `work` took, with its result. */
export async function timed<T>(work: () => Promise<T>): Promise<{ ms: number; result: T }> {
  const started = performance.now();
  const result = await work();
  return { ms: Math.round(performance.now() - started), result };
}

/** Polls `check` every 25 ms until it is true; the milliseconds it took, or a failure after `limitMs`. */
export async function msUntil(check: () => Promise<boolean>, limitMs: number): Promise<number> {
  const started = performance.now();
  while (!(await check())) {
    if (performance.now() - started > limitMs) throw new Error(`not true within ${limitMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  return Math.round(performance.now() - started);
}

export interface TcpProxy {
  port: number;
  /** URL of `database` on the proxied cluster, through the proxy. */
  urlOf(database: string): string;
  /**
   * The network drops everything, as when a server freezes or a link dies: connections are still
   * accepted, and no byte goes either way.
   */
  blackhole(): void;
  /**
   * New connections get through their startup, then what the client sends is held (the server's
   * words still pass): a query is on its way but never arrives.
   */
  holdAfterStartup(): void;
  /** Forwards again; connections held or black-holed until now are reset, as the server gave up on them. */
  restore(): void;
}

/** A TCP proxy on a free port of 127.0.0.1 in front of `target` (a local port); closed at teardown. */
export async function startTcpProxy(t: Test, target: number): Promise<TcpProxy> {
  let mode: 'pass' | 'blackhole' | 'hold' = 'pass';
  const sockets = new Set<Socket>();
  const track = (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
  };
  // ReadyForQuery: the end of a connection's startup.
  const readyForQuery = Buffer.from([0x5a, 0, 0, 0, 5]);
  const server = createServer((client) => {
    track(client);
    if (mode === 'blackhole') return void client.resume();
    const connectionMode = mode;
    let started = false;
    const upstream = connect(target, '127.0.0.1');
    track(upstream);
    client.on('data', (chunk) => {
      if (mode === 'blackhole' || (connectionMode === 'hold' && started)) return;
      upstream.write(chunk);
    });
    upstream.on('data', (chunk) => {
      if (mode === 'blackhole') return;
      if (chunk.includes(readyForQuery)) started = true;
      client.write(chunk);
    });
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  t.teardown(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => server.close(resolve));
  });
  return {
    port,
    urlOf: (database) => `postgres://postgres@127.0.0.1:${port}/${database}`,
    blackhole: () => void (mode = 'blackhole'),
    holdAfterStartup: () => void (mode = 'hold'),
    restore() {
      mode = 'pass';
      for (const socket of sockets) socket.destroy();
    },
  };
}
