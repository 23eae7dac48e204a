import { createHmac, generateKeyPairSync, sign as cryptoSign } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { eq } from 'drizzle-orm';
import { createSigner } from 'fast-jwt';
import tap from 'tap';
import type { ListenEvents } from '../../src/db/listener.js';
import { signingKeys } from '../../src/db/schema.js';
import { generatePrivateJwk, jwkThumbprint, publishedJwk, type PublicJwk } from '../../src/domain/signing-keys.js';
import { buildTestApp, eachDatabase, testConfig, type Test } from '../helpers/app.js';
import { adminToken, type Actor } from '../helpers/admin.js';
import { forgeToken, validClaims } from '../helpers/jwt.js';
import { bearer, login, registerUser } from '../helpers/users.js';
import { until } from '../helpers/wait.js';

const ES256 = { JWT_ALG: 'ES256' };
const HS256 = { JWT_ALG: 'HS256' };
const encode = (value: unknown) => Buffer.from(JSON.stringify(value), 'utf8').toString('base64url');
const headerOf = (token: string) => JSON.parse(Buffer.from(token.split('.')[0]!, 'base64url').toString('utf8')) as Record<string, unknown>;

function me(app: FastifyInstance, token: string) {
  return app.inject({ method: 'GET', url: '/auth/me', headers: bearer(token) });
}

async function jwks(app: FastifyInstance): Promise<PublicJwk[]> {
  return (await app.inject({ method: 'GET', url: '/.well-known/jwks.json' })).json<{ keys: PublicJwk[] }>().keys;
}

function admin(app: FastifyInstance, who: Actor, method: 'GET' | 'POST', url: string, payload?: object) {
  return app.inject({ method, url: `/admin/signing-keys${url}`, headers: who.headers, ...(payload ? { payload } : {}) });
}

eachDatabase('ES256: a key at first start, kid in every token, the JWKS and discovery published', async (t: Test, kind) => {
  const { app, database } = await buildTestApp(t, kind, { env: { ...ES256, JWKS_MAX_AGE: '120s', PUBLIC_URL: 'https://id.example.com' } });
  const rows = await database.db.select().from(signingKeys);
  t.equal(rows.length, 1, 'one key generated');
  t.equal(rows[0]!.status, 'current');
  t.equal(rows[0]!.alg, 'ES256');
  t.equal(rows[0]!.kid, jwkThumbprint(rows[0]!.publicJwk), 'kid is the RFC 7638 thumbprint');
  t.notMatch(rows[0]!.privateKey, /"d"/, 'the private key is stored sealed');

  const user = await registerUser(app);
  const header = headerOf(user.accessToken);
  t.same(header, { alg: 'ES256', typ: 'JWT', kid: rows[0]!.kid });
  t.equal((await me(app, user.accessToken)).statusCode, 200);

  const res = await app.inject({ method: 'GET', url: '/.well-known/jwks.json' });
  t.equal(res.statusCode, 200);
  t.equal(res.headers['cache-control'], 'public, max-age=120');
  const keys = res.json<{ keys: PublicJwk[] }>().keys;
  t.same(keys, [{ ...rows[0]!.publicJwk }]);
  t.same(Object.keys(keys[0]!).sort(), ['alg', 'crv', 'kid', 'kty', 'use', 'x', 'y'], 'public members only');

  const discovery = await app.inject({ method: 'GET', url: '/.well-known/openid-configuration' });
  t.equal(discovery.statusCode, 200);
  t.same(discovery.json(), {
    issuer: 'gatehouse',
    jwks_uri: 'https://id.example.com/.well-known/jwks.json',
    id_token_signing_alg_values_supported: ['ES256', 'EdDSA', 'RS256'],
  });

  // A second instance on the same database uses the same key, not one of its own.
  const second = await buildTestApp(t, kind, { env: ES256, database });
  t.equal((await database.db.select().from(signingKeys)).length, 1);
  t.equal((await me(second.app, user.accessToken)).statusCode, 200);
});

