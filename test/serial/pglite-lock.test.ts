/**
 * One process per embedded database folder: a second server or create-admin is refused at once,
 * told which process holds the folder; the lock of a process that is gone is taken over.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import t from 'tap';
import { FolderLockedError, lockFolder, takeOver } from '../../src/db/pglite-lock.js';
import { openDatabase } from '../../src/db/client.js';
import { tempDataDir, type Test } from '../helpers/app.js';
// Run after the suite, outside coverage: merged with the rest, the coverage of this file's
// processes lowered files it never touched (config.ts fell from 97 % to 70 %), which hid real gaps.
import { childNode, migratedDataDir, spawnGatehouse } from '../helpers/process.js';

/** The pid of a process that has exited. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', '']);
  await new Promise((resolve) => child.once('exit', resolve));
  return child.pid!;
}

/** A process that lives until the test ends. */
function liveProcess(t: Test): ChildProcess {
  const child = spawn('sleep', ['600'], { stdio: 'ignore' });
  t.teardown(() => void child.kill('SIGKILL'));
  return child;
}

function startTimeOf(pid: number): string {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]!;
}

function writeLock(folder: string, holder: Record<string, unknown>): string {
  const path = `${folder}.lock`;
  writeFileSync(path, JSON.stringify({ hostname: hostname(), since: '2026-01-01T00:00:00.000Z', ...holder }));
  return path;
}

t.test('a folder is locked once: a second lock is refused, naming the folder and the process; released, it is free again', async (t) => {
  const folder = join(tempDataDir(t), 'pglite');
  const lock = lockFolder(folder);
  t.equal(lock.path, `${folder}.lock`, 'the lock file is beside the folder');
  t.match(JSON.parse(readFileSync(lock.path, 'utf8')), { pid: process.pid, hostname: hostname() });
  t.throws(() => lockFolder(folder), { name: 'FolderLockedError', message: `the database folder ${folder} is already open in this process (pid ${process.pid})` });
  lock.release();
  t.notOk(existsSync(lock.path), 'released: the file is gone');
  lock.release();
  t.pass('releasing twice is harmless');
  lockFolder(folder).release();
});

t.test('a lock held by a live process is refused with its pid; one left by a dead process is taken over', async (t) => {
  const folder = join(tempDataDir(t), 'pglite');
  const holder = liveProcess(t);
  writeLock(folder, { pid: holder.pid, startTime: startTimeOf(holder.pid!) });
  const err = t.throws(() => lockFolder(folder)) as FolderLockedError;
  t.ok(err instanceof FolderLockedError);
  t.match(err.message, `the database folder ${folder} is in use by process ${holder.pid} (since 2026-01-01T00:00:00.000Z): stop it first`);
  t.equal(err.holder?.pid, holder.pid);

  const dead = await deadPid();
  writeLock(folder, { pid: dead });
  const lock = lockFolder(folder);
  t.match(JSON.parse(readFileSync(lock.path, 'utf8')), { pid: process.pid }, `the lock of dead process ${dead} is taken over`);
  lock.release();
});

t.test('a pid that now belongs to another process, or is this very process, is not mistaken for the holder', async (t) => {
  const folder = join(tempDataDir(t), 'pglite');
  const other = liveProcess(t);
  writeLock(folder, { pid: other.pid, startTime: '1' });
  const reused = lockFolder(folder);
  t.match(JSON.parse(readFileSync(reused.path, 'utf8')), { pid: process.pid }, 'a live pid with another start time: taken over');
  reused.release();

  writeLock(folder, { pid: process.pid, startTime: '1' });
  const earlierLife = lockFolder(folder);
  t.match(JSON.parse(readFileSync(earlierLife.path, 'utf8')), { pid: process.pid, startTime: startTimeOf(process.pid) }, 'our own pid in a lock we never took: an earlier life, taken over');
  earlierLife.release();
});

