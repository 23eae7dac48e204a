import { dictionary } from '@zxcvbn-ts/language-common';
import { problem } from '../errors.js';

/**
 * The most common passwords, most common first: the "passwords-common" list that zxcvbn-ts ships
 * (@zxcvbn-ts/language-common, MIT; 49,233 entries drawn from leaked-password corpora). Loaded once.
 */
let common: ReadonlySet<string> | undefined;
function commonPasswords(): ReadonlySet<string> {
  common ??= new Set(dictionary['passwords-common'] as string[]);
  return common;
}

export const MIN_PASSWORD_LENGTH = 8;
export const MAX_PASSWORD_LENGTH = 256;

const fold = (value: string) => value.normalize('NFKC').toLowerCase();

/**
 * NIST 800-63B style checks. Returns why the password is refused, or null when it is acceptable.
 * Length is counted in Unicode code points after NFKC normalization.
 */
export function passwordProblem(password: string, email?: string): string | null {
  const normalized = password.normalize('NFKC');
  const length = [...normalized].length;
  if (length < MIN_PASSWORD_LENGTH) return `The password must be at least ${MIN_PASSWORD_LENGTH} characters long.`;
  if (length > MAX_PASSWORD_LENGTH) return `The password must be at most ${MAX_PASSWORD_LENGTH} characters long.`;
  const folded = fold(password);
  if (commonPasswords().has(folded)) return 'This password is one of the most commonly used passwords: choose another.';
  const localPart = email ? fold(email.split('@')[0] ?? '') : '';
  if (localPart.length >= 3 && folded.includes(localPart)) return 'The password must not contain your email address.';
  return null;
}

export function commonPasswordCount(): number {
  return commonPasswords().size;
}

/** Throws 400 weak_password naming the rule that failed. */
export function assertPasswordPolicy(password: string, email?: string): void {
  const reason = passwordProblem(password, email);
  if (reason) throw problem('weak_password', reason, { errors: [{ path: 'body/password', message: reason }] });
}