eachDatabase('forged tokens are 401 token_invalid: alg confusion, alg none, a foreign kid, jku/jwk headers', async (t: Test, kind) => {
  const { app } = await buildTestApp(t, kind, { env: ES256 });
  const user = await registerUser(app);
  const [published] = await jwks(app);
  const claims = validClaims({ sub: user.user.id, sid: JSON.parse(Buffer.from(user.accessToken.split('.')[1]!, 'base64url').toString()).sid });
  const body = encode(claims);
  const hs = (header: object, secret: string) => {
    const input = `${encode(header)}.${body}`;
    return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
  };
  const { createPublicKey } = await import('node:crypto');
  const publicPem = createPublicKey({ key: published!, format: 'jwk' }).export({ type: 'spki', format: 'pem' }).toString();
  const foreign = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const foreignJwk = foreign.publicKey.export({ format: 'jwk' });
  const es = (header: object) => {
    const input = `${encode(header)}.${body}`;
    return `${input}.${cryptoSign('sha256', Buffer.from(input), { key: foreign.privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`;
  };
  const forged = {
    'HS256 signed with the public key, naming its kid': hs({ alg: 'HS256', typ: 'JWT', kid: published!.kid }, publicPem),
    'HS256 signed with the public JWK as text': hs({ alg: 'HS256', typ: 'JWT', kid: published!.kid }, JSON.stringify(published)),
    'alg none with the kid': `${encode({ alg: 'none', typ: 'JWT', kid: published!.kid })}.${body}.`,
    'alg none without a kid': forgeToken(claims, { alg: 'none' }),
    'a foreign key and its kid': es({ alg: 'ES256', typ: 'JWT', kid: jwkThumbprint(foreignJwk) }),
    'a foreign key under our kid': es({ alg: 'ES256', typ: 'JWT', kid: published!.kid }),
    'a jwk header carrying the foreign key': es({ alg: 'ES256', typ: 'JWT', kid: published!.kid, jwk: foreignJwk }),
    'a jku header': es({ alg: 'ES256', typ: 'JWT', kid: published!.kid, jku: 'https://attacker.example/jwks.json' }),
    'a kid that is not a string': es({ alg: 'ES256', typ: 'JWT', kid: 42 }),
    'HS256 with JWT_SECRET expiring after the switch window': forgeToken({ ...claims, exp: claims.exp as number + 3600 }),
    'no header at all': `.${body}.x`,
    'a header that is not an object': `${encode('ES256')}.${body}.x`,
  };
  for (const [name, token] of Object.entries(forged)) {
    const res = await me(app, token);
    t.equal(res.statusCode, 401, name);
    t.equal(res.json().code, 'token_invalid', name);
  }
  // The real token, with a jwk header added after signing, is refused too: the header is signed.
  const [h, p, s] = user.accessToken.split('.');
  t.equal((await me(app, `${encode({ ...JSON.parse(Buffer.from(h!, 'base64url').toString()), jku: 'x' })}.${p}.${s}`)).statusCode, 401);
  t.equal((await me(app, user.accessToken)).statusCode, 200, 'the genuine token still passes');
});

eachDatabase('HS256 -> ES256: tokens issued before the switch keep working until they expire', async (t: Test, kind) => {
  const hsApp = await buildTestApp(t, kind, { env: HS256 });
  const user = await registerUser(hsApp.app);
  t.equal(headerOf(user.accessToken).alg, 'HS256');
  t.type(headerOf(user.accessToken).kid, 'string', 'HS256 tokens carry a kid too');
  t.same(await jwks(hsApp.app), [], 'nothing published under HS256');
  const tokenWithoutKid = forgeToken(validClaims({ sub: user.user.id, sid: JSON.parse(Buffer.from(user.accessToken.split('.')[1]!, 'base64url').toString()).sid }));

  const esApp = await buildTestApp(t, kind, { env: ES256, database: hsApp.database });
  t.equal((await me(esApp.app, user.accessToken)).statusCode, 200, 'an HS256 token with its kid');
  t.equal((await me(esApp.app, tokenWithoutKid)).statusCode, 200, 'an HS256 token of before kids');
  const fresh = await login(esApp.app, user.email);
  t.equal(headerOf(fresh.accessToken).alg, 'ES256');
  t.equal((await me(esApp.app, fresh.accessToken)).statusCode, 200);
  const hsLogout = await esApp.app.inject({ method: 'POST', url: '/auth/logout', headers: bearer(tokenWithoutKid) });
  t.equal(hsLogout.statusCode, 204, 'logout verifies HS256 tokens of before the switch');
  const logout = await esApp.app.inject({ method: 'POST', url: '/auth/logout', headers: bearer(fresh.accessToken) });
  t.equal(logout.statusCode, 204, 'logout verifies ES256 tokens');
  t.equal((await me(esApp.app, fresh.accessToken)).json().code, 'session_revoked');
});

