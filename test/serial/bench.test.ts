import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import tap from 'tap';
import { DATABASE_KINDS } from '../helpers/databases.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
/** The driver's own ceilings and the second instance need a database it can reach: PostgreSQL. */
const onPostgres = (kind: string, names: string[]) => (kind === 'postgres' ? names : []);
const scenarios = (kind: string) => [
  'baseline',
  'protected',
  'me',
  'apikey',
  'refresh',
  ...onPostgres(kind, ['write-ceiling']),
  'login',
  'admin-users',
  'db-read',
  ...onPostgres(kind, ['db-read-ceiling']),
  'storm-probe',
  'storm-login',
  'many-users-first',
  'many-users-baseline',
  'many-users-protected',
  'many-users-me',
  ...onPostgres(kind, ['two-instances-a', 'two-instances-b', 'two-instances-revocation']),
];

interface Report {
  ok: boolean;
  database: string;
  scenarios: { name: string; requests: number; errors: number; non2xx: number; requestsPerSec: number; p99Ms: number }[];
  bcrypt?: { perSec: number };
  peakRssMb: number;
  targets: { name: string; pass: boolean }[];
  notes: string[];
}

function runBench(env: Record<string, string>): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const inherited = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('BENCH_')));
    const child = spawn('npx', ['tsx', 'bench/run.ts', '--quick'], { cwd: ROOT, env: { ...inherited, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output }));
  });
}

// Speed is not asserted: machines here are shared and noisy. What is: the bench runs end to end,
// every scenario gets answers, and none of them is an error.
for (const kind of DATABASE_KINDS) {
  void tap.test(`the quick bench runs every scenario without an error [${kind}]`, async (t) => {
    const resultsDir = mkdtempSync(join(tmpdir(), 'gatehouse-bench-results-'));
    t.teardown(() => rmSync(resultsDir, { recursive: true, force: true }));
    const { code, output } = await runBench({
      BCRYPT_COST: '4',
      BENCH_USERS: '1000',
      // Enough to fill the caches past their first pass in a second; the full run has 20,000.
      BENCH_MANY_USERS: '2000',
      // One second per scenario: this checks that the bench works, not how fast anything is.
      BENCH_DURATION: '1',
      BENCH_RESULTS_DIR: resultsDir,
      ...(kind === 'postgres' ? { BENCH_DATABASE_URL: process.env.TEST_DATABASE_URL! } : {}),
    });
    t.equal(code, 0, 'exits 0', { output });
    t.match(output, /\| scenario\s+\|\s+req\/s\s+\|\s+p50 ms\s+\|\s+p99 ms\s+\|\s+errors\s+\|\s+non-2xx\s+\|\s+peak RSS MB\s+\|/, 'prints the table');

    const files = readdirSync(resultsDir).filter((f) => f.endsWith('.json'));
    t.equal(files.length, 1, 'writes one results file');
    const report = JSON.parse(readFileSync(join(resultsDir, files[0]!), 'utf8')) as Report;
    t.equal(report.ok, true);
    t.equal(report.database, kind === 'postgres' ? 'postgres' : 'pglite');
    t.same(
      report.scenarios.map((s) => s.name),
      scenarios(kind),
      'every scenario, the login storm included',
    );
    for (const s of report.scenarios) {
      t.ok(s.requests > 0, `${s.name}: answered`);
      t.equal(s.errors, 0, `${s.name}: no errors`);
      t.equal(s.non2xx, 0, `${s.name}: no unexpected status`);
    }
    t.ok(report.bcrypt && report.bcrypt.perSec > 0, 'measures the bcrypt compare rate');
    t.ok(report.peakRssMb > 0, "samples the server's memory");
    t.same(
      report.targets.map((x) => x.name),
      [
        'protected / baseline',
        '/auth/me / baseline',
        'protected with an API key / baseline',
        'login / bcrypt compare rate',
        'protected p99 during login storm',
        ...onPostgres(kind, ['refresh / INSERT+COMMIT rate', 'admin list of 10 / its SQL statement']),
        'many-users protected / baseline',
        'many-users /auth/me / baseline',
        'many-users p99 (worse of the two)',
        'server RSS, every many-users user cached',
        ...onPostgres(kind, ['revocation through A seen by B, p99']),
        'server peak RSS, single-user scenarios',
      ],
      'judges every target (PASS or MISS, neither fails the run)',
    );
    if (kind === 'pglite') {
      t.same(
        report.notes.map((n) => n.split(':')[0]),
        ['write-ceiling, and the refresh target', 'db-read', 'two-instances'],
        'says which scenarios and targets PGlite cannot have',
      );
    }
  });
}
