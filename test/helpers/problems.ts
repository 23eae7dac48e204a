import type { LightMyRequestResponse } from 'fastify';
import type { Test } from 'tap';

export interface ProblemBody {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: string;
  errors?: { path: string; message: string }[];
}

/**
 * Asserts that `res` is the error `code` with `status`, as complete problem+json: every error a
 * client sees has the same five fields.
 */
export function assertProblem(t: Test, res: LightMyRequestResponse, status: number, code: string, label = code): ProblemBody {
  t.equal(res.statusCode, status, `${label}: answers ${status}`);
  t.match(res.headers['content-type'], /^application\/problem\+json/, `${label}: is problem+json`);
  const body = res.json() as ProblemBody;
  t.equal(body.code, code, `${label}: code ${code}`);
  t.equal(body.status, status, `${label}: the body repeats the status`);
  t.equal(body.type, `https://gatehouse.dev/problems/${code}`, `${label}: type names the problem`);
  t.ok(typeof body.title === 'string' && body.title.length > 0, `${label}: has a title`);
  t.ok(typeof body.detail === 'string' && body.detail.length > 0, `${label}: has a detail`);
  return body;
}

/** A 401 about an access token tells the client how to authenticate (RFC 6750). */
export function assertBearerChallenge(t: Test, res: LightMyRequestResponse, label: string): void {
  t.match(res.headers['www-authenticate'], /^Bearer/, `${label}: WWW-Authenticate offers a Bearer challenge`);
}