eachDatabase('rotation: create (next, published), activate (409 too early, force), revoke (refused at once, on every instance)', async (t: Test, kind) => {
  const { app, database } = await buildTestApp(t, kind, { env: ES256 });
  const other = await buildTestApp(t, kind, { env: ES256, database });
  const root = await adminToken(app);
  const [first] = await jwks(app);
  const before = await registerUser(app);

  const user = await registerUser(app);
  const plain = await admin(app, { ...root, headers: bearer(user.accessToken) }, 'GET', '');
  t.equal(plain.statusCode, 403, 'keys:manage is needed');

  const created = await admin(app, root, 'POST', '', { alg: 'EdDSA' });
  t.equal(created.statusCode, 201);
  const next = created.json<{ kid: string; alg: string; status: string; publicJwk: Record<string, string> }>();
  t.match(next, { alg: 'EdDSA', status: 'next', activatedAt: null });
  t.notOk('d' in next.publicJwk, 'no private part');
  t.same((await jwks(app)).map((k) => k.kid), [first!.kid, next.kid], 'published at once');
  const seenIn = await until(async () => (await jwks(other.app)).some((k) => k.kid === next.kid), 5000);
  t.ok(seenIn < 5000, `the other instance publishes it within 1 s (measured ${seenIn} ms)`);
  t.equal(headerOf((await login(app, user.email)).accessToken).kid, first!.kid, 'a next key does not sign');

  const early = await admin(app, root, 'POST', `/${next.kid}/activate`);
  t.equal(early.statusCode, 409);
  t.equal(early.json().code, 'key_not_published_long_enough');
  t.equal((await admin(app, root, 'POST', '/nope/activate', { force: true })).statusCode, 404);
  const activated = await admin(app, root, 'POST', `/${next.kid}/activate`, { force: true });
  t.equal(activated.statusCode, 200);
  t.equal(activated.json().status, 'current');
  t.equal((await admin(app, root, 'POST', `/${next.kid}/activate`, { force: true })).json().status, 'current', 'activating the current key is a no-op');

  // The admin's own token was signed by the key about to be revoked: log in again with the new one.
  root.headers = bearer((await login(app, root.email)).accessToken);
  const list = (await admin(app, root, 'GET', '')).json<{ items: { kid: string; status: string }[] }>().items;
  t.same(
    list.map((k) => [k.kid, k.status]),
    [
      [first!.kid, 'retired'],
      [next.kid, 'current'],
    ],
  );
  const after = await login(app, user.email);
  t.same(headerOf(after.accessToken), { alg: 'EdDSA', typ: 'JWT', kid: next.kid });
  await until(async () => (await me(other.app, after.accessToken)).statusCode === 200, 5000);
  t.equal((await me(app, before.accessToken)).statusCode, 200, 'a retired key still verifies');

  const refused = await admin(app, root, 'POST', `/${next.kid}/revoke`);
  t.equal(refused.statusCode, 409);
  t.equal(refused.json().code, 'signing_key_current');
  t.equal((await admin(app, root, 'POST', '/nope/revoke')).statusCode, 404);

  // Cached as verified on both instances first: revocation must still refuse it on the next request.
  t.equal((await me(other.app, before.accessToken)).statusCode, 200);
  const revoked = await admin(app, root, 'POST', `/${first!.kid}/revoke`);
  t.equal(revoked.statusCode, 200);
  t.equal(revoked.json().status, 'revoked');
  t.equal((await admin(app, root, 'POST', `/${first!.kid}/revoke`)).json().status, 'revoked', 'idempotent');
  t.equal((await me(app, before.accessToken)).json().code, 'token_invalid', 'refused at once here');
  const refusedIn = await until(async () => (await me(other.app, before.accessToken)).statusCode === 401, 5000);
  t.ok(refusedIn < 5000, `refused on the other instance within 1 s (measured ${refusedIn} ms)`);
  t.same((await jwks(app)).map((k) => k.kid), [next.kid], 'no longer published');
  const again = await admin(app, root, 'POST', `/${first!.kid}/activate`, { force: true });
  t.equal(again.json().code, 'signing_key_revoked');

  // Published for JWKS_MAX_AGE: activated without force.
  t.equal((await admin(app, root, 'POST', '', {})).json().alg, 'ES256', 'JWT_ALG by default');
  const rsa = (await admin(app, root, 'POST', '', { alg: 'RS256' })).json<{ kid: string; alg: string }>();
  t.equal(rsa.alg, 'RS256');
  await database.db.update(signingKeys).set({ createdAt: new Date(Date.now() - 301_000) }).where(eq(signingKeys.kid, rsa.kid));
  t.equal((await admin(app, root, 'POST', `/${rsa.kid}/activate`)).statusCode, 200);
  const byRsa = await login(app, user.email);
  t.same(headerOf(byRsa.accessToken), { alg: 'RS256', typ: 'JWT', kid: rsa.kid });
  await until(async () => (await me(other.app, byRsa.accessToken)).statusCode === 200, 5000);

  const events = (await app.inject({ method: 'GET', url: '/admin/audit?limit=50', headers: root.headers })).json<{ items: { type: string }[] }>().items;
  for (const type of ['signing_key_created', 'signing_key_activated', 'signing_key_revoked']) t.ok(events.some((e) => e.type === type), `audited: ${type}`);
});

