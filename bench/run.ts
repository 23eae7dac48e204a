/**
 * `npm run bench [-- --quick] [-- --only=baseline,protected]`: compiles src/ and bench/ with tsc
 * (tsconfig.bench.json, into build/bench), starts the compiled bench/server.js with plain node in a
 * child process, as `npm start` runs Gatehouse, drives it with autocannon, prints one table and
 * writes it to bench/results/<date>.json.
 * Any error or non-2xx answer fails the run (exit 1); a missed speed target is only reported.
 *
 * Environment: BENCH_DATABASE_URL (a PostgreSQL server: a throwaway database is created on it and
 * dropped afterwards; default: PGlite in a temporary folder), BCRYPT_COST (default 12),
 * BENCH_USERS (10000), BENCH_MANY_USERS (20000), BENCH_DURATION (seconds per scenario: 10, or 2 with --quick),
 * BENCH_CONNECTIONS (10), BENCH_REFRESH_TOKENS (pool size), BENCH_RESULTS_DIR, BENCH_CPU_PROF
 * (a folder: the server writes one V8 CPU profile per scenario there; read them with
 * bench/profile.ts), BENCH_LOG (a pino level for the server's log on stderr; default: none),
 * BENCH_JWT_ALG (the server's JWT_ALG: ES256, the default, or another to compare),
 * BENCH_SERVER_ENV ("NAME=value ...": Gatehouse settings for the server, to try one),
 * BENCH_TSX=1 (run bench/server.ts through tsx instead: no build step, but tsx adds to the RSS),
 * BENCH_NODE_ARGS (node flags for the compiled server, e.g. --trace-gc).
 */
import { fork, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createHmac, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import bcrypt from 'bcrypt';
import { drizzle } from 'drizzle-orm/postgres-js';
import postgres from 'postgres';
import { EnvSchema } from '../src/config.js';
import type { Db } from '../src/db/client.js';
import { listUsers } from '../src/domain/admin-users.js';
import { createPasswordHasher } from '../src/domain/passwords.js';
import {
  PASSWORD,
  type ProfileMessage,
  type ProfiledMessage,
  type PreparedMessage,
  type ReadyMessage,
  type ServerKnobs,
  type ServerMessage,
  type StopMessage,
} from './protocol.js';

const HERE = fileURLToPath(new URL('.', import.meta.url));
const ROOT = resolve(HERE, '..');

// ---------------------------------------------------------------- options

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const only = args.find((a) => a.startsWith('--only='))?.slice('--only='.length).split(',');
const unknown = args.filter((a) => a !== '--quick' && !a.startsWith('--only='));
if (unknown.length) {
  console.error(`bench: unknown argument ${unknown.join(' ')} (known: --quick, --only=name,name)`);
  process.exit(2);
}

function envNumber(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) {
    console.error(`bench: ${name}=${raw} is not a positive number`);
    process.exit(2);
  }
  return value;
}

const options = {
  quick,
  duration: envNumber('BENCH_DURATION', quick ? 2 : 10),
  bcryptCost: envNumber('BCRYPT_COST', 12),
  users: envNumber('BENCH_USERS', 10_000),
  /** Distinct users of many-users, each with a token: more than one access token's worth of cache per user. */
  manyUsers: envNumber('BENCH_MANY_USERS', 20_000),
  connections: envNumber('BENCH_CONNECTIONS', 10),
  loginConnections: 16,
  stormConnections: 64,
  /** The protected route during the storm: a steady load far below capacity, a few requests at a time. */
  stormProbe: { connections: 8, connectionRate: 50 },
  databaseUrl: process.env.BENCH_DATABASE_URL || undefined,
  runtime: process.env.BENCH_TSX === '1' ? 'tsx' : 'node (compiled)',
};
// One fresh token per refresh request: enough for ~3,000 req/s (PostgreSQL) or ~300 (PGlite, one
// in-process connection) over the whole scenario. If the pool runs out first, the scenario ends early
// and its rate is still right (it is counted on our own clock); the note says so.
const refreshPool = Math.ceil(envNumber('BENCH_REFRESH_TOKENS', options.duration * (options.databaseUrl ? 3000 : 300)));
const resultsDir = resolve(process.env.BENCH_RESULTS_DIR ?? join(HERE, 'results'));
const cpuProfDir = process.env.BENCH_CPU_PROF ? resolve(process.env.BENCH_CPU_PROF) : undefined;

const serverEnv = Object.fromEntries(
  (process.env.BENCH_SERVER_ENV ?? '')
    .split(/\s+/)
    .filter(Boolean)
    .map((pair) => {
      const at = pair.indexOf('=');
      if (at < 1) {
        console.error(`bench: BENCH_SERVER_ENV takes NAME=value pairs, not ${pair}`);
        process.exit(2);
      }
      return [pair.slice(0, at), pair.slice(at + 1)];
    }),
);
const jwtAlg = process.env.BENCH_JWT_ALG ?? 'ES256';
if (!['ES256', 'EdDSA', 'RS256', 'HS256'].includes(jwtAlg)) {
  console.error(`bench: BENCH_JWT_ALG=${jwtAlg} is not one of ES256, EdDSA, RS256, HS256`);
  process.exit(2);
}

const TARGETS = {
  protectedRatio: 0.92,
  meRatio: 0.85,
  apiKeyRatio: 0.8,
  loginRatio: 0.97,
  stormP99Ms: 10,
  /** Refresh against the database's own rate of one-row INSERT+COMMIT transactions. */
  refreshWriteRatio: 0.15,
  /** The admin list against the same statement run by the driver itself. */
  dbReadRatio: 0.5,
  manyUsersRatio: 0.6,
  manyUsersP99Ms: 5,
  manyUsersRssMb: 250,
  revocationP99Ms: 100,
  rssMb: 200,
};
/** Both caches hold every user of many-users (and those that login and refresh loaded): the RSS target is with all of them cached. */
const CACHE_MAX = String(Math.max(50_000, 2 * options.manyUsers));
/** Revocations of two-instances: one a second. */
const revocations = Math.max(1, Math.floor(options.duration));

const t0 = performance.now();
const log = (line: string) => process.stderr.write(`[${((performance.now() - t0) / 1000).toFixed(1).padStart(5)} s] ${line}\n`);

// ---------------------------------------------------------------- the server process

/** What the scenarios work with: the prepared data and the listening server. */
type Ready = Omit<PreparedMessage, 'type'> & Omit<ReadyMessage, 'type'>;

interface Server {
  child: ChildProcess;
  pid: number;
  ready: ReadyMessage;
  /** Starts or stops (and saves) a CPU profile of the server; a no-op without BENCH_CPU_PROF. */
  profile(action: 'start' | 'stop', name?: string): Promise<void>;
  stop(): Promise<void>;
}

interface ServerScript {
  file: string;
  execArgv: string[];
}

/** node's own flags in `npm start` (package.json), so the bench runs the server with the same ones. */
function startFlags(): string[] {
  const { scripts } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: { start: string } };
  return scripts.start.split(/\s+/).filter((word) => word.startsWith('--'));
}

/**
 * The server as it runs in production: compiled by tsc, run by node with `npm start`'s flags. The
 * output stays inside the repository so that node_modules resolves from it; src/db/client.ts finds
 * migrations/ from there.
 */
