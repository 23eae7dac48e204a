/**
 * Gatehouse as a real process: `src/server.ts` (or a script) run by this Node with the test's own
 * loader, so that tap's coverage follows it, on a free port and an embedded database folder of its
 * own, logging JSON lines a test can wait for.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tap from 'tap';
import { EnvSchema } from '../../src/config.js';
import type { Test } from './app.js';
import { migratedPgliteFolder } from './databases.js';
import { freePort } from './servers.js';

export interface LogLine {
  level: number;
  msg: string;
  time: number;
  [key: string]: unknown;
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Date.now() when it exited. */
  at: number;
}

export interface GatehouseProcess {
  child: ChildProcess;
  port: number;
  url: string;
  dataDir: string;
  /** Every JSON line written to stdout so far. */
  logs: LogLine[];
  output(): { stdout: string; stderr: string };
  /** The first log line (already written or to come) whose msg contains `msg` and that matches `where`. */
  waitForLog(msg: string, where?: (line: LogLine) => boolean, ms?: number): Promise<LogLine>;
  exit: Promise<Exit>;
}

let migrated: Promise<string> | undefined;

/** A DATA_DIR holding a migrated database (a copy of one made once per test process), removed at teardown. */
export async function migratedDataDir(t: Test): Promise<string> {
  migrated ??= (async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gatehouse-migrated-'));
    tap.teardown(() => rmSync(dir, { recursive: true, force: true }));
    await migratedPgliteFolder(join(dir, 'pglite'));
    return join(dir, 'pglite');
  })();
  const source = await migrated;
  const dataDir = mkdtempSync(join(tmpdir(), 'gatehouse-data-'));
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
  cpSync(source, join(dataDir, 'pglite'), { recursive: true });
  return dataDir;
}

/**
 * The arguments and environment to run a TypeScript file in a child Node: with the test's own
 * loader, so that tap's coverage follows it; or, for a file whose coverage does not count (a script,
 * a test fixture), with tsx and outside coverage, which starts faster (and tsx's source maps would
 * misreport branches).
 */
export function childNode(file: string, args: string[], env: NodeJS.ProcessEnv, coverage: boolean): { args: string[]; env: NodeJS.ProcessEnv } {
  if (coverage) return { args: [...process.execArgv, file, ...args], env };
  // tap's processinfo puts itself back into every child's NODE_OPTIONS; only this turns its coverage
  // off. A tsx child's coverage would otherwise be merged with ts-node's of the same files: V8
  // ranges of one compilation read through the other's source map, which under-reported whole files.
  return { args: ['--import', 'tsx', file, ...args], env: { ...env, _TAPJS_PROCESSINFO_COVERAGE_: '0' } };
}

/**
 * Runs `script` (default: the server) with fixed secrets, cheap bcrypt, logs at info and no
 * Gatehouse setting inherited from the test's environment. Resolves once `readyLog` is logged
 * (default: the server's "listening" line); `readyLog: null` resolves at once.
 */
export async function spawnGatehouse(
  t: Test,
  options: { env?: Record<string, string>; script?: string; args?: string[]; readyLog?: string | null; dataDir?: string; coverage?: boolean } = {},
): Promise<GatehouseProcess> {
  const port = await freePort();
  const dataDir = options.dataDir ?? (await migratedDataDir(t));
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of Object.keys(EnvSchema.properties)) delete env[name];
  Object.assign(env, {
    NODE_ENV: 'development',
    HOST: '127.0.0.1',
    PORT: String(port),
    LOG_LEVEL: 'info',
    DATA_DIR: dataDir,
    JWT_SECRET: 'process-test-jwt-secret-that-is-long-enough-0123',
    PASSWORD_PEPPER: 'process-test-pepper-that-is-long-enough-0123',
    BCRYPT_COST: '4',
    COOKIE_SECURE: 'false',
    ...options.env,
  });
  const node = childNode(options.script ?? 'src/server.ts', options.args ?? [], env, options.coverage ?? true);
  const child = spawn(process.execPath, node.args, { env: node.env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  let partial = '';
  const logs: LogLine[] = [];
  const waiters = new Set<() => void>();
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
    const lines = (partial + chunk).split('\n');
    partial = lines.pop()!;
    for (const text of lines) {
      try {
        logs.push(JSON.parse(text) as LogLine);
      } catch {
        // not a log line: a script's plain output
      }
    }
    for (const wake of waiters) wake();
  });
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => void (stderr += chunk));
  const exit = new Promise<Exit>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal, at: Date.now() })));
  let exited = false;
  void exit.then(() => {
    exited = true;
    for (const wake of waiters) wake();
  });
  t.teardown(async () => {
    if (!exited) {
      child.kill('SIGKILL');
      await exit;
    }
  });

  const proc: GatehouseProcess = {
    child,
    port,
    url: `http://127.0.0.1:${port}`,
    dataDir,
    logs,
    output: () => ({ stdout, stderr }),
    waitForLog(msg, where = () => true, ms = 60_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const found = logs.find((line) => line.msg.includes(msg) && where(line));
          if (found || exited) {
            clearTimeout(timer);
            waiters.delete(check);
            if (found) resolve(found);
            else reject(new Error(`exited before logging "${msg}":\n${stdout}\n${stderr}`));
          }
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`no "${msg}" logged within ${ms} ms:\n${stdout}\n${stderr}`));
        }, ms);
        waiters.add(check);
        check();
      });
    },
    exit,
  };
  if (options.readyLog !== null) await proc.waitForLog(options.readyLog ?? 'Gatehouse listening');
  return proc;
}
