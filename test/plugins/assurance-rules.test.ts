import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { totpFactors } from '../../src/db/schema.js';
import { createPermission, createRole } from '../../src/domain/roles.js';
import { createLogger } from '../../src/logger.js';
import { gatehousePlugin } from '../../src/plugin.js';
import { errorsPlugin } from '../../src/plugins/errors.js';
import { roleGranting, userWithRoles, type Actor } from '../helpers/admin.js';
import { buildTestApp, eachDatabase, testConfig, type Test } from '../helpers/app.js';
import { openTestDatabase, type DatabaseKind } from '../helpers/databases.js';
import { claimsOf, forgeToken, validClaims } from '../helpers/jwt.js';
import { assertProblem } from '../helpers/problems.js';
import { bearer } from '../helpers/users.js';

const ok = async () => ({ ok: true });

/** A host app with one route per kind of assurance rule, under the given two-factor policy. */
async function hostApp(t: Test, kind: DatabaseKind, env: Record<string, string>): Promise<FastifyInstance> {
  const database = await openTestDatabase(kind);
  const app = Fastify({ loggerInstance: createLogger({ logLevel: 'silent' }) as FastifyBaseLogger });
  t.teardown(async () => {
    await app.close();
    await database.drop();
  });
  await app.register(errorsPlugin);
  await app.register(gatehousePlugin, { config: testConfig(env), database });
  app.get('/needs-aal2', { config: { authenticated: true, aal: 'aal2' } }, ok);
  app.get('/needs-fresh', { config: { authenticated: true, fresh: true } }, ok);
  app.get('/needs-p', { config: { permissionsRequired: ['p'] } }, ok);
  app.get('/needs-q', { config: { permissionsAccepted: ['q'] } }, ok);
  app.get('/signed-in', { config: { authenticated: true } }, ok);
  await app.ready();
  for (const name of ['p', 'q']) await createPermission(app.gatehouse.db, { name });
  return app;
}

/** The actor's token re-issued with this assurance (signed with the app's secret, for the actor's live session). */
function withAssurance(who: Actor, assurance: { aal: 'aal1' | 'aal2'; ageSeconds?: number }): { authorization: string } {
  const { sub, sid } = claimsOf(who.accessToken);
  const authTime = Math.floor(Date.now() / 1000) - (assurance.ageSeconds ?? 0);
  const amr = assurance.aal === 'aal2' ? ['pwd', 'otp', 'mfa'] : ['pwd'];
  return bearer(forgeToken(validClaims({ sub, sid }, { aal: assurance.aal, amr, auth_time: authTime })));
}

/** A confirmed authenticator, as if enrolled: these tests are about the rules, not the enrolment. */
async function enrol(app: FastifyInstance, who: Actor): Promise<void> {
  await app.gatehouse.db.insert(totpFactors).values({ userId: who.userId, secret: 'sealed', confirmedAt: new Date() });
  await app.gatehouse.access.changed(who.userId);
}

const get = (app: FastifyInstance, url: string, headers: { authorization: string }) => app.inject({ url, headers });

eachDatabase("route rules aal: 'aal2' and fresh: true", async (t, kind) => {
  const app = await hostApp(t, kind, { REAUTH_MAX_AGE: '5m' });
  const ann = await userWithRoles(app, ['user', await roleGranting(app, ['p', 'q'])]);

  const aal1 = withAssurance(ann, { aal: 'aal1' });
  const body = assertProblem(t, await get(app, '/needs-aal2', aal1), 403, 'insufficient_aal', 'aal1 session, no factor');
  t.match(body.detail, /enrol/, 'a user without a factor is told to enrol one');
  t.equal((await get(app, '/needs-aal2', withAssurance(ann, { aal: 'aal2' }))).statusCode, 200, 'aal2 passes');

  t.equal((await get(app, '/needs-fresh', withAssurance(ann, { aal: 'aal1', ageSeconds: 240 }))).statusCode, 200, 'a factor 4 minutes old is fresh');
  const stale = assertProblem(t, await get(app, '/needs-fresh', withAssurance(ann, { aal: 'aal2', ageSeconds: 301 })), 403, 'reauthentication_required');
  t.match(stale, { maxAge: 300, methods: ['password'] });
  await enrol(app, ann);
  const enrolled = assertProblem(t, await get(app, '/needs-fresh', withAssurance(ann, { aal: 'aal2', ageSeconds: 301 })), 403, 'reauthentication_required');
  t.match(enrolled, { methods: ['password', 'totp'] }, 'a user with an authenticator may use it to re-authenticate');
  t.match(assertProblem(t, await get(app, '/needs-aal2', aal1), 403, 'insufficient_aal', 'aal1 session, with a factor').detail, /re-authenticate with a code/);

  t.equal((await get(app, '/needs-p', aal1)).statusCode, 200, 'no policy: permissions alone');
  t.equal((await get(app, '/signed-in', withAssurance(ann, { aal: 'aal1', ageSeconds: 86_400 }))).statusCode, 200, 'no rule: no freshness');
});