function buildServer(): ServerScript {
  const flags = [...startFlags(), ...(process.env.BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean)];
  if (options.runtime === 'tsx') return { file: join(HERE, 'server.ts'), execArgv: [...flags, '--import', 'tsx'] };
  log('bench: compiling the server (tsc -p tsconfig.bench.json) ...');
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  const built = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.bench.json'], { cwd: ROOT, encoding: 'utf8' });
  if (built.status !== 0) {
    throw new Error(`tsc -p tsconfig.bench.json failed (BENCH_TSX=1 runs without compiling):\n${built.stdout}${built.stderr}${built.error ?? ''}`);
  }
  // outDir of tsconfig.bench.json
  return { file: join(ROOT, 'build', 'bench', 'bench', 'server.js'), execArgv: flags };
}

/** Runs `server.js --prepare` to the end: the data, made in a process that is gone before the server starts. */
async function prepareData(script: ServerScript, env: NodeJS.ProcessEnv): Promise<PreparedMessage> {
  const child = fork(script.file, ['--prepare'], { cwd: ROOT, env, execArgv: script.execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  let prepared: PreparedMessage | undefined;
  let failure: string | undefined;
  child.on('message', (message: ServerMessage) => {
    if (message.type === 'prepared') prepared = message;
    if (message.type === 'failed') failure = message.message;
  });
  const [code, signal] = (await once(child, 'exit')) as [number | null, string | null];
  if (failure) throw new Error(`preparing the bench data failed:\n${failure}`);
  if (!prepared || code !== 0) throw new Error(`preparing the bench data failed (${signal ?? `exit code ${code}`})`);
  return prepared;
}

async function startServer(script: ServerScript, env: NodeJS.ProcessEnv): Promise<Server> {
  // fork with node itself (not the tsx CLI) so that child.pid is the server's own process.
  const child = fork(script.file, [], {
    cwd: ROOT,
    env,
    execArgv: script.execArgv,
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const profiled: ((message: ProfiledMessage) => void)[] = [];
  const ready = await new Promise<ReadyMessage>((resolveReady, reject) => {
    const fail = (error: Error) => {
      clearTimeout(timer);
      child.off('exit', onExit);
      child.kill('SIGKILL');
      reject(error);
    };
    const onExit = (code: number | null, signal: string | null) =>
      fail(new Error(`the bench server exited before it was ready (${signal ?? `code ${code}`})`));
    const timer = setTimeout(() => fail(new Error('the bench server was not ready after 10 minutes')), 600_000);
    child.once('exit', onExit);
    child.on('message', (message: ServerMessage) => {
      if (message.type === 'profiled') return profiled.shift()?.(message);
      if (message.type === 'failed') return fail(new Error(`the bench server failed to start:\n${message.message}`));
      if (message.type !== 'ready') return;
      clearTimeout(timer);
      child.off('exit', onExit);
      resolveReady(message);
    });
  });
  let stopped: Promise<void> | undefined;
  return {
    child,
    pid: child.pid!,
    ready,
    async profile(action, name) {
      if (!cpuProfDir) return;
      const answered = new Promise<ProfiledMessage>((r) => profiled.push(r));
      child.send({ type: 'profile', action, name } satisfies ProfileMessage);
      const { file } = await answered;
      if (file) log(`bench: CPU profile of the server written to ${relative(process.cwd(), file)}`);
    },
    stop() {
      stopped ??= new Promise<void>((resolveStop) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolveStop();
        const kill = setTimeout(() => child.kill('SIGKILL'), 15_000);
        child.once('exit', () => {
          clearTimeout(kill);
          resolveStop();
        });
        if (child.connected) child.send({ type: 'stop' } satisfies StopMessage);
        else child.kill('SIGTERM');
      });
      return stopped;
    },
  };
}

function procStatusKb(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  try {
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) : 0;
  } catch {
    return 0; // not Linux, or the process is gone
  }
}

/** Peak resident memory of the server while a scenario runs, sampled every 100 ms. */
function sampleRss(pid: number): () => number {
  let peak = procStatusKb(pid, 'VmRSS');
  const timer = setInterval(() => (peak = Math.max(peak, procStatusKb(pid, 'VmRSS'))), 100);
  return () => {
    clearInterval(timer);
    return Math.max(peak, procStatusKb(pid, 'VmRSS')) / 1024;
  };
}

function cpuTicks(pid: number): number | undefined {
  try {
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th overall.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return undefined;
  }
}

/** /proc CPU times are in clock ticks: 100 a second on Linux (getconf CLK_TCK). */
const TICK_MS = 10;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Waits until the server is idle. A client that gave up (autocannon stops mid-request) does not
 * stop the server's work: logins still queued for bcrypt would run into the next scenario.
 */
async function settle(pid: number, maxMs = 120_000): Promise<void> {
  const deadline = Date.now() + maxMs;
  let before = cpuTicks(pid);
  if (before === undefined) return sleep(1000);
  while (Date.now() < deadline) {
    await sleep(500);
    const now = cpuTicks(pid);
    if (now === undefined) return;
    // Ticks are 10 ms: at most 5 in 500 ms means under 10% of one core.
    if (now - before <= 5) return;
    before = now;
  }
  log('bench: the server did not settle; going on anyway');
}

// ---------------------------------------------------------------- measuring

interface Measured {
  name: string;
  requestsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  requests: number;
  errors: number;
  timeouts: number;
  non2xx: number;
  statusCodes: Record<string, number>;
  seconds: number;
  peakRssMb: number;
  /** CPU time of the server process (all its threads) per answered request: steadier than req/s on a busy machine. */
  serverCpuMsPerRequest: number;
  note?: string;
}

function percentile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

const round = (n: number, digits = 2) => Math.round(n * 10 ** digits) / 10 ** digits;

/**
 * One autocannon run. Latencies are kept from autocannon's per-response event, in fractions of a
 * millisecond (its own histogram rounds to whole ms), and the rate is counted from the start to the
 * last response, so a run that ends early (an exhausted token pool) is not diluted by idle time.
 */
type Loaded = Omit<Measured, 'peakRssMb' | 'serverCpuMsPerRequest'> & { latencies: Float64Array };

async function load(name: string, opts: autocannon.Options, pid: number): Promise<Loaded> {
  const latencies: number[] = [];
  let lastResponse = 0;
  const started = performance.now();
  const result = await new Promise<autocannon.Result>((resolveRun, reject) => {
    // Our own latencies are kept raw; autocannon's coordinated-omission fill-in assumes one request
    // every 1/rate ms, which its per-second bursts do not do.
    const raw = opts.connectionRate || opts.overallRate ? { ignoreCoordinatedOmission: true } : {};
    const instance = autocannon({ ...opts, ...raw }, (err, res) => (err ? reject(err) : resolveRun(res)));
    instance.on('response', (_client, _status, _bytes, ms) => {
      latencies.push(ms);
      lastResponse = performance.now();
    });
  });
  const sorted = Float64Array.from(latencies).sort();
  const elapsed = ((lastResponse || performance.now()) - started) / 1000;
  const statusCodes: Record<string, number> = {};
  for (const [code, { count = 0 }] of Object.entries(result.statusCodeStats ?? {})) statusCodes[code] = count;
  if (!cpuTicks(pid)) throw new Error(`the bench server died during ${name}`);
  return {
    name,
    requestsPerSec: round(latencies.length / elapsed, 1),
    p50Ms: round(percentile(sorted, 0.5)),
    p99Ms: round(percentile(sorted, 0.99)),
    requests: latencies.length,
    errors: result.errors,
    timeouts: result.timeouts,
    non2xx: result.non2xx,
    statusCodes,
    seconds: round(elapsed),
    latencies: sorted,
  };
}

interface BcryptRate {
  perSec: number;
  concurrency: number;
  compares: number;
  seconds: number;
}

/** The machine's bcrypt rate: compares on every core at once, as Gatehouse makes them (passwords.ts). */
async function bcryptRate(cost: number, pepper: string, seconds: number): Promise<BcryptRate> {
  const hash = await createPasswordHasher({ pepper, cost }).hash(PASSWORD);
  // passwords.ts verifies bcrypt over base64(HMAC-SHA256(password, pepper)); done here directly so
  // the rate is the machine's, whatever limits Gatehouse itself puts on concurrent compares.
  const prepared = createHmac('sha256', pepper).update(PASSWORD.normalize('NFKC'), 'utf8').digest('base64');
  const concurrency = availableParallelism();
  const started = performance.now();
  const deadline = started + seconds * 1000;
  let compares = 0;
  let last = started;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < deadline) {
        if (!(await bcrypt.compare(prepared, hash))) throw new Error('bcrypt compare failed');
        compares++;
        last = performance.now();
      }
    }),
  );
  const elapsed = (last - started) / 1000;
  return { perSec: round(compares / elapsed), concurrency, compares, seconds: round(elapsed) };
}

