import { createHmac } from 'node:crypto';
import { availableParallelism } from 'node:os';
import bcrypt from 'bcrypt';

export interface PasswordHasher {
  hash(password: string): Promise<string>;
  verify(password: string, hash: string): Promise<boolean>;
  /** Costs what a verify costs, for answers that must not reveal that no account matched. */
  verifyAgainstNothing(password: string): Promise<void>;
  /** True when a hash was made at another cost and should be redone at the next login. */
  needsRehash(hash: string): boolean;
}

/**
 * bcrypt over base64(HMAC-SHA256(password, pepper)), as the seed system does with its password salt:
 * the HMAC makes every character count (bcrypt ignores bytes past 72) and keeps a leaked database
 * without the pepper from being checked against leaked plain hashes.
 */
export function createPasswordHasher({
  pepper,
  cost,
  concurrency = availableParallelism(),
}: {
  pepper: string;
  cost: number;
  /**
   * bcrypt runs on libuv's threadpool (4 threads). Past one per core more at once only adds
   * threads fighting the event loop for CPU, and a login storm would queue everything else that
   * needs the pool (fs, dns, crypto) behind it: the rest wait here instead.
   */
  concurrency?: number;
}): PasswordHasher {
  const prepare = (password: string) => createHmac('sha256', pepper).update(password.normalize('NFKC'), 'utf8').digest('base64');
  const limited = limitConcurrency(concurrency);
  let dummyHash: Promise<string> | undefined;
  return {
    hash: (password) => limited(() => bcrypt.hash(prepare(password), cost)),
    verify: (password, hash) => limited(() => bcrypt.compare(prepare(password), hash)),
    async verifyAgainstNothing(password) {
      dummyHash ??= limited(() => bcrypt.hash('gatehouse-no-such-account', cost));
      const against = await dummyHash;
      await limited(() => bcrypt.compare(prepare(password), against));
    },
    needsRehash(hash) {
      return bcrypt.getRounds(hash) !== cost;
    },
  };
}

/** Runs at most `limit` tasks at once; the others start in the order they came, as slots free up. */
export function limitConcurrency(limit: number): <T>(task: () => Promise<T>) => Promise<T> {
  let running = 0;
  const waiting: (() => void)[] = [];
  return async (task) => {
    // A finishing task hands its slot straight to the next in line, so `running` never overshoots.
    if (running < Math.max(1, limit)) running++;
    else await new Promise<void>((resolve) => waiting.push(resolve));
    try {
      return await task();
    } finally {
      const next = waiting.shift();
      if (next) next();
      else running--;
    }
  };
}
