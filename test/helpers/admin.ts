import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { ensureAdmin } from '../../src/domain/admin-bootstrap.js';
import { setUserRoles } from '../../src/domain/admin-users.js';
import { createRole } from '../../src/domain/roles.js';
import type { AdminUserView } from '../../src/schemas/admin.js';
import { PASSWORD, bearer, login, registerUser, uniqueEmail } from './users.js';

/** A signed-in user as a test drives them: who they are and the headers that prove it. */
export interface Actor {
  userId: string;
  email: string;
  accessToken: string;
  refreshToken: string;
  headers: { authorization: string };
}

function actor(tokens: { accessToken: string; refreshToken?: string; user: { id: string } }, email: string): Actor {
  return {
    userId: tokens.user.id,
    email,
    accessToken: tokens.accessToken,
    refreshToken: tokens.refreshToken!,
    headers: bearer(tokens.accessToken),
  };
}

/** An admin (roles admin and user), made the way create-admin makes one, then logged in over HTTP. */
export async function adminToken(app: FastifyInstance, email = uniqueEmail('admin')): Promise<Actor> {
  const { db, passwords } = app.gatehouse;
  await ensureAdmin(db, { email, password: PASSWORD, passwords });
  return actor(await login(app, email), email);
}

/** A registered, signed-in user holding exactly `roles` (which must exist). */
export async function userWithRoles(app: FastifyInstance, roles: string[], input: { email?: string; name?: string } = {}): Promise<Actor> {
  const registered = await registerUser(app, input);
  await setUserRoles(app.gatehouse.db, 'system', registered.user.id, roles);
  await app.gatehouse.access.changed(registered.user.id);
  return actor(registered, registered.email);
}

let roleCounter = 0;

/** A fresh role granting exactly `permissions` (which must exist); returns its name. */
export async function roleGranting(app: FastifyInstance, permissions: string[]): Promise<string> {
  roleCounter += 1;
  const name = `grants.${roleCounter}.${process.pid}`;
  await createRole(app.gatehouse.db, 'system', { name, permissions });
  return name;
}

/** A signed-in user whose only rights are the `user` role and exactly `permissions`. */
export async function userWithPermissions(app: FastifyInstance, permissions: string[]): Promise<Actor> {
  return userWithRoles(app, ['user', await roleGranting(app, permissions)]);
}

export function send(
  app: FastifyInstance,
  who: Actor | null,
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE',
  url: string,
  payload?: unknown,
): Promise<LightMyRequestResponse> {
  return app.inject({ method, url, headers: who ? who.headers : {}, ...(payload === undefined ? {} : { payload: payload as object }) });
}

export type { AdminUserView };
