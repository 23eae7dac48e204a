/**
 * Real PostgreSQL and Redis servers of a test's own, on free ports, that the test may stop and
 * start at will. Fault tests use these, never the shared servers on 5432 and 6379.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chownSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from './app.js';

/** A port nothing listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

function postgresBin(name: string): string {
  const versions = readdirSync('/usr/lib/postgresql').sort((a, b) => Number(b) - Number(a));
  return join('/usr/lib/postgresql', versions[0]!, 'bin', name);
}

/** PostgreSQL refuses to run as root: as root, its commands run as the `postgres` system user. */
function asPostgresUser(command: string, args: string[]): [string, string[]] {
  return process.getuid?.() === 0 ? ['runuser', ['-u', 'postgres', '--', command, ...args]] : [command, args];
}

function runPostgresTool(name: string, args: string[]): void {
  const [command, argv] = asPostgresUser(postgresBin(name), args);
  execFileSync(command, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
}

export interface PostgresCluster {
  port: number;
  /** postgres:// URL of the cluster's `postgres` database. */
  url: string;
  /** URL of another database of the cluster (which may not exist). */
  urlOf(database: string): string;
  start(): void;
  /** Fast shutdown: connections are closed, as in a restart or a failover. */
  stop(): void;
  isRunning(): boolean;
}

/** initdb into a temporary folder and start it on a free port; stopped and removed at teardown. */
export async function startPostgresCluster(t: Test, options: { start?: boolean } = {}): Promise<PostgresCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-pg-'));
  if (process.getuid?.() === 0) {
    const uid = Number(execFileSync('id', ['-u', 'postgres']).toString());
    const gid = Number(execFileSync('id', ['-g', 'postgres']).toString());
    chownSync(dir, uid, gid);
  }
  const data = join(dir, 'data');
  runPostgresTool('initdb', ['-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync', '--no-instructions']);
  const port = await freePort();
  let running = false;
  const serverOptions = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off`;
  const cluster: PostgresCluster = {
    port,
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    urlOf: (database) => `postgres://postgres@127.0.0.1:${port}/${database}`,
    start() {
      runPostgresTool('pg_ctl', ['-D', data, '-o', serverOptions, '-l', join(dir, 'log'), '-w', '-t', '60', 'start']);
      running = true;
    },
    stop() {
      runPostgresTool('pg_ctl', ['-D', data, '-m', 'fast', '-w', '-t', '60', 'stop']);
      running = false;
    },
    isRunning: () => running,
  };
  t.teardown(() => {
    if (running) {
      try {
        runPostgresTool('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']);
      } catch {
        // already gone
      }
    }
    rmSync(dir, { recursive: true, force: true });
  });
  if (options.start !== false) cluster.start();
  return cluster;
}

export interface RedisServer {
  port: number;
  url: string;
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** A redis-server of the test's own on a free port, keeping nothing on disk. */
export async function startRedisServer(t: Test): Promise<RedisServer> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-redis-'));
  let child: ChildProcess | undefined;
  const server: RedisServer = {
    port,
    url: `redis://127.0.0.1:${port}`,
    async start() {
      const started = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      child = started;
      await new Promise<void>((resolve, reject) => {
        let output = '';
        const onData = (chunk: Buffer) => {
          output += chunk.toString();
          if (output.includes('Ready to accept connections')) {
            started.stdout!.off('data', onData);
            started.stdout!.resume();
            resolve();
          }
        };
        started.stdout!.on('data', onData);
        started.stderr!.resume();
        started.once('exit', (code) => reject(new Error(`redis-server exited with ${code}: ${output}`)));
      });
    },
    async stop() {
      const running = child;
      child = undefined;
      if (!running || running.exitCode !== null) return;
      await new Promise<void>((resolve) => {
        running.once('exit', () => resolve());
        running.kill('SIGKILL');
      });
    },
  };
  t.teardown(async () => {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  await server.start();
  return server;
}