/**
 * The database's own ceiling for some work: `connections` workers of the driver each running `task`
 * back to back through postgres.js for `seconds`, counted and timed like an autocannon run.
 */
async function driverLoad(name: string, connections: number, seconds: number, task: () => Promise<unknown>): Promise<Loaded> {
  const latencies: number[] = [];
  const started = performance.now();
  const deadline = started + seconds * 1000;
  let last = started;
  let errors = 0;
  await Promise.all(
    Array.from({ length: connections }, async () => {
      while (performance.now() < deadline) {
        const sent = performance.now();
        try {
          await task();
        } catch (err) {
          if (++errors === 1) log(`bench: ${name}: ${err instanceof Error ? err.message : String(err)}`);
          continue;
        }
        last = performance.now();
        latencies.push(last - sent);
      }
    }),
  );
  const sorted = Float64Array.from(latencies).sort();
  const elapsed = (last - started) / 1000;
  return {
    name,
    requestsPerSec: round(latencies.length / elapsed, 1),
    p50Ms: round(percentile(sorted, 0.5)),
    p99Ms: round(percentile(sorted, 0.99)),
    requests: latencies.length,
    errors,
    timeouts: 0,
    non2xx: 0,
    statusCodes: {},
    seconds: round(elapsed),
    latencies: sorted,
  };
}

/** A postgres.js pool of the driver's own on the bench database, as many connections as the scenario has. */
function driverClient(url: string, extra: postgres.Options<Record<string, postgres.PostgresType>> = {}) {
  return postgres(url, { max: options.connections, onnotice: () => {}, ...extra });
}

/**
 * The statement `GET /admin/users?limit=10` runs, as postgres.js receives it: listUsers run once
 * here through drizzle on a client of the driver's own, which logs it (postgres.js's `debug`).
 */
async function adminListStatement(url: string): Promise<{ query: string; params: unknown[] }> {
  let captured: { query: string; params: unknown[] } | undefined;
  const client = postgres(url, { max: 1, onnotice: () => {}, debug: (_connection, query, params) => (captured ??= { query, params }) });
  try {
    await listUsers(drizzle(client) as unknown as Db, { limit: 10 });
  } finally {
    await client.end({ timeout: 5 });
  }
  if (!captured) throw new Error('listUsers ran no statement');
  return captured;
}

// ---------------------------------------------------------------- scenarios

interface Context {
  base: string;
  ready: Ready;
  server: Server;
  /** The bench database, for the driver's own ceilings (undefined on PGlite, which only the server can open). */
  databaseUrl?: string;
  script: ServerScript;
  env: NodeJS.ProcessEnv;
  /** Said under the tables: a scenario or target skipped, and why. */
  notes: string[];
  /** Set by many-users: the server's RSS once every one of its users was cached. */
  manyUsersCachedRssMb?: number;
}

const json = { 'content-type': 'application/json' };

function cycle<T>(items: T[]): () => T {
  let i = 0;
  return () => items[i++ % items.length]!;
}

const SCENARIOS = ['baseline', 'protected', 'me', 'apikey', 'refresh', 'write-ceiling', 'login', 'admin-users', 'db-read', 'storm', 'many-users', 'two-instances'] as const;
type ScenarioName = (typeof SCENARIOS)[number];

const TITLES: Record<string, string> = {
  baseline: '1. baseline: public no-op route',
  protected: "2. protected: no-op route, permission 'read'",
  me: '3. GET /auth/me',
  apikey: "3b. protected, with an API key (X-API-Key)",
  refresh: '4. POST /auth/refresh (fresh token each)',
  'write-ceiling': `   one-row INSERT+COMMIT rate (driver, ${options.connections} connections)`,
  login: `5. POST /auth/login (${options.loginConnections} connections)`,
  bcrypt: `   bcrypt.compare rate, cost ${options.bcryptCost} (driver, all cores)`,
  'admin-users': '6. GET /admin/users?limit=50 (admin)',
  'db-read': '6b. GET /admin/users?limit=10 (admin)',
  'db-read-ceiling': `   its SQL statement (driver, ${options.connections} connections)`,
  'storm-probe': `7. protected during login storm (${options.stormProbe.connections}x${options.stormProbe.connectionRate} req/s)`,
  'storm-login': `   the login storm (${options.stormConnections} connections)`,
  'many-users-first': `8. GET /auth/me, each of ${options.manyUsers} users' first request (both caches miss)`,
  'many-users-baseline': '   baseline, next to many-users',
  'many-users-protected': `   protected, ${options.manyUsers} users' tokens in turn`,
  'many-users-me': `   GET /auth/me, ${options.manyUsers} users' tokens in turn`,
  'two-instances-a': `9. two instances: protected on A (${Math.ceil(options.connections / 2)} connections)`,
  'two-instances-b': `   protected on B (${Math.ceil(options.connections / 2)} connections)`,
  'two-instances-revocation': '   revoked through A until B refuses (ms)',
};

function loginRequests(ready: Ready): autocannon.Request[] {
  const nextEmail = cycle(ready.loginEmails);
  return [{ method: 'POST', path: '/auth/login', headers: json, setupRequest: (req) => ({ ...req, body: JSON.stringify({ email: nextEmail(), password: PASSWORD }) }) }];
}

