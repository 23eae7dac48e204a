import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Polls `check` every 20 ms until it holds, and returns how long that took; fails after `limitMs`.
 * For what settles asynchronously (a notice reaching another instance, a cache expiring): the
 * limit is a generous bound that catches a hang, never the figure a test reports.
 */
export async function until(check: () => boolean | Promise<boolean>, limitMs: number, what = 'the condition'): Promise<number> {
  const started = performance.now();
  while (!(await check())) {
    if (performance.now() - started > limitMs) throw new Error(`${what}: not within ${limitMs} ms`);
    await sleep(20);
  }
  return Math.round(performance.now() - started);
}
