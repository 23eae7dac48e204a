/**
 * A TypeScript file of this repository (or a host app's) run as a real process: by this Node with
 * the test's own loader by default, so that coverage follows it, in a working directory of the
 * test's choosing, with its output collected for the test to wait on.
 */
import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import type { Test } from './app.js';
import { EnvSchema } from '../../src/config.js';

export interface Script {
  output(): string;
  /** The first output line matching `pattern`, already printed or to come; rejects if the process exits first. */
  waitFor(pattern: RegExp): Promise<string>;
  exit: Promise<number | null>;
  kill(signal?: NodeJS.Signals): void;
}

/** This process's environment without any Gatehouse setting in it, plus `env`. */
export function cleanEnv(env: Record<string, string> = {}): NodeJS.ProcessEnv {
  const clean: NodeJS.ProcessEnv = { ...process.env };
  for (const name of Object.keys(EnvSchema.properties)) delete clean[name];
  return { ...clean, ...env };
}

export function runScript(
  t: Test,
  script: string,
  { cwd, env = cleanEnv(), args = [], execArgv = process.execArgv }: { cwd?: string; env?: NodeJS.ProcessEnv; args?: string[]; execArgv?: string[] } = {},
): Script {
  // ts-node reads TS_NODE_PROJECT relative to the child's working directory, which may be a
  // temporary folder: a relative one (as a developer may export it) would be looked for there.
  const project = env.TS_NODE_PROJECT && { TS_NODE_PROJECT: resolve(env.TS_NODE_PROJECT) };
  const child = spawn(process.execPath, [...execArgv, script, ...args], { cwd, env: { ...env, ...project }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  let exited = false;
  const wakers = new Set<() => void>();
  const wake = () => wakers.forEach((w) => w());
  const collect = (chunk: string) => {
    output += chunk;
    wake();
  };
  child.stdout.setEncoding('utf8').on('data', collect);
  child.stderr.setEncoding('utf8').on('data', collect);
  const exit = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => {
      exited = true;
      resolve(code);
      wake();
    }),
  );
  t.teardown(async () => {
    if (!exited) {
      child.kill('SIGKILL');
      await exit;
    }
  });
  return {
    output: () => output,
    waitFor: (pattern) =>
      new Promise((resolve, reject) => {
        const check = () => {
          const line = output.split('\n').find((l) => pattern.test(l));
          if (line === undefined && !exited) return;
          wakers.delete(check);
          if (line !== undefined) resolve(line);
          else reject(new Error(`exited before printing ${pattern}:\n${output}`));
        };
        wakers.add(check);
        check();
      }),
    exit,
    kill: (signal = 'SIGTERM') => void child.kill(signal),
  };
}
