/**
 * The package as it is built and as a host app gets it. `npm start` builds first (prestart), so
 * the build must cost next to nothing when dist/ is current. `npm pack`, then a project of its own
 * that installs the tarball from its package.json, type-checks the README's plugin snippet
 * (examples/host-app/server.ts) strictly with `skipLibCheck: false`, and runs it on a new data
 * folder. Serial: a first build, an install and the type-check of a whole dependency tree take a
 * minute or more on a busy machine; one file, so that two builds never write dist/ at once.
 */
import { execFile } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import tap from 'tap';
import { cleanEnv, runScript } from '../helpers/script.js';
import { freePort } from '../helpers/servers.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const TSC = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
const exec = promisify(execFile);

tap.test('npm run build on an up-to-date dist/ (as npm start runs it) checks and writes nothing', { timeout: 600_000 }, async (t) => {
  await exec('npm', ['run', 'build'], { cwd: ROOT });
  const built = statSync(join(ROOT, 'dist', 'server.js')).mtimeMs;
  const started = Date.now();
  const again = await exec('npm', ['run', 'build', '--', '--verbose'], { cwd: ROOT });
  const ms = Date.now() - started;
  t.match(again.stdout + again.stderr, /is up to date/, 'tsc -b found nothing to do');
  t.equal(statSync(join(ROOT, 'dist', 'server.js')).mtimeMs, built, 'and rewrote nothing');
  // About 0.5 s here, against 12 s of CPU (20-50 s on a loaded machine) for a full compile.
  t.ok(ms < 15_000, `the up-to-date build took ${ms} ms`);
});

tap.test('a host app installs the packed package, type-checks the README snippet strictly, and runs it', { timeout: 900_000 }, async (t) => {
  const host = mkdtempSync(join(tmpdir(), 'gatehouse-host-'));
  t.teardown(() => rmSync(host, { recursive: true, force: true }));

  let phase = Date.now();
  const took = (what: string) => {
    t.comment(`${what}: ${((Date.now() - phase) / 1000).toFixed(1)} s`);
    phase = Date.now();
  };
  // prepack builds dist/ first (up to date after the test above).
  const packed = await exec('npm', ['pack', '--json', '--pack-destination', host], { cwd: ROOT, maxBuffer: 16 << 20 });
  const [{ filename }] = JSON.parse(packed.stdout) as [{ filename: string }];
  took('npm pack');
  const typesNode = JSON.parse(readFileSync(join(ROOT, 'node_modules', '@types', 'node', 'package.json'), 'utf8')).version as string;
  writeFileSync(
    join(host, 'package.json'),
    JSON.stringify({
      name: 'gatehouse-host-app',
      private: true,
      type: 'module',
      dependencies: { gatehouse: `file:./${filename}` },
      devDependencies: { '@types/node': typesNode },
    }),
  );
  for (const file of ['server.ts', 'tsconfig.json']) copyFileSync(join(ROOT, 'examples', 'host-app', file), join(host, file));
  // From npm's cache when it holds the versions (it does after `npm ci` here); the registry otherwise.
  await exec('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--ignore-scripts'], { cwd: host, maxBuffer: 16 << 20 });
  took('npm install in the host');

  // This repository's TypeScript, the host's everything else.
  const checked = await exec(process.execPath, [TSC, '-p', host, '--listFiles'], { cwd: host, maxBuffer: 64 << 20 }).catch(
    (err: { stdout: string }) => err,
  );
  took('tsc in the host');
  const files = checked.stdout.split('\n');
  t.same(
    files.filter((line) => line.includes('error TS')),
    [],
    'the snippet and every declaration it loads type-check with strict and skipLibCheck false',
  );
  t.ok(
    files.some((file) => file.includes('/node_modules/gatehouse/dist/index.d.ts')),
    'Gatehouse came from the installed package',
  );
  t.same(
    files.filter((file) => /node_modules\/(drizzle-orm|@electric-sql)\//.test(file)),
    [],
    'no drizzle-orm or PGlite declaration reaches the host',
  );

  // The snippet as a program: a new data folder, Fastify's default pluginTimeout, then requests.
  const port = await freePort();
  const env = cleanEnv({ HOST: '127.0.0.1', PORT: String(port), DATA_DIR: join(host, 'data'), BCRYPT_COST: '4' });
  const server = runScript(t, 'server.ts', { cwd: host, env, execArgv: ['--import', 'tsx'] });
  await server.waitFor(/Server listening at/);
  took('first start of the snippet');
  const base = `http://127.0.0.1:${port}`;
  const registered = await fetch(`${base}/identity/auth/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email: 'ann@example.com', password: 'host-app-Tq8#mZ2!pL0x' }),
  });
  t.equal(registered.status, 201, 'Gatehouse answers under /identity');
  const { accessToken } = (await registered.json()) as { accessToken: string };
  const notes = await fetch(`${base}/notes`, { headers: { authorization: `Bearer ${accessToken}` } });
  t.same(await notes.json(), { owner: 'ann@example.com' }, "the host's route sees who called");
  const anonymous = await fetch(`${base}/notes`);
  t.equal(anonymous.status, 401, 'no token, no notes');
  t.match(await anonymous.json(), { code: 'token_missing' }, "the host's route is guarded, with problem+json");
});