eachDatabase('HS256 and JWT_PRIVATE_KEYS: nothing to rotate through the API', async (t: Test, kind) => {
  const hs = await buildTestApp(t, kind, { env: HS256 });
  const root = await adminToken(hs.app);
  t.same((await admin(hs.app, root, 'GET', '')).json(), { items: [] });
  const refused = await admin(hs.app, root, 'POST', '');
  t.equal(refused.statusCode, 409);
  t.equal(refused.json().code, 'signing_keys_unmanaged');
  const discovery = await hs.app.inject({ method: 'GET', url: '/.well-known/openid-configuration' });
  t.same(discovery.json().id_token_signing_alg_values_supported, ['HS256']);

  const ed = generateKeyPairSync('ed25519').privateKey.export({ format: 'jwk' });
  const rs = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
  const imported = await buildTestApp(t, kind, { env: { JWT_ALG: 'RS256', JWT_PRIVATE_KEYS: JSON.stringify([ed, rs]) } });
  t.same((await jwks(imported.app)).map((k) => [k.kid, k.alg]), [
    [jwkThumbprint(ed), 'EdDSA'],
    [jwkThumbprint(rs), 'RS256'],
  ]);
  t.equal((await imported.database.db.select().from(signingKeys)).length, 0, 'nothing stored');
  const user = await registerUser(imported.app);
  t.same(headerOf(user.accessToken), { alg: 'EdDSA', typ: 'JWT', kid: jwkThumbprint(ed) }, 'the first key signs');
  // A token of the second key verifies: the way to rotate imported keys is to reorder them.
  const sid = JSON.parse(Buffer.from(user.accessToken.split('.')[1]!, 'base64url').toString()).sid as string;
  const { createPrivateKey } = await import('node:crypto');
  const pem = createPrivateKey({ key: rs, format: 'jwk' }).export({ type: 'pkcs8', format: 'pem' }).toString();
  const byRs = createSigner({ key: pem, algorithm: 'RS256', kid: jwkThumbprint(rs), iss: 'gatehouse', aud: 'gatehouse', expiresIn: 60_000 })({ sub: user.user.id, sid });
  t.equal((await me(imported.app, byRs)).statusCode, 200);
  const iroot = await adminToken(imported.app);
  t.equal((await admin(imported.app, iroot, 'GET', '')).json().items.length, 2);
  t.equal((await admin(imported.app, iroot, 'POST', `/${jwkThumbprint(rs)}/revoke`)).json().code, 'signing_keys_unmanaged');
});