/** Peak RSS and CPU time of the server while `run` runs. */
async function watch<T>(server: Server, name: string, run: () => Promise<T>): Promise<{ value: T; peakRssMb: number; cpuMs: number }> {
  await server.profile('start');
  const rss = sampleRss(server.pid);
  const cpuBefore = cpuTicks(server.pid) ?? 0;
  const value = await run();
  const cpuMs = ((cpuTicks(server.pid) ?? 0) - cpuBefore) * TICK_MS;
  const peakRssMb = round(rss(), 1);
  await server.profile('stop', name);
  return { value, peakRssMb, cpuMs };
}

const perRequest = (cpuMs: number, requests: number) => (requests ? round(cpuMs / requests, 3) : 0);

async function measure(name: string, opts: autocannon.Options, server: Server): Promise<Measured> {
  await settle(server.pid);
  log(`bench: ${TITLES[name] ?? name} ...`);
  const { value, peakRssMb, cpuMs } = await watch(server, name, () => load(name, opts, server.pid));
  const { latencies: _, ...measured } = value;
  return { ...measured, peakRssMb, serverCpuMsPerRequest: perRequest(cpuMs, value.requests) };
}

/**
 * Scenarios whose ratio is a target, measured in alternating slices (A B C A B C ...) rather than
 * one after the other: a noisy neighbour slowing the machine for a few seconds then slows each of
 * them alike instead of one. Each scenario gets `duration` seconds in all.
 */
async function measureInterleaved(runs: { name: string; opts: autocannon.Options }[], server: Server, rounds: number): Promise<Measured[]> {
  await settle(server.pid);
  log(`bench: ${runs.map((r) => (TITLES[r.name] ?? r.name).trim()).join(', ')}, in ${rounds} alternating slices ...`);
  const slices = new Map(runs.map((r) => [r.name, [] as Sliced[]]));
  for (let slice = 1; slice <= rounds; slice++) {
    for (const { name, opts } of runs) {
      const duration = options.duration / rounds;
      const { value, peakRssMb, cpuMs } = await watch(server, `${name}-${slice}`, () => load(name, { ...opts, duration }, server.pid));
      slices.get(name)!.push({ loaded: value, peakRssMb, cpuMs });
    }
  }
  return runs.map(({ name }) => mergeSlices(name, slices.get(name)!));
}

interface Sliced {
  loaded: Loaded;
  peakRssMb: number;
  cpuMs: number;
}

/** One scenario's result from its slices: counts and times added, latencies pooled, peaks maxed. */
function mergeSlices(name: string, parts: Sliced[]): Measured {
  const sum = (f: (loaded: Loaded) => number) => parts.reduce((total, p) => total + f(p.loaded), 0);
  const latencies = Float64Array.from(parts.flatMap((p) => [...p.loaded.latencies])).sort();
  const statusCodes: Record<string, number> = {};
  for (const { loaded } of parts) for (const [code, count] of Object.entries(loaded.statusCodes)) statusCodes[code] = (statusCodes[code] ?? 0) + count;
  const requests = sum((l) => l.requests);
  const seconds = sum((l) => l.seconds);
  return {
    name,
    requestsPerSec: seconds ? round(requests / seconds, 1) : 0,
    p50Ms: round(percentile(latencies, 0.5)),
    p99Ms: round(percentile(latencies, 0.99)),
    requests,
    errors: sum((l) => l.errors),
    timeouts: sum((l) => l.timeouts),
    non2xx: sum((l) => l.non2xx),
    statusCodes,
    seconds: round(seconds),
    peakRssMb: Math.max(0, ...parts.map((p) => p.peakRssMb)),
    serverCpuMsPerRequest: perRequest(parts.reduce((total, p) => total + p.cpuMs, 0), requests),
  };
}

/**
 * Login and the bcrypt rate it is held against, in alternating slices (bcrypt, login, bcrypt,
 * login): the ratio is a target, and the two cannot run at once (they would share the cores).
 */
async function measureLogin(ctx: Context, pepper: string, rounds: number): Promise<{ login: Measured; compares: BcryptRate }> {
  const { server, ready } = ctx;
  const bcryptSeconds = Math.min(options.duration, quick ? 2 : 6);
  const logins: Sliced[] = [];
  const rates: BcryptRate[] = [];
  for (let slice = 1; slice <= rounds; slice++) {
    await settle(server.pid);
    log(`bench: ${TITLES.bcrypt!.trim()}${rounds > 1 ? ` (slice ${slice} of ${rounds})` : ''} ...`);
    rates.push(await bcryptRate(options.bcryptCost, pepper, bcryptSeconds / rounds));
    // Logins still queued for bcrypt when a slice ends are finished by the server before the next.
    await settle(server.pid);
    log(`bench: ${TITLES.login!}${rounds > 1 ? ` (slice ${slice} of ${rounds})` : ''} ...`);
    // Requests queue for bcrypt: give them time rather than count them as timeouts.
    const opts = { url: ctx.base, connections: options.loginConnections, duration: options.duration / rounds, timeout: 300, requests: loginRequests(ready) };
    const { value, peakRssMb, cpuMs } = await watch(server, `login-${slice}`, () => load('login', opts, server.pid));
    logins.push({ loaded: value, peakRssMb, cpuMs });
  }
  const compares = rates.reduce((total, r) => total + r.compares, 0);
  const seconds = rates.reduce((total, r) => total + r.seconds, 0);
  return {
    login: mergeSlices('login', logins),
    compares: { perSec: round(compares / seconds), concurrency: rates[0]!.concurrency, compares, seconds: round(seconds) },
  };
}

type ReadName = 'baseline' | 'protected' | 'me' | 'apikey';
/** The read scenarios whose ratios to the baseline are targets: measured interleaved, as one step. */
const RATIOS: ScenarioName[] = ['baseline', 'protected', 'me', 'apikey'];

/** The autocannon options of the read scenarios. */
function readScenario(name: ReadName, { base, ready }: Context): { name: string; opts: autocannon.Options } {
  const common = { connections: options.connections, duration: options.duration };
  const userAuth = { authorization: `Bearer ${ready.userToken}` };
  const urls: Record<ReadName, string> = { baseline: '/baseline', protected: '/protected', me: '/auth/me', apikey: '/protected' };
  const headers = name === 'baseline' ? undefined : name === 'apikey' ? { 'x-api-key': ready.userApiKey } : userAuth;
  return { name, opts: { ...common, url: `${base}${urls[name]}`, ...(headers ? { headers } : {}) } };
}

/**
 * many-users: first every user's first request (/auth/me), where both caches miss: the miss path's
 * rate, reported without a target. Then the protected route and /auth/me, each request with the
 * next user's token in turn (one turn shared by both), with all of them cached as the active users
 * of a production server are, next to a baseline of their own, interleaved: the targets. Run after
 * the single-user scenarios, whose memory is measured without those users.
 */
