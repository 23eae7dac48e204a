import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import type { TokenResponse } from '../../src/schemas/tokens.js';

export const PASSWORD = 'correct horse battery staple';
let counter = 0;

export function uniqueEmail(prefix = 'user'): string {
  counter += 1;
  return `${prefix}${counter}.${process.pid}@example.com`;
}

export function post(app: FastifyInstance, url: string, payload?: unknown, headers: Record<string, string> = {}) {
  return app.inject({ method: 'POST', url, payload: payload as object, headers });
}

export function bearer(token: string): { authorization: string } {
  return { authorization: `Bearer ${token}` };
}

export function json<T = TokenResponse>(res: LightMyRequestResponse): T {
  return res.json() as T;
}

/** Registers a user and returns the token response (register opens a session). */
export async function registerUser(
  app: FastifyInstance,
  input: { email?: string; password?: string; name?: string } = {},
): Promise<TokenResponse & { email: string; password: string }> {
  const email = input.email ?? uniqueEmail();
  const password = input.password ?? PASSWORD;
  const res = await post(app, '/auth/register', { email, password, ...(input.name ? { name: input.name } : {}) });
  if (res.statusCode !== 201) throw new Error(`register failed: ${res.statusCode} ${res.body}`);
  return { ...json(res), email, password };
}

export async function login(app: FastifyInstance, email: string, password = PASSWORD): Promise<TokenResponse> {
  const res = await post(app, '/auth/login', { email, password });
  if (res.statusCode !== 200) throw new Error(`login failed: ${res.statusCode} ${res.body}`);
  return json(res);
}