tap.test('keys: thumbprints as RFC 7638 computes them, unsupported keys and JWT_PRIVATE_KEYS refused', async (t) => {
    // RFC 7638 section 3.1's example key and thumbprint.
    const rfc = {
      kty: 'RSA',
      n: '0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw',
      e: 'AQAB',
      alg: 'RS256',
      kid: '2011-04-29',
    };
    t.equal(jwkThumbprint(rfc), 'NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs');
    t.throws(() => publishedJwk({ kty: 'EC', crv: 'P-384', x: 'a', y: 'b' }), /P-256/);
    t.throws(() => publishedJwk({ kty: 'oct', k: 'abc' }), /unsupported key type/);
    t.throws(() => jwkThumbprint({ kty: 'EC', crv: 'P-256', x: 'a' }), /no "y"/);
    t.throws(() => testConfig({ JWT_PRIVATE_KEYS: 'not json' }), /JWT_PRIVATE_KEYS: not JSON/);
    t.throws(() => testConfig({ JWT_PRIVATE_KEYS: '[]' }), /non-empty array/);
    t.throws(() => testConfig({ JWT_PRIVATE_KEYS: JSON.stringify([{ kty: 'EC' }]) }), /each with its "d"/);
    t.equal(testConfig({ JWKS_MAX_AGE: '10m' }).jwksMaxAge, 600);
    t.equal(testConfig().jwtAlg, 'ES256', 'ES256 is the default');
  });

tap.test('in plugin mode under a prefix, the well-known documents are under it and jwks_uri says so', async (t) => {
  const Fastify = (await import('fastify')).default;
  const { gatehousePlugin } = await import('../../src/index.js');
  const { openTestDatabase } = await import('../helpers/databases.js');
  const database = await openTestDatabase('pglite');
  const host = Fastify();
  t.teardown(async () => {
    await host.close();
    await database.drop();
  });
  await host.register(gatehousePlugin, { config: testConfig({ ...ES256, PUBLIC_URL: 'https://example.test/api' }), database, prefix: '/identity/' });
  await host.ready();
  const discovery = await host.inject('/identity/.well-known/openid-configuration');
  t.equal(discovery.json().jwks_uri, 'https://example.test/api/identity/.well-known/jwks.json');
  const keys = (await host.inject('/identity/.well-known/jwks.json')).json<{ keys: PublicJwk[] }>().keys;
  t.equal(keys.length, 1);
});

eachDatabase('keys live in memory: a change the instance was not told of is read when LISTEN comes back', async (t: Test, kind) => {
  const { buildApp } = await import('../../src/app.js');
  const { openTestDatabase } = await import('../helpers/databases.js');
  const database = await openTestDatabase(kind);
  const listeners: ListenEvents[] = [];
  const listen = database.listen.bind(database);
  database.listen = (channel, onMessage, events) => {
    if (events) listeners.push(events);
    return listen(channel, onMessage, events);
  };
  const app = await buildApp(testConfig(ES256), { database });
  t.teardown(async () => {
    await app.close();
    await database.drop();
  });
  await app.ready();
  const user = await registerUser(app);
  const [key] = await jwks(app);
  // Revoked behind Gatehouse's back, with no notice: requests do not read the keys from the database.
  await database.db.update(signingKeys).set({ status: 'revoked' }).where(eq(signingKeys.kid, key!.kid!));
  t.equal((await me(app, user.accessToken)).statusCode, 200, 'still accepted: no database read per request');
  // As after a lost LISTEN connection: notices may have been missed, so the keys are read again.
  for (const events of listeners) events.onUp?.();
  await until(async () => (await me(app, user.accessToken)).statusCode === 401, 5000);
  t.same(await jwks(app), [], 'no longer published either');
});

