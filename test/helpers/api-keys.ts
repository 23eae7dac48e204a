import type { FastifyInstance } from 'fastify';
import type { Actor } from './admin.js';

export interface CreatedKey {
  id: string;
  name: string;
  key: string;
  permissions: string[];
  expiresAt: string | null;
  createdAt: string;
}

/** Creates an API key over HTTP with the actor's (fresh) session; fails the test's setup otherwise. */
export async function createKey(app: FastifyInstance, owner: Actor, permissions: string[], extra: { name?: string; expiresIn?: number } = {}): Promise<CreatedKey> {
  const res = await app.inject({ method: 'POST', url: '/auth/api-keys', headers: owner.headers, payload: { name: extra.name ?? 'script', permissions, ...extra } });
  if (res.statusCode !== 201) throw new Error(`create key failed: ${res.statusCode} ${res.body}`);
  return res.json() as CreatedKey;
}

export const withKey = (key: string) => ({ 'x-api-key': key });
export const bearerKey = (key: string) => ({ authorization: `Bearer ${key}` });
