import { createHmac } from 'node:crypto';
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
export function createPasswordHasher({ pepper, cost }: { pepper: string; cost: number }): PasswordHasher {
  const prepare = (password: string) => createHmac('sha256', pepper).update(password.normalize('NFKC'), 'utf8').digest('base64');
  let dummyHash: Promise<string> | undefined;
  return {
    hash: (password) => bcrypt.hash(prepare(password), cost),
    async verify(password, hash) {
      return bcrypt.compare(prepare(password), hash);
    },
    async verifyAgainstNothing(password) {
      dummyHash ??= bcrypt.hash('gatehouse-no-such-account', cost);
      await bcrypt.compare(prepare(password), await dummyHash);
    },
    needsRehash(hash) {
      return bcrypt.getRounds(hash) !== cost;
    },
  };
}