t.test('a lock from another host, or one that names no process, is honoured: this host cannot tell it is stale', async (t) => {
  const folder = join(tempDataDir(t), 'pglite');
  const path = writeLock(folder, { pid: process.pid, hostname: 'elsewhere' });
  t.throws(() => lockFolder(folder), { message: `in use by process ${process.pid} on host elsewhere (since 2026-01-01T00:00:00.000Z): stop it first; if nothing runs there any more, delete ${path}` });
  writeFileSync(path, '');
  t.throws(() => lockFolder(folder), { message: `the database folder ${folder} is locked by ${path}, which names no process` });
  writeFileSync(path, '{"pid": "one"}');
  t.throws(() => lockFolder(folder), { message: 'names no process' });
  t.equal(readFileSync(path, 'utf8'), '{"pid": "one"}', 'left as it was');
});

t.test('a file-system error is reported as it is, not taken for a free or a held lock', async (t) => {
  const dir = tempDataDir(t);
  t.throws(() => lockFolder(join(dir, 'missing', 'pglite')), { code: 'ENOENT' }, 'no parent folder');
  mkdirSync(join(dir, 'pglite.lock'));
  t.throws(() => lockFolder(join(dir, 'pglite')), { code: 'EISDIR' }, 'the lock path is a folder');
});

t.test('release leaves alone a lock that is no longer ours', async (t) => {
  const folder = join(tempDataDir(t), 'pglite');
  const lock = lockFolder(folder);
  const replaced = writeLock(folder, { pid: 1 });
  lock.release();
  t.ok(existsSync(replaced), 'the other lock stays');
});

t.test('openDatabase takes the lock on a PGlite folder and releases it on close; a failed open releases it too', async (t) => {
  const dataDir = await migratedDataDir(t);
  const folder = join(dataDir, 'pglite');
  const database = await openDatabase({ dataDir: folder });
  t.ok(existsSync(`${folder}.lock`), 'locked while open');
  await t.rejects(openDatabase({ dataDir: folder }), { name: 'FolderLockedError', message: folder });
  await database.close();
  t.notOk(existsSync(`${folder}.lock`), 'released on close');

  const notADatabase = join(tempDataDir(t), 'pglite');
  mkdirSync(notADatabase);
  writeFileSync(join(notADatabase, 'PG_VERSION'), 'not a version\n');
  await t.rejects(openDatabase({ dataDir: notADatabase }));
  t.notOk(existsSync(`${notADatabase}.lock`), 'released when the open fails');
});

t.test('taking over a stale lock loses no race: one already gone is left, one replaced by a live lock meanwhile is put back', async (t) => {
  const folder = join(tempDataDir(t), 'pglite');
  const path = `${folder}.lock`;
  takeOver(path, 'stale');
  t.notOk(existsSync(path), 'taken over by another process first: nothing to do');
  writeFileSync(path, 'live');
  takeOver(path, 'stale');
  t.equal(readFileSync(path, 'utf8'), 'live', 'the live lock that replaced the stale one stays');
  t.same(readdirSync(dirname(path)), ['pglite.lock'], 'nothing left aside');
  t.throws(() => takeOver(join(path, 'under-a-file.lock'), 'stale'), { code: 'ENOTDIR' }, 'any other failure is reported');
});

t.test('processes racing for one stale lock: exactly one gets it', async (t) => {
  const folder = join(tempDataDir(t), 'pglite');
  writeLock(folder, { pid: await deadPid() });
  const contenders = await Promise.all(
    Array.from({ length: 3 }, async () => {
      const node = childNode('test/faults/fixtures/lock-contender.ts', [folder], process.env, false);
      const child = spawn(process.execPath, node.args, { env: node.env, stdio: ['ignore', 'pipe', 'inherit'] });
      t.teardown(() => void child.kill('SIGKILL'));
      let output = '';
      child.stdout!.setEncoding('utf8').on('data', (chunk: string) => void (output += chunk));
      const printed = (what: RegExp) =>
        new Promise<string>((resolve, reject) => {
          const check = () => (what.test(output) ? resolve(output) : child.exitCode !== null ? reject(new Error(output)) : setTimeout(check, 10));
          check();
        });
      await printed(/ready/);
      return { child, printed, exited: new Promise((resolve) => child.once('exit', resolve)) };
    }),
  );
  for (const { child } of contenders) child.kill('SIGUSR1');
  const outcomes = await Promise.all(contenders.map(({ printed }) => printed(/locked|refused/)));
  // A winner prints the line `locked`; a refusal's message may say "is locked by".
  const winners = outcomes.filter((o) => o.split('\n').includes('locked'));
  t.equal(winners.length, 1, `one winner: ${JSON.stringify(outcomes)}`);
  for (const { child, exited } of contenders) {
    child.kill('SIGTERM');
    await exited;
  }
  t.notOk(existsSync(`${folder}.lock`), 'the winner released it on exit');
});

