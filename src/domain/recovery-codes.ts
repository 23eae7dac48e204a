import { randomBytes } from 'node:crypto';
import { and, count, eq, isNull } from 'drizzle-orm';
import { recoveryCodes } from '../db/schema.js';
import { hmac } from './tokens.js';
import type { DbOrTx } from './users.js';

export const RECOVERY_CODE_COUNT = 10;
const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
const RECOVERY_CODE = /^[A-Z2-7]{16}$/;

/** 16 base32 characters: 80 random bits, five per character. */
function newRecoveryCode(): string {
  const bytes = randomBytes(10);
  let bits = 0;
  let value = 0;
  let code = '';
  for (const byte of bytes) {
    value = ((value << 8) | byte) & 0xfff; // never more than 12 bits are waiting
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      code += BASE32[(value >>> bits) & 31];
    }
  }
  return code;
}

/** A code as typed: case, spaces and dashes do not matter. Null when it cannot be one of ours. */
export function normalizeRecoveryCode(input: string): string | null {
  const code = input.replace(/[\s-]/g, '').toUpperCase();
  return RECOVERY_CODE.test(code) ? code : null;
}

/**
 * Only an HMAC of each code is stored, under a key derived from PASSWORD_PEPPER: a copy of the
 * database alone does not let anyone check guesses. The user id is part of it, so equal codes of
 * two users do not look alike.
 */
function codeHash(key: Buffer, userId: string, code: string): string {
  return hmac(key, `${userId}:${code}`);
}

/** New codes for the user: the old ones, used or not, stop working. Shown once, never stored. */
export async function replaceRecoveryCodes(tx: DbOrTx, key: Buffer, userId: string): Promise<string[]> {
  const codes = Array.from({ length: RECOVERY_CODE_COUNT }, newRecoveryCode);
  await tx.delete(recoveryCodes).where(eq(recoveryCodes.userId, userId));
  await tx.insert(recoveryCodes).values(codes.map((code) => ({ userId, codeHash: codeHash(key, userId, code) })));
  return codes;
}

/**
 * Uses up one code, in one statement: of two requests with the same code exactly one finds it
 * unused (the other waits on the row lock, then sees it used). Returns how many are left, or null
 * when the code is not one of the user's unused ones.
 */
export async function consumeRecoveryCode(db: DbOrTx, key: Buffer, userId: string, input: string): Promise<{ remaining: number } | null> {
  const code = normalizeRecoveryCode(input);
  if (!code) return null;
  const used = await db
    .update(recoveryCodes)
    .set({ usedAt: new Date() })
    .where(and(eq(recoveryCodes.userId, userId), eq(recoveryCodes.codeHash, codeHash(key, userId, code)), isNull(recoveryCodes.usedAt)))
    .returning({ id: recoveryCodes.id });
  if (used.length === 0) return null;
  return { remaining: await recoveryCodesLeft(db, userId) };
}

export async function recoveryCodesLeft(db: DbOrTx, userId: string): Promise<number> {
  const [row] = await db
    .select({ left: count() })
    .from(recoveryCodes)
    .where(and(eq(recoveryCodes.userId, userId), isNull(recoveryCodes.usedAt)));
  return row!.left;
}