async function measureManyUsers(ctx: Context): Promise<Measured[]> {
  const { base, ready, server } = ctx;
  const tokens = ready.manyTokens;
  let turn = 0;
  const nextUser = (req: autocannon.Request) => ({ ...req, headers: { ...req.headers, authorization: `Bearer ${tokens[turn++ % tokens.length]!}` } });
  await settle(server.pid);
  log(`bench: ${TITLES['many-users-first']} ...`);
  const first = await watch(server, 'many-users-first', () =>
    load('many-users-first', { url: base, connections: options.connections, amount: tokens.length, requests: [{ method: 'GET', path: '/auth/me', setupRequest: nextUser }] }, server.pid),
  );
  const { latencies: _, ...firstMeasured } = first.value;
  if (first.value.errors || first.value.non2xx) throw new Error(`many-users: the first requests failed: ${JSON.stringify(first.value.statusCodes)}`);
  const common = { connections: options.connections, duration: options.duration };
  const runs = [
    { name: 'many-users-baseline', opts: { ...common, url: `${base}/baseline` } },
    { name: 'many-users-protected', opts: { ...common, url: base, requests: [{ method: 'GET' as const, path: '/protected', setupRequest: nextUser }] } },
    { name: 'many-users-me', opts: { ...common, url: base, requests: [{ method: 'GET' as const, path: '/auth/me', setupRequest: nextUser }] } },
  ];
  const measured = await measureInterleaved(runs, server, quick ? 1 : 5);
  await settle(server.pid);
  measured.unshift({ ...firstMeasured, peakRssMb: first.peakRssMb, serverCpuMsPerRequest: perRequest(first.cpuMs, first.value.requests) });
  ctx.manyUsersCachedRssMb = round(Math.max(procStatusKb(server.pid, 'VmRSS') / 1024, ...measured.map((m) => m.peakRssMb)), 1);
  return measured;
}

/**
 * Refresh and, on PostgreSQL, the database's own rate of one-row INSERT+COMMIT transactions (a
 * table of the driver's own, one autocommitted insert each: one commit, as a refresh is one
 * statement), in alternating slices like login and bcrypt: the server idle during the driver's.
 */
async function measureRefresh(ctx: Context, pool: string[], withCeiling: boolean, rounds: number): Promise<Measured[]> {
  const { base, server, ready } = ctx;
  const client = withCeiling && ctx.databaseUrl ? driverClient(ctx.databaseUrl) : undefined;
  const refreshes: Sliced[] = [];
  const writes: Sliced[] = [];
  try {
    if (client) await client`create table if not exists bench_writes (id bigserial primary key, written_at timestamptz not null default now(), note text not null)`;
    for (let slice = 1; slice <= rounds; slice++) {
      const of = rounds > 1 ? ` (slice ${slice} of ${rounds})` : '';
      if (client) {
        await settle(server.pid);
        log(`bench: ${TITLES['write-ceiling']!.trim()}${of} ...`);
        writes.push({ loaded: await driverLoad('write-ceiling', options.connections, options.duration / rounds, () => client`insert into bench_writes (note) values (${'bench'})`), peakRssMb: 0, cpuMs: 0 });
      }
      if (pool.length === 0) continue;
      await settle(server.pid);
      log(`bench: ${TITLES.refresh!}${of} ...`);
      const opts: autocannon.Options = {
        url: base,
        connections: options.connections,
        duration: options.duration / rounds,
        // Never more requests than tokens: autocannon ends the run early instead.
        maxOverallRequests: pool.length,
        requests: [
          {
            method: 'POST',
            path: '/auth/refresh',
            headers: json,
            setupRequest: (req) => ({ ...req, body: JSON.stringify({ refreshToken: pool.pop() }) }),
          },
        ],
      };
      const { value, peakRssMb, cpuMs } = await watch(server, `refresh-${slice}`, () => load('refresh', opts, server.pid));
      refreshes.push({ loaded: value, peakRssMb, cpuMs });
    }
  } finally {
    await client?.end({ timeout: 5 });
  }
  const measured = mergeSlices('refresh', refreshes);
  if (pool.length === 0) {
    measured.note = `token pool (${ready.refreshTokens.length}) used up after ${measured.seconds} s: raise BENCH_REFRESH_TOKENS for a longer run`;
  }
  return writes.length ? [measured, { ...mergeSlices('write-ceiling', writes), peakRssMb: 0 }] : [measured];
}

/**
 * db-read: the admin list's first page of 10, and on PostgreSQL the very statement it runs, run by
 * the driver itself through postgres.js at the same concurrency (prepared, as the server's pool
 * does): that read's ceiling on this database. Alternating slices, the server idle during the driver's.
 */
async function measureDbRead(ctx: Context, rounds: number): Promise<Measured[]> {
  const { base, server, ready } = ctx;
  const route = { url: `${base}/admin/users?limit=10`, connections: options.connections, headers: { authorization: `Bearer ${ready.adminToken}` } };
  if (!ctx.databaseUrl) {
    ctx.notes.push('db-read: no ceiling on PGlite (only the server can open the embedded database); the route alone, its target skipped');
    return [await measure('db-read', { ...route, duration: options.duration }, server)];
  }
  const statement = await adminListStatement(ctx.databaseUrl);
  const client = driverClient(ctx.databaseUrl);
  const reads: Sliced[] = [];
  const ceiling: Sliced[] = [];
  try {
    for (let slice = 1; slice <= rounds; slice++) {
      const of = rounds > 1 ? ` (slice ${slice} of ${rounds})` : '';
      await settle(server.pid);
      log(`bench: ${TITLES['db-read-ceiling']!.trim()}${of} ...`);
      const run = () => client.unsafe(statement.query, statement.params as postgres.ParameterOrJSON<never>[], { prepare: true });
      ceiling.push({ loaded: await driverLoad('db-read-ceiling', options.connections, options.duration / rounds, run), peakRssMb: 0, cpuMs: 0 });
      await settle(server.pid);
      log(`bench: ${TITLES['db-read']!}${of} ...`);
      const { value, peakRssMb, cpuMs } = await watch(server, `db-read-${slice}`, () => load('db-read', { ...route, duration: options.duration / rounds }, server.pid));
      reads.push({ loaded: value, peakRssMb, cpuMs });
    }
  } finally {
    await client.end({ timeout: 5 });
  }
  return [mergeSlices('db-read', reads), mergeSlices('db-read-ceiling', ceiling)];
}

/**
 * two-instances: a second server (B) on the same database; the protected route loaded on both at
 * once; meanwhile, once a second, a user's sessions are revoked through A (the admin API) and B is
 * asked with that user's token, back to back, until it refuses. The time is counted from sending
 * the revocation to A to B's first refusal: an upper bound, A's own answer included.
 */
