import type { FastifyBaseLogger } from 'fastify';

export interface BackgroundTasks {
  /** Runs `task` after the current answer, logging instead of throwing. */
  run(name: string, task: () => Promise<void>): void;
  /** Resolves when every task started so far has finished (graceful shutdown, tests). */
  idle(): Promise<void>;
}

/**
 * Work whose outcome must not show in the answer: what happens for a known email must take as
 * long, and answer the same, as for an unknown one.
 */
export function createBackgroundTasks(log: FastifyBaseLogger): BackgroundTasks {
  const pending = new Set<Promise<void>>();
  return {
    run(name, task) {
      const running = new Promise<void>((resolve) => setImmediate(resolve))
        .then(task)
        .catch((err: unknown) => log.error({ err, task: name }, 'background task failed'))
        .finally(() => pending.delete(running));
      pending.add(running);
    },
    async idle() {
      while (pending.size) await Promise.allSettled([...pending]);
    },
  };
}