t.test('a second server, and create-admin, on a running server\'s folder are refused at once; after a kill -9 the next server takes over, and a SIGINT releases it', async (t) => {
  const dataDir = await migratedDataDir(t);
  const folder = join(dataDir, 'pglite');
  // Killed with SIGKILL: it writes no coverage, so it runs outside it.
  const first = await spawnGatehouse(t, { dataDir, coverage: false });

  // Both at once: each is refused before it opens anything.
  const started = Date.now();
  const [second, admin] = await Promise.all([
    spawnGatehouse(t, { dataDir, readyLog: null }),
    spawnGatehouse(t, { dataDir, script: 'scripts/create-admin.ts', args: ['--email', 'admin@example.com', '--password', 'Locked-out-9!x'], readyLog: null, coverage: false }),
  ]);
  const [secondExit, adminExit] = await Promise.all([second.exit, admin.exit]);
  t.comment(`refused ${secondExit.at - started} ms (second server) and ${adminExit.at - started} ms (create-admin) after they were started`);
  t.equal(secondExit.code, 1, 'the second server exits 1');
  t.match(second.output().stderr, `gatehouse: failed to start: the database folder ${folder} is in use by process ${first.child.pid}`);
  t.notOk(second.logs.some((line) => line.msg.includes('listening')), 'it never listened');
  t.equal(adminExit.code, 1, 'create-admin exits 1');
  t.match(admin.output().stderr, `create-admin: the database folder ${folder} is in use by process ${first.child.pid}`);

  first.child.kill('SIGKILL');
  await first.exit;
  t.ok(existsSync(`${folder}.lock`), 'a kill -9 leaves the lock behind');
  const next = await spawnGatehouse(t, { dataDir });
  t.equal((await fetch(`${next.url}/health`)).status, 200, 'the next server took the stale lock over and serves');
  t.match(JSON.parse(readFileSync(`${folder}.lock`, 'utf8')), { pid: next.child.pid });
  const signalled = Date.now();
  next.child.kill('SIGINT');
  const exit = await next.exit;
  t.comment(`with nothing in flight, exited ${exit.at - signalled} ms after SIGINT`);
  t.equal(exit.code, 0, 'SIGINT with nothing in flight: exit 0');
  t.ok(next.logs.some((line) => line.msg === 'shut down'), 'a complete shutdown, not one cut short by SHUTDOWN_TIMEOUT');
  t.notOk(next.logs.some((line) => line.msg.includes('SHUTDOWN_TIMEOUT')));
  t.notOk(existsSync(`${folder}.lock`), 'a clean shutdown releases the lock');
});

t.test('a broken secrets.json stops the real server with a message naming it', async (t) => {
  const dataDir = tempDataDir(t);
  writeFileSync(join(dataDir, 'secrets.json'), '{"JWT_SECRET": ');
  const server = await spawnGatehouse(t, { dataDir, env: { JWT_SECRET: '', PASSWORD_PEPPER: '' }, readyLog: null });
  const exit = await server.exit;
  t.equal(exit.code, 1);
  t.match(server.output().stderr, `gatehouse: ${join(dataDir, 'secrets.json')} is not valid JSON`);
  t.equal(readFileSync(join(dataDir, 'secrets.json'), 'utf8'), '{"JWT_SECRET": ', 'left as it was');
});