async function measureTwoInstances(ctx: Context, started: Server[]): Promise<Measured[]> {
  const { ready, server: a } = ctx;
  log('bench: two-instances: starting instance B on the same database ...');
  const b = await startServer(ctx.script, ctx.env);
  started.push(b);
  const baseA = ctx.base;
  const baseB = `http://127.0.0.1:${b.ready.port}`;
  const userAuth = { authorization: `Bearer ${ready.userToken}` };
  const connections = Math.ceil(options.connections / 2);
  await load('warm-up-b', { url: `${baseB}/protected`, headers: userAuth, connections, duration: 1 }, b.pid);
  await settle(a.pid);
  await settle(b.pid);
  log(`bench: ${TITLES['two-instances-a']}, ${TITLES['two-instances-b']!.trim()}, ${revocations} revocations ...`);

  const propagation: number[] = [];
  /** Of each propagation, the part until A answered the revocation: the rest is B hearing of it. */
  const answeredByA: number[] = [];
  let refusedLate = 0;
  const revoke = async () => {
    const t = performance.now();
    for (const [i, victim] of ready.revocationVictims.slice(0, revocations).entries()) {
      await sleep(Math.max(0, t + 500 + i * 1000 - performance.now()));
      const auth = { authorization: `Bearer ${victim.token}` };
      // B knows the user (and has verified the token) before the revocation.
      const before = await fetch(`${baseB}/protected`, { headers: auth });
      await before.arrayBuffer();
      if (before.status !== 200) throw new Error(`two-instances: instance B answered ${before.status} before the revocation`);
      const sent = performance.now();
      const revoked = await fetch(`${baseA}/admin/users/${victim.userId}/sessions/revoke`, { method: 'POST', headers: { authorization: `Bearer ${ready.adminToken}` } });
      await revoked.arrayBuffer();
      if (revoked.status !== 204) throw new Error(`two-instances: the revocation through A answered ${revoked.status}`);
      answeredByA.push(performance.now() - sent);
      for (;;) {
        const answer = await fetch(`${baseB}/protected`, { headers: auth });
        await answer.arrayBuffer();
        if (answer.status === 401) break;
        if (performance.now() - sent > 10_000) {
          refusedLate++;
          break;
        }
      }
      propagation.push(performance.now() - sent);
    }
  };

  const rssB = sampleRss(b.pid);
  const cpuB = cpuTicks(b.pid) ?? 0;
  const { value, peakRssMb, cpuMs } = await watch(a, 'two-instances', () =>
    Promise.all([
      load('two-instances-a', { url: `${baseA}/protected`, headers: userAuth, connections, duration: options.duration }, a.pid),
      load('two-instances-b', { url: `${baseB}/protected`, headers: userAuth, connections, duration: options.duration }, b.pid),
      revoke(),
    ]),
  );
  const peakRssMbB = round(rssB(), 1);
  const cpuMsB = ((cpuTicks(b.pid) ?? 0) - cpuB) * TICK_MS;
  await b.stop();
  const [onA, onB] = value;
  const strip = ({ latencies: _, ...rest }: Loaded) => rest;
  const sorted = Float64Array.from(propagation).sort();
  const seconds = onA.seconds;
  // Where the slowest went: A's answer (its transaction and NOTIFY, or the bench's own event loop) or B.
  const slowest = propagation.indexOf(Math.max(...propagation));
  return [
    { ...strip(onA), peakRssMb, serverCpuMsPerRequest: perRequest(cpuMs, onA.requests) },
    { ...strip(onB), peakRssMb: peakRssMbB, serverCpuMsPerRequest: perRequest(cpuMsB, onB.requests) },
    {
      name: 'two-instances-revocation',
      requestsPerSec: round(propagation.length / seconds, 1),
      p50Ms: round(percentile(sorted, 0.5)),
      p99Ms: round(percentile(sorted, 0.99)),
      requests: propagation.length,
      ...(slowest >= 0
        ? { note: `A answered the revocation in p50 ${round(percentile(Float64Array.from(answeredByA).sort(), 0.5))} ms; the slowest took ${round(propagation[slowest]!)} ms, ${round(answeredByA[slowest]!)} ms of it until A answered` }
        : {}),
      // B still accepting the token 10 s after the revocation counts as an error.
      errors: refusedLate,
      timeouts: refusedLate,
      non2xx: 0,
      statusCodes: {},
      seconds,
      peakRssMb: Math.max(peakRssMb, peakRssMbB),
      serverCpuMsPerRequest: 0,
    },
  ];
}

async function runScenario(name: ScenarioName, ctx: Context, pools: { refresh: string[] }, selected: readonly ScenarioName[], started: Server[]): Promise<Measured[]> {
  const { base, ready, server } = ctx;
  const common = { url: base, connections: options.connections, duration: options.duration };
  const userAuth = { authorization: `Bearer ${ready.userToken}` };
  const postgresOnly = (what: string) => {
    ctx.notes.push(`${what}: skipped on PGlite (only the server process can open the embedded database); BENCH_DATABASE_URL runs it`);
    return [];
  };
  switch (name) {
    case 'baseline':
    case 'protected':
    case 'me':
    case 'apikey': {
      const { opts } = readScenario(name, ctx);
      return [await measure(name, opts, server)];
    }
    case 'refresh':
    case 'write-ceiling': {
      // Measured together, where the first of the two is; write-ceiling alone is the ceiling alone.
      if (name === 'write-ceiling' && selected.includes('refresh')) return ctx.databaseUrl ? [] : postgresOnly('write-ceiling, and the refresh target');
      if (name === 'write-ceiling' && !ctx.databaseUrl) return postgresOnly('write-ceiling');
      const withCeiling = selected.includes('write-ceiling') && Boolean(ctx.databaseUrl);
      const measured = await measureRefresh(ctx, name === 'refresh' ? pools.refresh : [], withCeiling, quick ? 1 : 2);
      return name === 'refresh' ? measured : measured.filter((m) => m.name === 'write-ceiling');
    }
    case 'db-read':
      return measureDbRead(ctx, quick ? 1 : 2);
    case 'many-users':
      return measureManyUsers(ctx);
    case 'two-instances':
      return ctx.databaseUrl ? measureTwoInstances(ctx, started) : postgresOnly('two-instances');
    case 'login':
      throw new Error('login is measured by measureLogin, next to the bcrypt rate');
    case 'admin-users':
      return [await measure(name, { ...common, url: `${base}/admin/users?limit=50`, headers: { authorization: `Bearer ${ready.adminToken}` } }, server)];
    case 'storm': {
      const { pid } = server;
      await settle(pid);
      log(`bench: ${TITLES['storm-probe']}, with ${TITLES['storm-login']!.trim()} ...`);
      const { value, peakRssMb, cpuMs } = await watch(server, name, () =>
        Promise.all([
          load('storm-probe', { url: `${base}/protected`, headers: userAuth, duration: options.duration, ...options.stormProbe }, pid),
          load(
            'storm-login',
            {
              url: base,
              connections: options.stormConnections,
              // --quick: one login per connection, however long they take. Its second or two may
              // otherwise end before a loaded machine answers any login, and a storm of none is a failed run.
              ...(quick ? { amount: options.stormConnections } : { duration: options.duration }),
              timeout: 300,
              requests: loginRequests(ready),
            },
            pid,
          ),
        ]),
      );
      const [probe, storm] = value;
      // The server's CPU goes to both at once: shown per request of both together.
      const serverCpuMsPerRequest = perRequest(cpuMs, probe.requests + storm.requests);
      return [
        { ...probe, peakRssMb, serverCpuMsPerRequest },
        { ...storm, peakRssMb, serverCpuMsPerRequest },
      ];
    }
  }
}

// ---------------------------------------------------------------- the run

interface Target {
  name: string;
  measured: number;
  unit: string;
  goal: string;
  pass: boolean;
}

