import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createConnection } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import type { Test } from './app.js';
import { freePort } from './servers.js';

const SCRIPT = fileURLToPath(new URL('../../.ci/pgbouncer.sh', import.meta.url));

/** Whether PgBouncer is installed (`.ci/run` installs Debian's package). */
export const hasPgbouncer = ['/usr/sbin/pgbouncer', '/usr/bin/pgbouncer'].some((bin) => existsSync(bin));

const accepts = (port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port }, () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });

/**
 * A PgBouncer of the test's own in transaction mode (`.ci/pgbouncer.sh`), on a free port in front of
 * the PostgreSQL server on `serverPort`; stopped at teardown. Returns its port.
 */
export async function startPgbouncer(t: Test, serverPort: number): Promise<number> {
  const port = await freePort();
  const child = spawn(SCRIPT, [String(port), String(serverPort)], { stdio: ['ignore', 'ignore', 'pipe'] });
  let output = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  t.teardown(async () => {
    if (child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
  });
  for (let waited = 0; !(await accepts(port)); waited += 50) {
    if (child.exitCode !== null || waited > 10_000) throw new Error(`pgbouncer did not start: ${output}`);
    await sleep(50);
  }
  return port;
}
