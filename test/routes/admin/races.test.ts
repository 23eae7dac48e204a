import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { adminToken, send, type Actor } from '../../helpers/admin.js';
import { buildTestApp, eachDatabase, type Test } from '../../helpers/app.js';
import { registerUser } from '../../helpers/users.js';

/*
 * Changes to roles and permissions racing each other, sent in parallel through app.inject (on
 * PostgreSQL they run on separate pooled connections). Whichever lands first, every answer is a
 * success or a coded client error, never a 5xx, and what is left afterwards is consistent.
 * RACE_SEED replays the order the requests were started in (the seed is printed).
 */

const SEED = process.env.RACE_SEED ? Number(process.env.RACE_SEED) : Math.floor(Math.random() * 2 ** 31);
const ROUNDS = Number(process.env.RACE_ROUNDS ?? 12);

/** mulberry32: a small seeded generator, so a failing order can be replayed. */
function random(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let x = Math.imul(a ^ (a >>> 15), 1 | a);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

function shuffled<T>(items: T[], next: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

type Request = () => Promise<LightMyRequestResponse>;

/** Starts the requests together, in a shuffled order, and answers them in the order given. */
async function race(next: () => number, requests: Request[]): Promise<LightMyRequestResponse[]> {
  const order = shuffled(requests.map((_, i) => i), next);
  const answers: Promise<LightMyRequestResponse>[] = new Array(requests.length);
  for (const i of order) answers[i] = requests[i]!();
  return Promise.all(answers);
}

/** Problem codes a client can act on; 400 only for a name that was already gone when the request ran. */
function assertSettled(t: Test, res: LightMyRequestResponse, label: string, allowed: Record<number, string[] | null>): void {
  const codes = allowed[res.statusCode];
  if (codes === undefined) {
    t.fail(`${label}: answered ${res.statusCode} ${res.body.slice(0, 300)}`);
    return;
  }
  if (codes === null) return;
  t.match(res.headers['content-type'], /^application\/problem\+json/, `${label}: ${res.statusCode} is problem+json`);
  const body = res.json() as { code: string; detail: string; status: number };
  t.ok(codes.includes(body.code), `${label}: ${res.statusCode} ${body.code} is one of ${codes.join(', ')}`);
  t.equal(body.status, res.statusCode, `${label}: the body repeats the status`);
}

async function setup(t: Test, kind: Parameters<typeof buildTestApp>[1]) {
  const { app } = await buildTestApp(t, kind);
  const admin = await adminToken(app);
  const next = random(SEED ^ kind.length);
  t.comment(`race seed ${SEED} (replay with RACE_SEED=${SEED}); ${ROUNDS} rounds`);
  return { app, admin, next };
}

async function created(t: Test, res: LightMyRequestResponse, label: string): Promise<void> {
  if (res.statusCode !== 201) t.fail(`${label}: ${res.statusCode} ${res.body}`);
}

const roleNamesOf = async (app: FastifyInstance, admin: Actor, id: string) =>
  ((await send(app, admin, 'GET', `/admin/users/${id}`)).json() as { roles: string[] }).roles;

eachDatabase('deleting a role with force while it is being assigned never answers 5xx, and leaves no one holding it', async (t, kind) => {
  const { app, admin, next } = await setup(t, kind);
  for (let round = 0; round < ROUNDS; round++) {
    const role = `race.assign.${round}`;
    await created(t, await send(app, admin, 'POST', '/admin/roles', { name: role }), role);
    const users = await Promise.all([registerUser(app), registerUser(app)]);
    // One user already holds the role (the delete must take it away), the other is being given it.
    t.equal((await send(app, admin, 'PUT', `/admin/users/${users[0].user.id}/roles`, { roles: ['user', role] })).statusCode, 200);
    const answers = await race(next, [
      () => send(app, admin, 'DELETE', `/admin/roles/${role}?force=true`),
      () => send(app, admin, 'PUT', `/admin/users/${users[1].user.id}/roles`, { roles: ['user', role] }),
      () => send(app, admin, 'PUT', `/admin/users/${users[0].user.id}/roles`, { roles: [role] }),
    ]);
    assertSettled(t, answers[0]!, `round ${round}: delete`, { 204: null, 404: ['not_found'], 409: ['concurrent_change'] });
    for (const [i, res] of answers.slice(1).entries()) {
      assertSettled(t, res, `round ${round}: assign ${i}`, { 200: null, 400: ['validation_failed'], 409: ['concurrent_change'] });
    }
    if (answers[0]!.statusCode === 204) {
      t.equal((await send(app, admin, 'GET', `/admin/roles/${role}`)).statusCode, 404, `round ${round}: the role is gone`);
      for (const user of users) t.notOk((await roleNamesOf(app, admin, user.user.id)).includes(role), `round ${round}: nobody holds the deleted role`);
    }
  }
});

eachDatabase('creating one role name several times at once makes it once; the others are told it exists', async (t, kind) => {
  const { app, admin, next } = await setup(t, kind);
  await created(t, await send(app, admin, 'POST', '/admin/permissions', { name: 'race.create.perm' }), 'permission');
  for (let round = 0; round < ROUNDS; round++) {
    const role = `race.create.${round}`;
    const answers = await race(
      next,
      Array.from({ length: 4 }, (_, i) => () => send(app, admin, 'POST', '/admin/roles', { name: role, description: `attempt ${i}`, permissions: ['race.create.perm'] })),
    );
    for (const [i, res] of answers.entries()) {
      assertSettled(t, res, `round ${round}: create ${i}`, { 201: null, 409: ['role_exists', 'concurrent_change'] });
    }
    t.equal(answers.filter((res) => res.statusCode === 201).length, 1, `round ${round}: exactly one creation succeeded`);
    const stored = (await send(app, admin, 'GET', `/admin/roles/${role}`)).json() as { permissions: string[] };
    t.same(stored.permissions, ['race.create.perm'], `round ${round}: the role has its permission`);
  }
});

eachDatabase('deleting a permission while it is being put into roles never answers 5xx, and leaves no role granting it', async (t, kind) => {
  const { app, admin, next } = await setup(t, kind);
  for (let round = 0; round < ROUNDS; round++) {
    const permission = `race.perm.${round}`;
    const role = `race.holder.${round}`;
    await created(t, await send(app, admin, 'POST', '/admin/permissions', { name: permission }), permission);
    await created(t, await send(app, admin, 'POST', '/admin/roles', { name: role }), role);
    const answers = await race(next, [
      () => send(app, admin, 'DELETE', `/admin/permissions/${permission}`),
      () => send(app, admin, 'PUT', `/admin/roles/${role}/permissions`, { permissions: [permission] }),
      () => send(app, admin, 'POST', '/admin/roles', { name: `${role}.new`, permissions: [permission] }),
      () => send(app, admin, 'PATCH', `/admin/roles/${role}`, { description: `round ${round}` }),
    ]);
    assertSettled(t, answers[0]!, `round ${round}: delete permission`, { 204: null, 409: ['concurrent_change'] });
    assertSettled(t, answers[1]!, `round ${round}: put permissions`, { 200: null, 400: ['validation_failed'], 409: ['concurrent_change'] });
    assertSettled(t, answers[2]!, `round ${round}: create role`, { 201: null, 400: ['validation_failed'], 409: ['concurrent_change'] });
    assertSettled(t, answers[3]!, `round ${round}: describe role`, { 200: null, 409: ['concurrent_change'] });
    if (answers[0]!.statusCode === 204) {
      const { items } = (await send(app, admin, 'GET', '/admin/roles')).json() as { items: { permissions: string[] }[] };
      t.notOk(items.some((r) => r.permissions.includes(permission)), `round ${round}: no role grants the deleted permission`);
    }
  }
});