function targetsOf(byName: Map<string, Measured>, bcryptPerSec: number | undefined, peakRssMb: number, manyUsersCachedRssMb: number | undefined): Target[] {
  const targets: Target[] = [];
  const rps = (name: string) => byName.get(name)?.requestsPerSec;
  const ratio = (name: string, measured: number | undefined, over: number | undefined, min: number) => {
    if (measured === undefined || !over) return;
    const value = round(measured / over, 3);
    targets.push({ name, measured: value, unit: 'x', goal: `>= ${min}x`, pass: value >= min });
  };
  ratio('protected / baseline', rps('protected'), rps('baseline'), TARGETS.protectedRatio);
  ratio('/auth/me / baseline', rps('me'), rps('baseline'), TARGETS.meRatio);
  ratio('protected with an API key / baseline', rps('apikey'), rps('baseline'), TARGETS.apiKeyRatio);
  ratio('login / bcrypt compare rate', rps('login'), bcryptPerSec, TARGETS.loginRatio);
  const below = (name: string, measured: number | undefined, max: number, unit: string) => {
    if (measured !== undefined) targets.push({ name, measured, unit: ` ${unit}`, goal: `< ${max} ${unit}`, pass: measured < max });
  };
  below('protected p99 during login storm', byName.get('storm-probe')?.p99Ms, TARGETS.stormP99Ms, 'ms');
  ratio('refresh / INSERT+COMMIT rate', rps('refresh'), rps('write-ceiling'), TARGETS.refreshWriteRatio);
  ratio('admin list of 10 / its SQL statement', rps('db-read'), rps('db-read-ceiling'), TARGETS.dbReadRatio);
  ratio('many-users protected / baseline', rps('many-users-protected'), rps('many-users-baseline'), TARGETS.manyUsersRatio);
  ratio('many-users /auth/me / baseline', rps('many-users-me'), rps('many-users-baseline'), TARGETS.manyUsersRatio);
  const manyP99 = ['many-users-protected', 'many-users-me'].flatMap((n) => byName.get(n)?.p99Ms ?? []);
  below('many-users p99 (worse of the two)', manyP99.length ? Math.max(...manyP99) : undefined, TARGETS.manyUsersP99Ms, 'ms');
  below('server RSS, every many-users user cached', manyUsersCachedRssMb, TARGETS.manyUsersRssMb, 'MB');
  below('revocation through A seen by B, p99', byName.get('two-instances-revocation')?.p99Ms, TARGETS.revocationP99Ms, 'ms');
  if (peakRssMb > 0) below('server peak RSS, single-user scenarios', peakRssMb, TARGETS.rssMb, 'MB');
  return targets;
}

