import { and, eq, lt } from 'drizzle-orm';
import { webauthnChallenges } from '../db/schema.js';
import { isUuid } from '../lib/uuid.js';
import type { DbOrTx } from './users.js';

export type ChallengePurpose = (typeof webauthnChallenges.$inferSelect)['purpose'];

/** A challenge as it was issued: what the authenticator must have signed, and for whom. */
export interface IssuedChallenge {
  challenge: string;
  userId: string | null;
  userHandle: string | null;
}

/**
 * Keeps a challenge for one ceremony until `ttl` seconds from now, and answers its id. Challenges
 * that ran out go as new ones come, so the table holds only ceremonies under way.
 */
export async function issueWebauthnChallenge(
  db: DbOrTx,
  input: { purpose: ChallengePurpose; challenge: string; userId: string | null; userHandle?: string; ttl: number },
  now = new Date(),
): Promise<string> {
  await db.delete(webauthnChallenges).where(lt(webauthnChallenges.expiresAt, now));
  const [row] = await db
    .insert(webauthnChallenges)
    .values({ purpose: input.purpose, challenge: input.challenge, userId: input.userId, userHandle: input.userHandle ?? null, createdAt: now, expiresAt: new Date(now.getTime() + input.ttl * 1000) })
    .returning({ id: webauthnChallenges.id });
  return row!.id;
}

/**
 * Takes the challenge out, in one statement: of two requests with one challenge id exactly one
 * gets it, and it never works again, whether its ceremony then succeeds or not. Undefined for an
 * unknown, used or expired challenge, or one issued for another purpose.
 */
export async function consumeWebauthnChallenge(db: DbOrTx, id: string, purpose: ChallengePurpose, now = new Date()): Promise<IssuedChallenge | undefined> {
  if (!isUuid(id)) return undefined;
  const [row] = await db
    .delete(webauthnChallenges)
    .where(and(eq(webauthnChallenges.id, id), eq(webauthnChallenges.purpose, purpose)))
    .returning();
  if (!row || row.expiresAt.getTime() <= now.getTime()) return undefined;
  return { challenge: row.challenge, userId: row.userId, userHandle: row.userHandle };
}