eachDatabase('MFA_REQUIRED_PERMISSIONS: routes needing those permissions need aal2 from users who have a factor', async (t, kind) => {
  const app = await hostApp(t, kind, { MFA_REQUIRED_PERMISSIONS: 'p' });
  const role = await roleGranting(app, ['p', 'q']);
  const ann = await userWithRoles(app, ['user', role]);
  const bob = await userWithRoles(app, ['user', role]);
  await enrol(app, ann);

  assertProblem(t, await get(app, '/needs-p', withAssurance(ann, { aal: 'aal1' })), 403, 'insufficient_aal', 'enrolled, aal1');
  t.equal((await get(app, '/needs-p', withAssurance(ann, { aal: 'aal2' }))).statusCode, 200, 'enrolled, aal2');
  t.equal((await get(app, '/needs-q', withAssurance(ann, { aal: 'aal1' }))).statusCode, 200, 'another permission: aal1 is enough');
  t.equal((await get(app, '/needs-p', withAssurance(bob, { aal: 'aal1' }))).statusCode, 200, 'a user without a factor is not locked out');
});

eachDatabase('MFA_ENFORCE_FOR_ROLES: those roles reach permission-guarded routes only once enrolled, at aal2', async (t, kind) => {
  const app = await hostApp(t, kind, { MFA_ENFORCE_FOR_ROLES: 'operator' });
  await createRole(app.gatehouse.db, 'system', { name: 'operator', permissions: ['q'] });
  const olga = await userWithRoles(app, ['user', 'operator']);
  const pat = await userWithRoles(app, ['user', await roleGranting(app, ['q'])]);

  const enrolFirst = assertProblem(t, await get(app, '/needs-q', withAssurance(olga, { aal: 'aal1' })), 403, 'mfa_enrollment_required');
  t.match(enrolFirst.detail, /enrol/);
  t.equal((await get(app, '/signed-in', withAssurance(olga, { aal: 'aal1' }))).statusCode, 200, 'routes without permissions stay open (enrolment itself)');
  assertProblem(t, await get(app, '/needs-p', withAssurance(olga, { aal: 'aal1' })), 403, 'permission_denied', 'a missing permission is said first');
  await enrol(app, olga);
  assertProblem(t, await get(app, '/needs-q', withAssurance(olga, { aal: 'aal1' })), 403, 'insufficient_aal', 'enrolled, but not proved in this session');
  t.equal((await get(app, '/needs-q', withAssurance(olga, { aal: 'aal2' }))).statusCode, 200, 'enrolled and proved');
  t.equal((await get(app, '/needs-q', withAssurance(pat, { aal: 'aal1' }))).statusCode, 200, 'other roles are not concerned');
});

eachDatabase('the OpenAPI document shows the aal and fresh rules like the others', async (t, kind) => {
  const { app } = await buildTestApp(t, kind, { env: { MFA_REQUIRED_PERMISSIONS: 'users:write', MFA_ENFORCE_FOR_ROLES: 'admin' } });
  const document = app.swagger() as unknown as { paths: Record<string, Record<string, { description?: string; 'x-fresh'?: boolean; 'x-aal'?: string; responses: Record<string, unknown> }>> };
  const change = document.paths['/auth/email/change']!.post!;
  t.equal(change['x-fresh'], true);
  t.match(change.description, /REAUTH_MAX_AGE/);
  t.ok(change.responses['403'], 'declares its 403');
  const removal = document.paths['/auth/mfa/totp']!.delete!;
  t.match(removal, { 'x-aal': 'aal2', 'x-fresh': true });
  t.match(removal.description, /aal2; 403 insufficient_aal/);
  t.ok(removal.responses['403']);
  t.notOk(document.paths['/auth/mfa/totp/confirm']!.post!['x-fresh'], 'confirming does not ask for freshness: enrolling did');
  const patch = document.paths['/admin/users/{id}']!.patch!;
  t.match(patch.description, /MFA_REQUIRED_PERMISSIONS/, 'a policy-covered route says so');
  t.match(patch.description, /roles admin need a second factor/);
});
