import type { FastifyInstance } from 'fastify';
import { generate } from 'otplib';
import { bearer, json, post } from './users.js';

const PERIOD = 30;
const stepNow = () => Math.floor(Date.now() / 1000 / PERIOD);

/** The code of a time step, computed by the same library the server uses. */
export function codeOfStep(secret: string, step: number): Promise<string> {
  return generate({ secret, epoch: step * PERIOD });
}

/**
 * A user's authenticator app as a test drives it. The server accepts the code of the current step
 * and of each neighbour, and never a step at or before the last one used: `next()` is the code of
 * the step after the last used one, which the server accepts for the next 30 to 60 seconds
 * whichever side of a step boundary the request lands. A test that needs more codes than that
 * uses another user, or recovery codes.
 */
export class TestAuthenticator {
  /** The last step whose code went to the server (accepted or not). */
  lastStep: number;

  constructor(readonly secret: string) {
    this.lastStep = stepNow() - 1;
  }

  /** The code of the step after the last one used. */
  async next(): Promise<string> {
    this.lastStep += 1;
    return codeOfStep(this.secret, this.lastStep);
  }

  /** The code of the last step used again: what a replay sends. */
  replay(): Promise<string> {
    return codeOfStep(this.secret, this.lastStep);
  }

  /** Six digits that are none of the codes of the steps around now: wrong whatever the timing. */
  async wrong(): Promise<string> {
    const near = new Set(await Promise.all([-3, -2, -1, 0, 1, 2, 3].map((d) => codeOfStep(this.secret, stepNow() + d))));
    for (let n = 0; ; n++) {
      const candidate = String(n).padStart(6, '0');
      if (!near.has(candidate)) return candidate;
    }
  }
}

export interface Enrolled {
  authenticator: TestAuthenticator;
  recoveryCodes: string[];
  /** The confirming session's new access token (aal2). */
  accessToken: string;
}

/** Enrols and confirms an authenticator over HTTP for the holder of `accessToken` (a fresh session). */
export async function enrolTotp(app: FastifyInstance, accessToken: string): Promise<Enrolled> {
  const enrolled = await post(app, '/auth/mfa/totp/enroll', undefined, bearer(accessToken));
  if (enrolled.statusCode !== 201) throw new Error(`enroll failed: ${enrolled.statusCode} ${enrolled.body}`);
  const authenticator = new TestAuthenticator(json<{ secret: string }>(enrolled).secret);
  const confirmed = await post(app, '/auth/mfa/totp/confirm', { code: await authenticator.next() }, bearer(accessToken));
  if (confirmed.statusCode !== 200) throw new Error(`confirm failed: ${confirmed.statusCode} ${confirmed.body}`);
  const body = json<{ recoveryCodes: string[]; accessToken: string }>(confirmed);
  return { authenticator, recoveryCodes: body.recoveryCodes, accessToken: body.accessToken };
}

/** A login's first step for a user with a second factor: the mfaToken. */
export async function mfaTokenFor(app: FastifyInstance, email: string, password: string): Promise<string> {
  const res = await post(app, '/auth/login', { email, password });
  const body = json<{ mfaRequired?: boolean; mfaToken?: string }>(res);
  if (res.statusCode !== 200 || !body.mfaRequired) throw new Error(`expected mfaRequired: ${res.statusCode} ${res.body}`);
  return body.mfaToken!;
}