eachDatabase('parallel rotations: keys activated and revoked at once leave exactly one current key, and never a 5xx', async (t: Test, kind) => {
  const { app } = await buildTestApp(t, kind, { env: ES256 });
  const root = await adminToken(app);
  for (let round = 0; round < 3; round++) {
    const kids: string[] = [];
    for (let i = 0; i < 3; i++) kids.push((await admin(app, root, 'POST', '', {})).json<{ kid: string }>().kid);
    const answers = await Promise.all([
      ...kids.map((kid) => admin(app, root, 'POST', `/${kid}/activate`, { force: true })),
      admin(app, root, 'POST', `/${kids[0]}/revoke`),
    ]);
    for (const answer of answers) t.ok(answer.statusCode < 500, `round ${round}: ${answer.statusCode} ${answer.json<{ code?: string }>().code ?? ''}`);
    const keys = (await admin(app, root, 'GET', '')).json<{ items: { status: string }[] }>().items;
    t.equal(keys.filter((k) => k.status === 'current').length, 1, `round ${round}: exactly one current key`);
    // The admin's token may have been signed by a key revoked meanwhile: a new one for the next round.
    Object.assign(root, await adminToken(app));
  }
});

eachDatabase('ENCRYPTION_KEYS rotation: keys sealed under the old entry are sealed again under the new one at start, and keep signing', async (t: Test, kind) => {
  const OLD = 'old:dGVzdC1lbmNyeXB0aW9uLWtleS0wMTIzNDU2Nzg5YWI=';
  const NEW = `new:${Buffer.alloc(32, 7).toString('base64')}`;
  const before = await buildTestApp(t, kind, { env: { ...ES256, ENCRYPTION_KEYS: OLD } });
  const root = await adminToken(before.app);
  t.equal((await admin(before.app, root, 'POST', '', {})).statusCode, 201, 'a next key as well as the current one');
  const user = await registerUser(before.app);
  const sealedUnder = async () => (await before.database.db.select().from(signingKeys)).map((row) => row.privateKey.split('.')[0]).sort();
  t.same(await sealedUnder(), ['old', 'old']);

  const after = await buildTestApp(t, kind, { env: { ...ES256, ENCRYPTION_KEYS: `${NEW},${OLD}` }, database: before.database });
  t.same(await sealedUnder(), ['new', 'new'], 'both keys sealed again under the first entry');
  t.equal((await me(after.app, user.accessToken)).statusCode, 200, 'tokens of before still verify');
  // Only the new entry left: the keys open, sign and verify.
  const newOnly = await buildTestApp(t, kind, { env: { ...ES256, ENCRYPTION_KEYS: NEW }, database: before.database });
  const fresh = await login(newOnly.app, user.email);
  t.equal((await me(newOnly.app, fresh.accessToken)).statusCode, 200);
  t.equal((await me(newOnly.app, user.accessToken)).statusCode, 200);
});

tap.test('a new key is generated off the event loop, which keeps serving meanwhile', async (t) => {
  for (const [alg, kty] of [['ES256', 'EC'], ['EdDSA', 'OKP'], ['RS256', 'RSA']] as const) {
    t.match(await generatePrivateJwk(alg), { kty, d: String }, `${alg}: a private ${kty} key`);
  }
  // An RSA key takes tens of milliseconds at least: generated on the event loop, the immediate
  // queued after the call would run only once the key was there.
  let turned = false;
  const pending = generatePrivateJwk('RS256');
  setImmediate(() => (turned = true));
  await pending;
  t.ok(turned, 'the event loop turned while the key was generated');
});