function table(header: string[], rows: (string | number)[][], rightFrom = 1): string {
  const cells = [header, ...rows.map((r) => r.map(String))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => `| ${r.map((c, i) => (i >= rightFrom ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join(' | ')} |`;
  const rule = `|${widths.map((w, i) => (i >= rightFrom ? `${'-'.repeat(w + 1)}:` : `${'-'.repeat(w + 2)}`)).join('|')}|`;
  return [line(header), rule, ...cells.slice(1).map(line)].join('\n');
}

async function openDatabase(): Promise<{ url?: string; drop(): Promise<void> }> {
  if (!options.databaseUrl) return { drop: async () => {} };
  // A throwaway database on the given server: repeatable runs, and nothing in the named database is touched.
  const name = `gatehouse_bench_${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`;
  const admin = postgres(options.databaseUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database "${name}"`);
  const url = new URL(options.databaseUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async drop() {
      await admin.unsafe(`drop database if exists "${name}" with (force)`);
      await admin.end({ timeout: 5 });
    },
  };
}

async function main(): Promise<number> {
  const selected = SCENARIOS.filter((s) => !only || only.includes(s));
  if (only && selected.length !== only.length) {
    console.error(`bench: --only takes some of ${SCENARIOS.join(', ')}`);
    return 2;
  }
  const startedAt = new Date();
  const machine = {
    cpus: availableParallelism(),
    model: cpus()[0]?.model.trim() ?? 'unknown',
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
    loadAverageBefore: loadavg().map((l) => round(l)),
  };
  const script = buildServer();
  const dataDir = mkdtempSync(join(tmpdir(), 'gatehouse-bench-'));
  const database = await openDatabase();
  const notes: string[] = [];
  const pepper = randomBytes(32).toString('base64url');
  const env: NodeJS.ProcessEnv = { ...process.env };
  // Gatehouse reads only what the bench sets: nothing leaks in from the caller's own configuration.
  for (const key of Object.keys(EnvSchema.properties)) delete env[key];
  Object.assign(env, {
    NODE_ENV: 'production',
    // No mail server in a bench: production refuses to start without one unless told so.
    MAIL_TRANSPORT: 'log',
    LOG_LEVEL: 'silent',
    DATA_DIR: dataDir,
    JWT_SECRET: randomBytes(32).toString('base64url'),
    PASSWORD_PEPPER: pepper,
    // ES256, the default, unless BENCH_JWT_ALG says otherwise (HS256, to compare): the report says which.
    JWT_ALG: jwtAlg,
    // Production requires the key ring for secrets at rest (TOTP secrets, signing keys).
    ENCRYPTION_KEYS: `bench:${randomBytes(32).toString('base64')}`,
    BCRYPT_COST: String(options.bcryptCost),
    // The whole run must fit in one access token's lifetime.
    ACCESS_TOKEN_TTL: '2h',
    // All the load comes from one address: per-IP limits would answer 429 (they still run, and cost).
    RATE_LIMIT_LOGIN: '1000000000/1s',
    RATE_LIMIT_REFRESH: '1000000000/1s',
    RATE_LIMIT_API_KEY: '1000000000/1s',
    RATE_LIMIT_API_KEY_LOOKUPS: '1000000000/1s',
    ...(database.url ? { DATABASE_URL: database.url } : {}),
    BENCH_USERS: String(options.users),
    BENCH_REFRESH_TOKENS: String(selected.includes('refresh') ? refreshPool : options.connections),
    BENCH_MANY_USERS: String(selected.includes('many-users') ? options.manyUsers : 0),
    BENCH_REVOCATIONS: String(selected.includes('two-instances') && database.url ? revocations : 0),
    AUTHZ_CACHE_MAX: CACHE_MAX,
    VERIFIED_TOKEN_CACHE_MAX: CACHE_MAX,
    ...(cpuProfDir ? { BENCH_CPU_PROF: cpuProfDir } : {}),
  } satisfies NodeJS.ProcessEnv & ServerKnobs);
  // BENCH_SERVER_ENV="AUTHZ_CACHE_TTL=5m ...": Gatehouse settings to try, said in the report.
  Object.assign(env, serverEnv);

  let server: Server | undefined;
  // Instance B of two-instances, if it is still running.
  const others: Server[] = [];
  const stopAll = async () => {
    await Promise.all([server?.stop(), ...others.map((o) => o.stop())]);
    await database.drop().catch((err: unknown) => log(`bench: could not drop the bench database: ${String(err)}`));
    rmSync(dataDir, { recursive: true, force: true });
  };
  // Interrupted: still stop the server and drop the throwaway database.
  for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
    process.once(signal, () => void stopAll().then(() => process.exit(code)));
  }

  const results: Measured[] = [];
  let compares: BcryptRate | undefined;
  const memory: Memory = { readyRssMb: 0, vmHwmMb: 0 };
  let ready: Ready | undefined;
  try {
    log(`bench: preparing ${options.users} users and ${refreshPool} refresh tokens on ${database.url ? 'PostgreSQL' : 'PGlite'} ...`);
    const prepared = await prepareData(script, env);
    log(`bench: data prepared in ${(prepared.prepareMs / 1000).toFixed(1)} s; starting the server ...`);
    server = await startServer(script, env);
    ready = { ...prepared, ...server.ready };
    memory.readyRssMb = round(procStatusKb(server.pid, 'VmRSS') / 1024, 1);
    log(`bench: server ready in ${(ready.startMs / 1000).toFixed(1)} s (pid ${server.pid}, port ${ready.port}, RSS ${memory.readyRssMb} MB)`);
    const ctx: Context = { base: `http://127.0.0.1:${ready.port}`, ready, server, databaseUrl: database.url, script, env, notes };
    // JIT and caches warm before anything is counted.
    await load(
      'warm-up',
      {
        url: ctx.base,
        connections: options.connections,
        duration: quick ? 1 : 3,
        requests: [
          { method: 'GET', path: '/baseline' },
          { method: 'GET', path: '/protected', headers: { authorization: `Bearer ${ready.userToken}` } },
          { method: 'GET', path: '/auth/me', headers: { authorization: `Bearer ${ready.userToken}` } },
          { method: 'GET', path: '/protected', headers: { 'x-api-key': ready.userApiKey } },
        ],
      },
      server.pid,
    );
    const pools = { refresh: [...ready.refreshTokens] };
    // The read scenarios whose ratios are targets run interleaved, as one step, where the first of them was.
    const interleaved = selected.filter((name): name is ReadName => RATIOS.includes(name));
    for (const name of selected) {
      if (interleaved.length > 1 && (interleaved as ScenarioName[]).includes(name)) {
        if (name === interleaved[0]) results.push(...(await measureInterleaved(interleaved.map((n) => readScenario(n, ctx)), server, quick ? 1 : 5)));
        continue;
      }
      if (name === 'login') {
        const measured = await measureLogin(ctx, pepper, quick ? 1 : 2);
        results.push(measured.login);
        compares = measured.compares;
        continue;
      }
      results.push(...(await runScenario(name, ctx, pools, selected, others)));
    }
    memory.vmHwmMb = round(procStatusKb(server.pid, 'VmHWM') / 1024, 1);
    memory.manyUsersCachedRssMb = ctx.manyUsersCachedRssMb;
  } finally {
    await stopAll();
  }
  return report(startedAt, machine, ready, results, compares, memory, notes);
}

interface Memory {
  readyRssMb: number;
  vmHwmMb: number;
  /** After many-users: every one of its users in both caches. */
  manyUsersCachedRssMb?: number;
}

function report(
  startedAt: Date,
  machine: Record<string, unknown> & { cpus: number; model: string; node: string; loadAverageBefore: number[] },
  ready: Ready,
  results: Measured[],
  compares: BcryptRate | undefined,
  memory: Memory,
  notes: string[],
): number {
  const byName = new Map(results.map((r) => [r.name, r]));
  // The target is about the server under load; VmHWM also counts its start-up. many-users (run
  // after the others) and two-instances have many users cached: their memory has a target of its own.
  const peakRssMb = Math.max(0, ...results.filter((r) => !/^(many-users|two-instances)/.test(r.name)).map((r) => r.peakRssMb));
  const targets = targetsOf(byName, compares?.perSec, peakRssMb, memory.manyUsersCachedRssMb);
  const failures = results.filter((r) => r.errors > 0 || r.non2xx > 0 || r.requests === 0);

  const rows: (string | number)[][] = [];
  for (const r of results) {
    rows.push([
      TITLES[r.name] ?? r.name,
      r.requestsPerSec,
      r.p50Ms.toFixed(2),
      r.p99Ms.toFixed(2),
      r.errors,
      r.non2xx,
      // The driver's own ceilings: the server idles meanwhile.
      r.name.endsWith('-ceiling') ? '' : r.peakRssMb.toFixed(1),
      r.name.endsWith('-ceiling') ? '' : r.serverCpuMsPerRequest.toFixed(3),
    ]);
    if (r.name === 'login' && compares) rows.push([TITLES.bcrypt!, compares.perSec, '', '', '', '', '', '']);
  }
  const summary = [
    `Gatehouse bench: ${ready.driver === 'postgres' ? 'PostgreSQL' : 'PGlite'}, ${ready.users} users, BCRYPT_COST=${options.bcryptCost}, ` +
      `${options.duration} s per scenario, ${options.connections} connections, ${jwtAlg} access tokens${Object.keys(serverEnv).length ? `, ${process.env.BENCH_SERVER_ENV!.trim()}` : ''}, server on ${options.runtime} ${startFlags().join(' ')}; ` +
      `${machine.cpus} x ${machine.model}, Node ${machine.node}, load average ${machine.loadAverageBefore.join(' ')}`,
    '',
    table(['scenario', 'req/s', 'p50 ms', 'p99 ms', 'errors', 'non-2xx', 'peak RSS MB', 'server CPU ms/req'], rows),
    '',
    table(
      ['target', 'measured', 'goal', ''],
      targets.map((t) => [t.name, `${t.measured}${t.unit}`, t.goal, t.pass ? 'PASS' : 'MISS']),
    ),
    `server RSS: ${memory.readyRssMb} MB when ready, ` +
      (peakRssMb ? `${peakRssMb} MB at most during the single-user scenarios, ` : '') +
      (memory.manyUsersCachedRssMb ? `${memory.manyUsersCachedRssMb} MB with the ${options.manyUsers} users of many-users cached, ` : '') +
      `${memory.vmHwmMb} MB at most over its life (VmHWM, start-up included)`,
    ...results.filter((r) => r.note).map((r) => `note: ${r.name}: ${r.note}`),
    ...notes.map((n) => `note: ${n}`),
    ...failures.map(
      (r) => `FAILED: ${r.name}: ${r.requests} responses, ${r.errors} errors (${r.timeouts} timeouts), status codes ${JSON.stringify(r.statusCodes)}`,
    ),
    ...(failures.length ? ["(BENCH_LOG=error npm run bench shows the server's own errors)"] : []),
  ].join('\n');
  console.log(summary);

  mkdirSync(resultsDir, { recursive: true });
  const file = join(resultsDir, `${startedAt.toISOString().replace(/:/g, '-')}.json`);
  const saved = {
    startedAt: startedAt.toISOString(),
    ok: failures.length === 0,
    database: ready.driver,
    options: { ...options, databaseUrl: undefined, jwtAlg, serverEnv, refreshPool: ready.refreshTokens.length, prepareMs: ready.prepareMs },
    machine: { ...machine, loadAverageAfter: loadavg().map((l) => round(l)) },
    scenarios: results.map((r) => ({ ...r, title: TITLES[r.name] ?? r.name })),
    bcrypt: compares,
    peakRssMb,
    memory,
    targets,
    notes,
  };
  writeFileSync(file, `${JSON.stringify(saved, null, 2)}\n`);
  log(`bench: results written to ${relative(process.cwd(), file) || file}`);
  return failures.length === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error('bench: failed:', err instanceof Error ? err.message : err);
    process.exit(1);
  },
);
